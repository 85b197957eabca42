// The dashboard's only way to data: the public /api/v1 with the session cookie. Every non-2xx answer is the
// API's error envelope ({code, message, detail?, requestId?, validations?: [{field, detail}]}), thrown as ApiError.

export class ApiError extends Error {
  constructor(status, envelope) {
    super(envelope.message || `The request failed (${status}).`);
    this.status = status;
    this.code = envelope.code || 'error';
    this.detail = envelope.detail || '';
    this.requestId = envelope.requestId || '';
    this.validations = envelope.validations || [];
  }
}

let onUnauthorized = () => {};
let onPasswordChangeRequired = () => {};
let onTwoFactorRequired = () => {};

// setUnauthorizedHandler decides what a 401 does (the app sends the user to sign in).
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// setPasswordChangeHandler decides what a 403 password_change_required does (the app shows the password form).
export function setPasswordChangeHandler(fn) { onPasswordChangeRequired = fn; }

// setTwoFactorHandler decides what a 403 two_factor_required does (the app shows the two-factor set-up).
export function setTwoFactorHandler(fn) { onTwoFactorRequired = fn; }

export async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch('/api/v1' + path, init);
  } catch {
    throw new ApiError(0, { code: 'network', message: 'Flowyard cannot be reached; check the connection and try again.' });
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && path !== '/auth/login') onUnauthorized(err);
    if (err.code === 'password_change_required') onPasswordChangeRequired(err);
    if (err.code === 'two_factor_required') onTwoFactorRequired(err);
    throw err;
  }
  return data;
}

export const get = (path) => request('GET', path);
export const post = (path, body = {}) => request('POST', path, body);
export const patch = (path, body) => request('PATCH', path, body);
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

// list reads every page of a list route (bounded, so a huge list cannot hang the page).
export async function list(path, max = 2000) {
  const items = [];
  let cursor = '';
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(`${path}${sep}limit=500${cursor ? '&cursor=' + encodeURIComponent(cursor) : ''}`);
    items.push(...page.items);
    cursor = page.next;
  } while (cursor && items.length < max);
  return items;
}

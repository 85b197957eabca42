// Small DOM helpers every page uses: element building, forms whose API errors land next to their fields,
// action buttons whose errors land next to them, a confirmation dialog, tables, badges and status announcements.

import { ApiError } from './api.js';

// h builds an element. attrs: plain attributes, `class`, `text`, and on<Event> handlers; children: nodes,
// strings, arrays; null, undefined and false are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace swaps an element's children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// announce tells screen-reader users about a status change (the page's aria-live region).
export function announce(message) {
  const region = document.getElementById('status');
  region.textContent = '';
  setTimeout(() => { region.textContent = message; }, 30);
}

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

// errorText is what a user reads for an error: the envelope's message, its detail, and the request ID of 5xx.
export function errorText(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  let text = err.message;
  if (err.detail) text += ` ${err.detail}`;
  if (err.requestId) text += ` (request ${err.requestId})`;
  return text;
}

// field renders one labelled input. f: {name, label, type?, value?, options?: [{value, label}], required?,
// hint?, readonly?, placeholder?, locked?: "why"}. type "select" | "textarea" | "checkbox" | input types.
export function field(f) {
  const id = nextId('f');
  const errId = id + '-error';
  const hintId = id + '-hint';
  const described = [f.hint || f.locked ? hintId : null, errId].filter(Boolean).join(' ');
  const common = { id, name: f.name, 'aria-describedby': described, required: f.required, readonly: f.readonly || !!f.locked,
    placeholder: f.placeholder, autocomplete: f.autocomplete || 'off' };
  let input;
  if (f.type === 'select') {
    input = h('select', { ...common, readonly: null, disabled: !!f.locked },
      (f.options || []).map((o) => h('option', { value: o.value, selected: o.value === f.value }, o.label)));
  } else if (f.type === 'textarea') {
    input = h('textarea', { ...common, rows: f.rows || 4 }, f.value ?? '');
  } else if (f.type === 'checkbox') {
    input = h('input', { ...common, type: 'checkbox', checked: !!f.value, disabled: !!f.locked });
  } else {
    input = h('input', { ...common, type: f.type || 'text', value: f.value ?? '' });
  }
  const wrap = h('div', { class: 'field' + (f.type === 'checkbox' ? ' check' : ''), 'data-field': f.name },
    f.type === 'checkbox' ? [input, h('label', { for: id }, f.label)] : [h('label', { for: id }, f.label), input],
    f.locked ? h('p', { id: hintId, class: 'hint locked' }, f.locked) : f.hint ? h('p', { id: hintId, class: 'hint' }, f.hint) : null,
    h('p', { id: errId, class: 'field-error' }));
  return wrap;
}

// values reads a form's named inputs into an object (checkboxes as booleans, numbers as numbers).
export function values(formEl) {
  const out = {};
  for (const el of formEl.elements) {
    if (!el.name || el.disabled && el.type !== 'checkbox') continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'number') out[el.name] = el.value === '' ? undefined : Number(el.value);
    else out[el.name] = el.value;
  }
  return out;
}

// showErrors puts each validation of an ApiError next to its field (matched by name, or by the part of the
// field path before "." or "["; data-field may list several names, space-separated), and the envelope's message
// in the form's own error line.
export function showErrors(formEl, err) {
  clearErrors(formEl);
  const fields = [...formEl.querySelectorAll('[data-field]')].filter((f) => f.querySelector('.field-error'));
  const names = (f) => f.dataset.field.split(' ');
  for (const v of err instanceof ApiError ? err.validations : []) {
    const target = fields.find((f) => names(f).includes(v.field)) ||
      fields.find((f) => names(f).some((n) => v.field.startsWith(n + '.') || v.field.startsWith(n + '[')));
    if (!target) continue;
    const line = target.querySelector('.field-error');
    line.textContent = [line.textContent, names(target).includes(v.field) ? v.detail : `${v.field} ${v.detail}`].filter(Boolean).join('; ');
    target.querySelector('input,select,textarea')?.setAttribute('aria-invalid', 'true');
  }
  const line = formEl.querySelector(':scope > .form-error');
  line.textContent = errorText(err);
  (formEl.querySelector('[aria-invalid="true"]') || line).focus?.();
}

function clearErrors(formEl) {
  formEl.querySelectorAll('.field-error').forEach((p) => { p.textContent = ''; });
  formEl.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  formEl.querySelector(':scope > .form-error').textContent = '';
}

// form builds a form of fields with a submit button. onSubmit(values, formEl) may throw an ApiError: its
// validations land next to the fields and its message under the form. Extra children go before the button.
export function form({ fields = [], submit = 'Save', onSubmit, label, extra = [], cls = '' }) {
  const button = h('button', { type: 'submit', class: 'primary' }, submit);
  const el = h('form', { class: 'form ' + cls, 'aria-label': label, novalidate: true },
    fields.map((f) => (f instanceof Node ? f : field(f))), extra,
    h('div', { class: 'actions' }, button),
    h('p', { class: 'form-error', role: 'alert', tabindex: '-1' }));
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(el);
    button.disabled = true;
    try {
      await onSubmit(values(el), el);
    } catch (err) {
      showErrors(el, err);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

// action is a button that runs fn; an error appears beside it. opts.confirm: {title, text, confirm} asks first.
export function action(label, fn, opts = {}) {
  const error = h('span', { class: 'action-error', role: 'alert' });
  const button = h('button', { type: 'button', class: opts.danger ? 'danger' : opts.primary ? 'primary' : '' }, label);
  button.addEventListener('click', async () => {
    error.textContent = '';
    if (opts.confirm && !(await confirmDialog(opts.confirm))) return;
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  });
  return h('span', { class: 'action' }, button, error);
}

// confirmDialog asks a yes/no question in a modal <dialog> and resolves to the answer.
export function confirmDialog({ title, text, confirm = 'Confirm' }) {
  return new Promise((resolve) => {
    const titleId = nextId('dlg');
    const dialog = h('dialog', { 'aria-labelledby': titleId, class: 'dialog' },
      h('h2', { id: titleId }, title), text ? h('p', {}, text) : null,
      h('form', { method: 'dialog', class: 'actions' },
        h('button', { value: 'cancel', autofocus: true }, 'Cancel'),
        h('button', { value: 'ok', class: 'danger' }, confirm)));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'ok'); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

const goodStates = ['running', 'succeeded', 'online', 'active'];
const badStates = ['crashed', 'error', 'failed', 'rolled_back', 'aborted', 'offline'];

// badge shows a state as text with a colour; colour is never the only signal.
export function badge(state) {
  const tone = goodStates.includes(state) ? 'good' : badStates.includes(state) ? 'bad' : 'neutral';
  return h('span', { class: 'badge ' + tone, 'data-state': state }, state || 'unknown');
}

// table renders rows under column headers. columns: [{label, cell: (row) => node|string}].
export function table({ caption, columns, rows, empty = 'Nothing here yet.', rowAttrs }) {
  if (!rows.length) return h('p', { class: 'muted empty' }, empty);
  return h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h('td', {}, c.cell(r)))))));
}

// section is a titled region of a page.
// messageForm: a form whose request answers {message}, shown in a status line after the form once it is sent
// (sign-up and reset links). send(values) makes the request; status holds the line's extra attributes.
// Returns [form, status line].
export function messageForm({ send, status = {}, ...opts }) {
  const said = h('p', { role: 'status', ...status });
  return [form({ ...opts, onSubmit: async (v, el) => {
    const res = await send(v);
    el.reset();
    said.textContent = res.message;
  } }), said];
}

export function section(title, ...children) {
  const id = nextId('sec');
  return h('section', { 'aria-labelledby': id, class: 'card' }, h('h2', { id }, title), children);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: d.toISOString() }, d.toLocaleString());
}

// download saves text as a file.
export function download(name, text) {
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'application/json' })), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// copyBlock shows text in a read-only <pre> with a button that copies it.
export function copyBlock(label, text) {
  const id = nextId('copy');
  const note = h('span', { role: 'status', class: 'muted' });
  return h('div', { class: 'copy' }, h('p', { id, class: 'label' }, label),
    h('pre', { 'aria-labelledby': id, tabindex: '0' }, text),
    h('button', { type: 'button', onClick: async () => {
      try { await navigator.clipboard.writeText(text); note.textContent = 'Copied.'; } catch { note.textContent = 'Select the text and copy it.'; }
    } }, 'Copy ' + label.toLowerCase()), ' ', note);
}

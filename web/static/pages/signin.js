import * as api from '../api.js';
import { app } from '../app.js';
import { form, h, messageForm, replace, section } from '../ui.js';

export const title = 'Sign in';

// What the single sign-on callback's refusals (/signin?sso_error=<code>) mean to the person signing in.
const ssoErrors = {
  sso_state_invalid: 'That sign-in took too long or did not start here. Start again.',
  sso_denied: 'Your organisation\'s sign-in provider did not sign you in.',
  sso_email_unverified: 'Your sign-in provider has not verified your e-mail address, so Flowyard cannot use it.',
  sso_email_other_domain: 'Your sign-in provider signed you in with an address of another organisation.',
  sso_provider_unavailable: 'Your organisation\'s sign-in provider does not answer; try again shortly.',
  account_suspended: 'Your account is suspended; ask a platform admin.',
  sso_not_configured: 'Your address no longer signs in through single sign-on; sign in with your password.',
};
const ssoFallback = 'The single sign-on did not work; start again, or ask a platform admin.';

// The sign-in page asks for the address first: an address whose domain signs in through single sign-on goes to
// its provider (platform admins may still use their password); the others sign in with their password and, when
// two-factor sign-in is on, a code.
export async function render(ctx) {
  const next = ctx.query.get('next');
  const landing = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
  const ssoError = ctx.query.get('sso_error');
  const holder = h('div', {});
  const finish = async (user) => {
    app.state.user = user;
    if (user.passwordChangeRequired) return ctx.navigate('/account/password', { replace: true });
    await app.refreshTeams();
    ctx.navigate(landing, { replace: true });
  };
  const askCode = () => {
    const codeForm = form({
      label: 'Two-factor code',
      submit: 'Verify',
      fields: [{ name: 'code', label: 'Authentication code', autocomplete: 'one-time-code', required: true,
        hint: 'The 6-digit code your authenticator app shows, or one of your recovery codes.' }],
      onSubmit: async (v) => {
        const typed = v.code.trim();
        const body = /^\d[\d ]{5,6}$/.test(typed) ? { code: typed } : { recoveryCode: typed };
        const res = await api.post('/auth/login/second-factor', body);
        await finish(res.user);
      },
    });
    replace(holder, h('p', {}, 'Your password was right. Two-factor sign-in is on for this account.'), codeForm);
    codeForm.querySelector('input').focus();
  };
  replace(holder, signInForm(landing, finish, askCode));
  const settings = await api.get('/settings').catch(() => ({}));
  return h('div', { class: 'narrow' }, h('h1', {}, 'Sign in to Flowyard'),
    ssoError ? h('p', { role: 'alert', class: 'form-error' }, ssoErrors[ssoError] || ssoFallback) : null,
    holder,
    settings.signUp ? h('p', {}, 'New here? ', h('a', { href: '/signup' }, 'Create an account')) : null,
    h('details', { class: 'forgot' }, h('summary', {}, 'Forgot your password?'), resetSection()));
}

// signInForm is the address and password form. Once the address is known to sign in through single sign-on,
// the password field goes and the button leads to the provider, unless a platform admin asks for it back.
function signInForm(landing, finish, askCode) {
  let sso = null; // {email, startUrl} while the address signs in through single sign-on
  let passwordAnyway = false;
  const lookups = new Map();
  const lookup = (email) => {
    if (!lookups.has(email)) lookups.set(email, api.get('/auth/sso/lookup?email=' + encodeURIComponent(email)).catch(() => ({ sso: false })));
    return lookups.get(email);
  };
  const el = form({
    label: 'Sign in',
    submit: 'Sign in',
    fields: [
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
    ],
    extra: [h('p', { class: 'hint sso-note', hidden: true })],
    onSubmit: async (v) => {
      const found = v.email.includes('@') ? await lookup(v.email.trim()) : { sso: false };
      if (found.sso && !passwordAnyway) {
        location.assign(found.startUrl + '&next=' + encodeURIComponent(landing));
        return;
      }
      const res = await api.post('/auth/login', { email: v.email, password: v.password });
      if (res.secondFactorRequired) return askCode();
      await finish(res.user);
    },
  });
  const password = el.querySelector('[data-field="password"]');
  const note = el.querySelector('.sso-note');
  const button = el.querySelector('button[type="submit"]');
  const usePassword = h('button', { type: 'button', class: 'link', hidden: true, onClick: () => {
    passwordAnyway = true;
    show(null);
    password.querySelector('input').focus();
  } }, 'Sign in with a password instead (platform admins)');
  note.after(usePassword);
  const show = (found) => {
    sso = found?.sso && !passwordAnyway ? found : null;
    password.hidden = !!sso;
    note.hidden = usePassword.hidden = !sso;
    note.textContent = sso ? `Addresses of ${sso.domain} sign in through their organisation's single sign-on.` : '';
    button.textContent = sso ? 'Continue with single sign-on' : 'Sign in';
  };
  el.querySelector('input[name="email"]').addEventListener('change', async (e) => {
    const email = e.target.value.trim();
    passwordAnyway = false;
    show(email.includes('@') ? await lookup(email) : null);
  });
  return el;
}

function resetSection() {
  const forgot = messageForm({
    label: 'Get a reset link',
    submit: 'Send reset link',
    fields: [{ name: 'email', label: 'Address of your account', type: 'email', required: true, autocomplete: 'username' }],
    send: (v) => api.post('/auth/password-reset', { email: v.email }),
  });
  return section('Get a reset link', ...forgot);
}

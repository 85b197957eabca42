import * as api from '../api.js';
import { app } from '../app.js';
import { form, h, section } from '../ui.js';

export const title = 'Sign in';

export async function render(ctx) {
  const next = ctx.query.get('next');
  const signIn = form({
    label: 'Sign in',
    submit: 'Sign in',
    fields: [
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
    ],
    onSubmit: async (v) => {
      const res = await api.post('/auth/login', { email: v.email, password: v.password });
      app.state.user = res.user;
      if (res.user.passwordChangeRequired) return ctx.navigate('/account/password', { replace: true });
      await app.refreshTeams();
      ctx.navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
    },
  });
  const sent = h('p', { role: 'status' });
  const forgot = form({
    label: 'Get a reset link',
    submit: 'Send reset link',
    fields: [{ name: 'email', label: 'Address of your account', type: 'email', required: true, autocomplete: 'username' }],
    onSubmit: async (v, el) => {
      const res = await api.post('/auth/password-reset', { email: v.email });
      el.reset();
      sent.textContent = res.message;
    },
  });
  const settings = await api.get('/settings').catch(() => ({}));
  return h('div', { class: 'narrow' }, h('h1', {}, 'Sign in to Flowyard'), signIn,
    settings.signUp ? h('p', {}, 'New here? ', h('a', { href: '/signup' }, 'Create an account')) : null,
    h('details', { class: 'forgot' }, h('summary', {}, 'Forgot your password?'), section('Get a reset link', forgot, sent)));
}

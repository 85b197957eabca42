import * as api from '../api.js';
import { app } from '../app.js';
import { form, h } from '../ui.js';

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
      await app.refreshTeams();
      ctx.navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
    },
  });
  return h('div', { class: 'narrow' }, h('h1', {}, 'Sign in to Flowyard'), signIn);
}

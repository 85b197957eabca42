import * as api from '../api.js';
import { app } from '../app.js';
import { announce, form, h } from '../ui.js';

export const title = 'Confirm your address';

// A confirmation link from the sign-up e-mail: the password chosen at sign-up confirms it (so a link from someone
// else's sign-up with your address confirms nothing), and signs in.
export async function render(ctx) {
  const confirm = form({
    label: 'Confirm your address',
    submit: 'Confirm and sign in',
    fields: [{ name: 'password', label: 'Password chosen at sign-up', type: 'password', required: true, autocomplete: 'current-password' }],
    onSubmit: async (v) => {
      await api.post(`/auth/verify-email/${encodeURIComponent(ctx.params.token)}`, { password: v.password });
      await app.loadSession();
      announce('Your address is confirmed.');
      ctx.navigate('/', { replace: true });
    },
  });
  return h('div', { class: 'narrow' }, h('h1', {}, 'Confirm your address'), confirm);
}

import * as api from '../api.js';
import { announce, form, h } from '../ui.js';

export const title = 'Reset password';

// A password-reset link from an e-mail: the new password is set once, and every session of the account ends.
export async function render(ctx) {
  const reset = form({
    label: 'Choose a new password',
    submit: 'Set password',
    fields: [{ name: 'newPassword', label: 'New password', type: 'password', required: true, autocomplete: 'new-password',
      hint: 'At least 12 characters, and not one of the most common passwords.' }],
    onSubmit: async (v) => {
      await api.post(`/auth/password-reset/${encodeURIComponent(ctx.params.token)}`, { newPassword: v.newPassword });
      announce('Your password was set. Sign in with it.');
      ctx.navigate('/signin', { replace: true });
    },
  });
  return h('div', { class: 'narrow' }, h('h1', {}, 'Reset password'), reset);
}

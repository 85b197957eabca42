import * as api from '../api.js';
import { app } from '../app.js';
import { announce, form, h } from '../ui.js';

export const title = 'Change password';

// The caller changes their own password. A user held to changing it (the generated first admin) lands here and
// may go nowhere else until it is done; other sessions of the account end, this one stays.
export async function render(ctx) {
  const required = app.state.user?.passwordChangeRequired;
  const change = form({
    label: 'Change password',
    submit: 'Change password',
    fields: [
      { name: 'currentPassword', label: 'Current password', type: 'password', required: true, autocomplete: 'current-password' },
      { name: 'newPassword', label: 'New password', type: 'password', required: true, autocomplete: 'new-password',
        hint: 'At least 12 characters, and not one of the most common passwords.' },
    ],
    onSubmit: async (v, el) => {
      await api.post('/user/password', { currentPassword: v.currentPassword, newPassword: v.newPassword });
      el.reset();
      announce('Your password was changed. Your other sessions were signed out.');
      if (required) {
        await app.loadSession();
        ctx.navigate('/', { replace: true });
      }
    },
  });
  return h('div', { class: 'narrow' }, h('h1', {}, 'Change password'),
    required ? h('p', { role: 'note', class: 'hint' }, 'Your password was generated for you: choose your own before going on.') : null,
    change);
}

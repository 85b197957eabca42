import * as api from '../api.js';
import { announce, badge, fmtTime, form, h, replace, section, table } from '../ui.js';

export const title = 'Users';

// The API lists and creates users; it has no route to change or disable one, so neither does this page.
export async function render(ctx) {
  const listEl = h('div', {});
  const draw = (items) => replace(listEl, table({
    caption: 'Users of the platform',
    columns: [
      { label: 'Name', cell: (u) => u.name || '—' },
      { label: 'Email', cell: (u) => u.email },
      { label: 'Role', cell: (u) => (u.admin ? badge('admin') : 'user') },
      { label: 'Created', cell: (u) => fmtTime(u.createdAt) },
    ],
    rows: items,
    rowAttrs: (u) => ({ 'data-user': u.email }),
  }));
  draw(await api.list('/users'));
  return [
    h('h1', {}, 'Users'),
    listEl,
    section('New user', form({
      label: 'Create a user', submit: 'Create user',
      fields: [{ name: 'email', label: 'Email', type: 'email', required: true },
        { name: 'name', label: 'Name', required: true },
        { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password' },
        { name: 'admin', label: 'Platform admin', type: 'checkbox' }],
      onSubmit: async (v, el) => {
        const u = await api.post('/users', v);
        el.reset();
        announce(`User ${u.email} created.`);
        draw(await api.list('/users'));
      },
    })),
  ];
}

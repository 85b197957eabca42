import * as api from '../api.js';
import { announce, badge, copyBlock, fmtTime, form, h, replace, section } from '../ui.js';
import { status, userActions } from './admin-users.js';

export const title = 'User';

// One user, for a platform admin: change the e-mail, name and admin flag, and the actions of the users page.
export async function render(ctx) {
  const path = `/users/${encodeURIComponent(ctx.params.user)}`;
  let u = await api.get(path);
  ctx.title = u.name || u.email;
  const head = h('div', {});
  const linkEl = h('div', {});
  const draw = () => replace(head,
    h('p', {}, badge(status(u)), ' ', u.admin ? badge('admin') : null, ' Created ', fmtTime(u.createdAt)),
    h('p', {}, userActions(u, done)));
  async function done(message, link) {
    if (message.endsWith('deleted.')) return ctx.navigate('/admin/users', { replace: true });
    u = await api.get(path);
    draw();
    replace(linkEl, link ? copyBlock(`Reset link for ${u.email}`, link) : null);
    announce(message);
  }
  draw();
  return [
    h('h1', {}, u.name || u.email),
    head, linkEl,
    section('Details', form({
      label: 'Change user', submit: 'Save changes',
      fields: [{ name: 'email', label: 'Email', type: 'email', required: true, value: u.email },
        { name: 'name', label: 'Name', required: true, value: u.name },
        { name: 'admin', label: 'Platform admin', type: 'checkbox', value: u.admin }],
      onSubmit: async (v) => {
        u = await api.patch(path, v);
        draw();
        announce(`${u.email} was saved.`);
      },
    })),
    h('p', {}, h('a', { href: '/admin/users' }, 'All users')),
  ];
}

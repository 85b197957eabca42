import * as api from '../api.js';
import { action, announce, badge, copyBlock, fmtTime, form, h, replace, section, table } from '../ui.js';

export const title = 'Users';

// status is what an account may do now, in words (the badge carries the text, not only a colour).
export const status = (u) => (u.suspended ? 'suspended' : u.emailVerified ? 'active' : 'unconfirmed');

// userActions are a platform admin's buttons for one user: suspend or reinstate, force a password reset, delete.
// done(message, link) redraws and says what happened; link is a reset link when nothing was mailed.
export function userActions(u, done) {
  const who = u.name || u.email;
  const suspend = u.suspended
    ? action('Reinstate', async () => { await api.post(`/users/${u.id}/actions/reinstate`); done(`${who} was reinstated.`); })
    : action('Suspend', async () => { await api.post(`/users/${u.id}/actions/suspend`); done(`${who} was suspended.`); }, {
      confirm: { title: `Suspend ${who}?`, text: 'Their sessions and live views end at once, and their tokens stop working until you reinstate them.', confirm: 'Suspend' } });
  return h('span', {}, suspend, ' ',
    action('Reset password', async () => {
      const res = await api.post(`/users/${u.id}/actions/reset-password`);
      done(`${who} must choose a new password: their sessions ended${res.link ? '' : ' and a reset link was mailed'}.`, res.link);
    }, { confirm: { title: `Reset the password of ${who}?`, text: 'Their password stops working and every session ends; a reset link is mailed to them.', confirm: 'Reset password' } }),
    ' ',
    action('Delete', async () => { await api.del(`/users/${u.id}`); done(`${who} was deleted.`); }, {
      danger: true,
      confirm: { title: `Delete ${who}?`, text: 'Their memberships, sessions and tokens go; what they created stays with its team.', confirm: 'Delete user' } }));
}

export async function render(ctx) {
  const listEl = h('div', {});
  const linkEl = h('div', {});
  const draw = async () => replace(listEl, table({
    caption: 'Users of the platform',
    columns: [
      { label: 'Name', cell: (u) => h('a', { href: `/admin/users/${u.id}` }, u.name || '—') },
      { label: 'Email', cell: (u) => u.email },
      { label: 'Role', cell: (u) => (u.admin ? badge('admin') : 'user') },
      { label: 'Status', cell: (u) => badge(status(u)) },
      { label: 'Created', cell: (u) => fmtTime(u.createdAt) },
      { label: 'Actions', cell: (u) => userActions(u, after(u)) },
    ],
    rows: await api.list('/users'),
    rowAttrs: (u) => ({ 'data-user': u.email }),
  }));
  const after = (u) => async (message, link) => {
    replace(linkEl, link ? copyBlock(`Reset link for ${u.email}`, link) : null);
    await draw();
    announce(message);
  };
  await draw();
  const settings = await api.get('/settings');
  return [
    h('h1', {}, 'Users'),
    listEl, linkEl,
    section('Sign-up', form({
      label: 'Sign-up setting', submit: 'Save',
      fields: [{ name: 'signUp', label: 'Anyone may create an account (its e-mail address is confirmed first)', type: 'checkbox', value: settings.signUp }],
      onSubmit: async (v) => {
        const res = await api.patch('/settings', { signUp: v.signUp });
        announce(res.signUp ? 'Sign-up is on.' : 'Sign-up is off.');
      },
    })),
    section('Two-factor sign-in', form({
      label: 'Two-factor requirement', submit: 'Save',
      fields: [{ name: 'requireTwoFactor', label: 'Require two-factor sign-in', type: 'checkbox', value: settings.requireTwoFactor,
        hint: 'Signed-in users without it can do nothing but set it up. Single sign-on users are not held (their provider ' +
          'decides); personal access tokens keep working. Turn on your own two-factor sign-in first.' }],
      onSubmit: async (v) => {
        const res = await api.patch('/settings', { requireTwoFactor: v.requireTwoFactor });
        announce(res.requireTwoFactor ? 'Two-factor sign-in is required.' : 'Two-factor sign-in is not required.');
      },
    })),
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
        await draw();
      },
    })),
  ];
}

import * as api from '../api.js';
import { action, announce, copyBlock, fmtTime, form, h, replace, section, table } from '../ui.js';

export const title = 'Members';

const roles = ['owner', 'member', 'viewer', 'dashboard'].map((r) => ({ value: r, label: r[0].toUpperCase() + r.slice(1) }));

export async function render(ctx) {
  const base = `/teams/${ctx.team.id}`;
  const [members, types] = await Promise.all([api.list(`${base}/members`),
    ctx.can('team:edit') ? api.list('/team-types').catch(() => []) : []]);
  const listEl = h('div', {});
  const refresh = async () => draw(await api.list(`${base}/members`));
  const draw = (items) => replace(listEl, table({
    caption: 'Members of the team',
    columns: [
      { label: 'Name', cell: (m) => m.name || '—' },
      { label: 'Email', cell: (m) => m.email },
      { label: 'Role', cell: (m) => (ctx.can('team:user:change-role') ? roleForm(ctx, base, m, refresh) : m.role) },
      { label: 'Actions', cell: (m) => removeButton(ctx, base, m, refresh) },
    ],
    rows: items,
    rowAttrs: (m) => ({ 'data-member': m.email }),
  }));
  draw(members);
  return [
    h('h1', {}, 'Members'),
    listEl,
    addMemberSection(ctx, base, refresh),
    ctx.can('team:edit') ? settingsSection(ctx, base, types) : null,
  ];
}

// addMemberSection: owners invite by e-mail (the person joins by accepting); platform admins may also add an
// existing account at once. Without a mail server the API answers the invitation link, shown here to pass on.
function addMemberSection(ctx, base, refresh) {
  if (!ctx.can('team:user:invite')) return null;
  const pendingEl = h('div', {});
  const linkEl = h('div', {});
  const refreshPending = async () => replace(pendingEl, table({
    caption: 'Pending invitations',
    empty: 'No pending invitations.',
    columns: [
      { label: 'Email', cell: (i) => i.email },
      { label: 'Role', cell: (i) => i.role },
      { label: 'Expires', cell: (i) => fmtTime(i.expiresAt) },
      { label: 'Actions', cell: (i) => action('Revoke', async () => {
        await api.del(`${base}/invitations/${i.id}`);
        announce(`The invitation to ${i.email} was revoked.`);
        await refreshPending();
      }) },
    ],
    rows: await api.list(`${base}/invitations`),
    rowAttrs: (i) => ({ 'data-invitation': i.email }),
  }));
  refreshPending();
  const invite = form({
    label: 'Invite a member', submit: 'Send invitation', cls: 'inline',
    fields: [{ name: 'email', label: 'Email', type: 'email', required: true, hint: 'They join when they accept the e-mailed link.' },
      { name: 'role', label: 'Role', type: 'select', value: 'member', options: roles }],
    onSubmit: async (v, el) => {
      const inv = await api.post(`${base}/invitations`, v);
      el.reset();
      replace(linkEl, inv.link ? copyBlock('Invitation link', inv.link) : null);
      announce(inv.link ? `Invitation to ${v.email} created: no mail server is configured, so pass on the link.` : `Invitation sent to ${v.email}.`);
      await refreshPending();
    },
  });
  return [section('Invite a member', invite, linkEl, pendingEl), ctx.user.admin ? directAddSection(base, refresh) : null];
}

// directAddSection: a platform admin adds an existing account without an invitation.
function directAddSection(base, refresh) {
  return section('Add a member', form({
    label: 'Add a member', submit: 'Add member', cls: 'inline',
    fields: [{ name: 'email', label: 'Email', type: 'email', required: true, hint: 'The person needs a Flowyard account.' },
      { name: 'role', label: 'Role', type: 'select', value: 'member', options: roles }],
    onSubmit: async (v, el) => {
      await api.post(`${base}/members`, v);
      el.reset();
      announce(`${v.email} added as ${v.role}.`);
      await refresh();
    },
  }));
}

// roleForm changes one member's role; the last owner's demotion comes back as a 409 shown beside it.
function roleForm(ctx, base, m, refresh) {
  return form({
    label: `Role of ${m.email}`, submit: 'Change role', cls: 'inline',
    fields: [h('div', { class: 'field', 'data-field': 'role' }, // one visible label per row would repeat the column header
      h('label', { for: `role-${m.userId}`, class: 'visually-hidden' }, `Role of ${m.name || m.email}`),
      h('select', { id: `role-${m.userId}`, name: 'role' }, roles.map((r) => h('option', { value: r.value, selected: r.value === m.role }, r.label))),
      h('p', { class: 'field-error' }))],
    onSubmit: async (v) => {
      await api.patch(`${base}/members/${m.userId}`, { role: v.role });
      announce(`${m.email} is now ${v.role}.`);
      if (m.userId === ctx.user.id) { await ctx.refreshTeams(); return ctx.navigate(location.pathname, { replace: true }); }
      await refresh();
    },
  });
}

// removeButton: owners remove anyone; everyone may leave (remove themselves).
function removeButton(ctx, base, m, refresh) {
  const self = m.userId === ctx.user.id;
  if (!self && !ctx.can('team:user:remove')) return '';
  return action(self ? 'Leave team' : 'Remove', async () => {
    await api.del(`${base}/members/${m.userId}`);
    announce(self ? `You left ${ctx.team.name}.` : `${m.email} removed.`);
    if (self) { await ctx.refreshTeams(); return ctx.navigate('/'); }
    await refresh();
  }, { danger: true, confirm: { title: self ? `Leave ${ctx.team.name}?` : `Remove ${m.email}?`, confirm: self ? 'Leave' : 'Remove' } });
}

function settingsSection(ctx, base, types) {
  return section('Team settings', form({
    label: 'Team settings', submit: 'Save team',
    fields: [{ name: 'name', label: 'Team name', value: ctx.team.name, required: true },
      { name: 'slug', label: 'Slug', value: ctx.team.slug, required: true, hint: 'Part of the team\'s addresses.' },
      types.length ? { name: 'teamTypeId', label: 'Team type', type: 'select', value: ctx.team.teamTypeId,
        options: types.map((t) => ({ value: t.id, label: t.name })) } : null].filter(Boolean),
    onSubmit: async (v) => {
      const changed = Object.fromEntries(Object.entries(v).filter(([k, val]) => val !== ctx.team[k]));
      const team = await api.patch(base, changed);
      await ctx.refreshTeams();
      announce('Team saved.');
      ctx.navigate(`/teams/${team.slug}/members`, { replace: true });
    },
  }), ctx.can('team:delete') ? h('div', { class: 'actions' }, action('Delete team', async () => {
    await api.del(base);
    await ctx.refreshTeams();
    ctx.navigate('/');
  }, { danger: true, confirm: { title: `Delete ${ctx.team.name}?`, text: 'The team must have no applications left.', confirm: 'Delete team' } })) : null);
}

import * as api from '../api.js';
import { form, h, section, table } from '../ui.js';

export const title = 'Applications';

export async function render(ctx) {
  const apps = await api.list(`/teams/${ctx.team.id}/applications`);
  ctx.title = `${ctx.team.name} · Applications`;
  return [
    h('h1', {}, 'Applications'),
    h('p', { class: 'muted' }, `Team ${ctx.team.name} · your role: ${ctx.role || (ctx.user.admin ? 'platform admin' : 'none')}`),
    table({
      caption: 'Applications of the team',
      columns: [
        { label: 'Name', cell: (a) => h('a', { href: ctx.teamPath(`/applications/${a.id}`) }, a.name) },
        { label: 'Description', cell: (a) => a.description || '—' },
      ],
      rows: apps,
      empty: 'No applications yet.',
    }),
    ctx.can('application:create') ? section('New application', form({
      label: 'Create an application',
      submit: 'Create application',
      fields: [
        { name: 'name', label: 'Application name', required: true },
        { name: 'description', label: 'Description (optional)' },
      ],
      onSubmit: async (v) => {
        const app = await api.post(`/teams/${ctx.team.id}/applications`, { name: v.name, description: v.description || undefined });
        ctx.navigate(ctx.teamPath(`/applications/${app.id}`));
      },
    })) : null,
  ];
}

import * as api from '../api.js';
import { announce, form, h, section, table } from '../ui.js';

export const title = 'Pipelines';

// The team's pipelines, application by application, and a form to make one.
export async function render(ctx) {
  const apps = await api.list(`/teams/${ctx.team.id}/applications`);
  const byApp = await Promise.all(apps.map(async (a) => ({ app: a, pipelines: await api.list(`/applications/${a.id}/pipelines`) })));
  const rows = byApp.flatMap(({ app, pipelines }) => pipelines.map((p) => ({ ...p, app })));
  return [
    h('h1', {}, 'Pipelines'),
    table({
      caption: 'Pipelines of the team',
      columns: [
        { label: 'Pipeline', cell: (p) => h('a', { href: ctx.teamPath(`/pipelines/${p.id}`) }, p.name) },
        { label: 'Application', cell: (p) => h('a', { href: ctx.teamPath(`/applications/${p.app.id}`) }, p.app.name) },
        { label: 'Stages', cell: (p) => (p.stages || []).map((s) => s.name).join(' → ') || '—' },
      ],
      rows,
      empty: 'No pipelines yet.',
    }),
    ctx.can('pipeline:create') && apps.length ? section('New pipeline', form({
      label: 'Create a pipeline', submit: 'Create pipeline', cls: 'inline',
      fields: [{ name: 'name', label: 'Pipeline name', required: true },
        { name: 'applicationId', label: 'Application', type: 'select', options: apps.map((a) => ({ value: a.id, label: a.name })) }],
      onSubmit: async (v) => {
        const p = await api.post(`/applications/${v.applicationId}/pipelines`, { name: v.name });
        announce(`Pipeline ${p.name} created.`);
        ctx.navigate(ctx.teamPath(`/pipelines/${p.id}`));
      },
    })) : null,
  ];
}

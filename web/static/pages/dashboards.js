// The team's dashboards: FlowFuse Dashboard 2 at /dashboard on each instance's own address. All the dashboard
// role sees of a team.
import * as api from '../api.js';
import { h, table } from '../ui.js';

export const title = 'Dashboards';

export async function render(ctx) {
  const items = await api.list(`/teams/${ctx.team.id}/dashboards`);
  return [
    h('h1', {}, 'Dashboards'),
    table({
      caption: 'Dashboards of the team\'s instances',
      columns: [
        { label: 'Instance', cell: (d) => d.name },
        { label: 'State', cell: (d) => d.state },
        { label: 'Dashboard', cell: (d) => h('a', { href: d.url, target: '_blank', rel: 'noopener' }, d.url) },
        { label: 'Access', cell: (d) => (d.protected ? 'team members' : 'anyone') },
      ],
      rows: items,
      empty: 'The team has no instances yet.',
    }),
  ];
}

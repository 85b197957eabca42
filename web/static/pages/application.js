import * as api from '../api.js';
import { badge, fmtTime, form, h, replace, section, table } from '../ui.js';

export const title = 'Application';

const tabs = [
  { id: 'instances', label: 'Instances', action: 'project:read' },
  { id: 'devices', label: 'Devices', action: 'team:device:list' },
  { id: 'groups', label: 'Device groups', action: 'application:device-group:list' },
];

export async function render(ctx) {
  const app = await api.get(`/applications/${ctx.params.app}`);
  ctx.title = app.name;
  const shown = tabs.filter((t) => ctx.can(t.action));
  const tab = shown.find((t) => t.id === ctx.query.get('tab')) || shown[0];
  const base = ctx.teamPath(`/applications/${app.id}`);
  const body = tab ? await ({ instances, devices, groups })[tab.id](ctx, app) : h('p', {}, 'Your role shows nothing here.');
  return [
    h('p', { class: 'muted' }, h('a', { href: ctx.teamPath() }, 'Applications'), ' / '),
    h('h1', {}, app.name),
    app.description ? h('p', {}, app.description) : null,
    h('nav', { class: 'tabs', 'aria-label': 'Application sections' },
      shown.map((t) => h('a', { href: `${base}?tab=${t.id}`, 'aria-current': t === tab ? 'page' : null }, t.label))),
    body,
  ];
}

// instanceRow keeps one instance's row live: the team's `instance` events redraw its state.
function instanceTable(ctx, items, stacks) {
  const stackName = (id) => stacks.find((s) => s.id === id)?.name || id;
  const states = new Map();
  const el = table({
    caption: 'Instances of the application',
    columns: [
      { label: 'Name', cell: (i) => h('a', { href: ctx.teamPath(`/instances/${i.id}`) }, i.name) },
      { label: 'State', cell: (i) => { const c = h('span', {}, badge(i.state)); states.set(i.id, c); return c; } },
      { label: 'Stack', cell: (i) => stackName(i.stackId) },
      { label: 'URL', cell: (i) => (i.url ? h('a', { href: i.url, target: '_blank', rel: 'noopener' }, i.url) : '—') },
      { label: 'Editor', cell: (i) => (i.editorUrl ? h('a', { href: i.editorUrl, target: '_blank', rel: 'noopener' }, 'Open editor', h('span', { class: 'visually-hidden' }, ` of ${i.name}`)) : '—') },
    ],
    rows: items,
    empty: 'No instances yet.',
  });
  ctx.on('instance', (i) => { if (states.has(i.id)) replace(states.get(i.id), badge(i.state)); });
  return el;
}

async function instances(ctx, app) {
  const [items, stacks] = await Promise.all([api.list(`/applications/${app.id}/instances`), api.list('/stacks').catch(() => [])]);
  return [
    instanceTable(ctx, items, stacks),
    ctx.can('project:create') ? await createInstanceForm(ctx, app, stacks) : null,
  ];
}

const option = (o) => ({ value: o.id, label: o.name });
const active = (list) => list.filter((o) => o.active !== false);

async function createInstanceForm(ctx, app, stacks) {
  const [types, templates, blueprints] = await Promise.all([api.list('/instance-types'), api.list('/templates'),
    api.list(`/teams/${ctx.team.id}/blueprints`)]);
  return section('New instance', form({
    label: 'Create an instance',
    submit: 'Create instance',
    fields: [
      { name: 'name', label: 'Instance name', required: true, hint: 'Lower-case letters, digits and dashes; it becomes part of the address and cannot be changed.' },
      { name: 'instanceTypeId', label: 'Instance type', type: 'select', options: active(types).map(option) },
      { name: 'stackId', label: 'Stack', type: 'select', options: active(stacks).map((s) => ({ value: s.id, label: `${s.name} (Node-RED ${s.nodeRedVersion})` })) },
      { name: 'templateId', label: 'Template', type: 'select', options: active(templates).map(option) },
      { name: 'blueprintId', label: 'Blueprint (the flows and modules it starts with)', type: 'select',
        options: [{ value: '', label: 'None: empty flows' }, ...blueprints.map(option)] },
    ],
    onSubmit: async (v) => {
      const res = await api.post(`/applications/${app.id}/instances`, { ...v, blueprintId: v.blueprintId || undefined });
      ctx.navigate(ctx.teamPath(`/instances/${res.instance.id}`));
    },
  }));
}

async function devices(ctx, app) {
  const items = await api.list(`/applications/${app.id}/devices`);
  const cells = new Map();
  const el = table({
    caption: 'Devices of the application',
    columns: [
      { label: 'Name', cell: (d) => h('a', { href: ctx.teamPath(`/devices/${d.id}`) }, d.name) },
      { label: 'Status', cell: (d) => { const c = h('span', {}, badge(d.status)); cells.set(d.id, c); return c; } },
      { label: 'State', cell: (d) => d.state || '—' },
      { label: 'Last seen', cell: (d) => fmtTime(d.lastSeenAt) },
    ],
    rows: items,
    empty: 'No devices in this application. Create a provisioning token to add some.',
  });
  ctx.on('device', (d) => { if (cells.has(d.id)) replace(cells.get(d.id), badge(d.status)); });
  return [el, ctx.can('team:device:provisioning-token:create') ? h('p', {}, h('a', { href: ctx.teamPath('/provisioning') }, 'Provision devices with a token')) : null];
}

async function groups(ctx, app) {
  const items = await api.list(`/applications/${app.id}/device-groups`);
  return [
    table({
      caption: 'Device groups of the application',
      columns: [
        { label: 'Name', cell: (g) => h('a', { href: ctx.teamPath(`/device-groups/${g.id}`) }, g.name) },
        { label: 'Devices', cell: (g) => String(g.deviceCount) },
        { label: 'Description', cell: (g) => g.description || '—' },
      ],
      rows: items,
      empty: 'No device groups yet.',
    }),
    ctx.can('application:device-group:create') ? section('New device group', form({
      label: 'Create a device group',
      submit: 'Create group',
      fields: [{ name: 'name', label: 'Group name', required: true }, { name: 'description', label: 'Description (optional)' }],
      onSubmit: async (v) => {
        const g = await api.post(`/applications/${app.id}/device-groups`, { name: v.name, description: v.description || undefined });
        ctx.navigate(ctx.teamPath(`/device-groups/${g.id}`));
      },
    })) : null,
  ];
}

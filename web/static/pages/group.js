import * as api from '../api.js';
import { action, announce, badge, fmtTime, form, h, replace, section, table } from '../ui.js';
import { operationLine, watchOperation } from '../operation.js';
import { fleetSettingsSection } from '../fleet.js';

export const title = 'Device group';

// Which operator actions a rollout in each status accepts, as the rollout workflow's Update validators do (the
// API answers 409 to the others).
const controls = {
  running: ['pause', 'abort'],
  awaiting_approval: ['approve', 'pause', 'abort'],
  paused: ['resume', 'abort'],
};
const finished = ['succeeded', 'failed', 'rolled_back', 'aborted'];

export async function render(ctx) {
  const group = await api.get(`/device-groups/${ctx.params.group}`);
  ctx.title = group.name;
  const [app, appDevices] = await Promise.all([api.get(`/applications/${group.applicationId}`), api.list(`/applications/${group.applicationId}/devices`)]);
  const devices = new Map(appDevices.map((d) => [d.id, d]));
  const snaps = await applicationSnapshots(ctx, group.applicationId);
  const snapName = (sid) => (sid ? snaps.find((x) => x.id === sid)?.name || sid : '—');
  const rolloutEl = h('div', { id: 'rollout' });
  const membersEl = h('div', {});
  const base = ctx.teamPath(`/device-groups/${group.id}`);

  // The table follows every device event; the add form is redrawn only when its candidates change, so a
  // status event does not clear boxes the user has ticked.
  const tableEl = h('div', {});
  const addEl = h('div', {});
  let candidates = '';
  const drawMembers = () => {
    const inGroup = [...devices.values()].filter((d) => d.deviceGroupId === group.id);
    const others = [...devices.values()].filter((d) => d.deviceGroupId !== group.id);
    replace(tableEl, table({ caption: `Devices in ${group.name}`, rows: inGroup, empty: 'No devices in this group yet.', columns: [
      { label: 'Name', cell: (d) => h('a', { href: ctx.teamPath(`/devices/${d.id}`) }, d.name) },
      { label: 'Status', cell: (d) => badge(d.status) },
      { label: 'Active snapshot', cell: (d) => snapName(d.activeSnapshotId) },
      { label: 'Last seen', cell: (d) => fmtTime(d.lastSeenAt) }] }));
    const ids = others.map((d) => d.id).join();
    if (ids === candidates || !ctx.can('application:device-group:membership:update')) return;
    candidates = ids;
    replace(addEl, others.length ? form({
      label: 'Add devices to the group', submit: 'Add to group',
      fields: [h('fieldset', { 'data-field': 'add' }, h('legend', {}, 'Devices of the application not in this group'),
        others.map((d) => h('div', { class: 'field check' }, h('input', { type: 'checkbox', id: `add-${d.id}`, name: `add:${d.id}` }), h('label', { for: `add-${d.id}` }, d.name))),
        h('p', { class: 'field-error' }))],
      onSubmit: async (v) => {
        const add = Object.keys(v).filter((k) => k.startsWith('add:') && v[k]).map((k) => k.slice(4));
        await api.put(`/device-groups/${group.id}/devices`, { add });
        for (const d of await api.list(`/applications/${group.applicationId}/devices`)) devices.set(d.id, d);
        announce(`${add.length} device(s) added to ${group.name}.`);
        drawMembers();
      },
    }) : null);
  };
  replace(membersEl, tableEl, addEl);
  drawMembers();
  ctx.on('device', (d) => { if (d.applicationId === group.applicationId || devices.has(d.id)) { devices.set(d.id, d); drawMembers(); } });

  // The rollout shown: the one in the address, else the group's latest; one started meanwhile (elsewhere) takes
  // its place as soon as its first event arrives.
  let shown = ctx.query.get('rollout');
  if (!shown && ctx.can('rollout:read')) shown = (await api.get(`/device-groups/${group.id}/rollouts?limit=1`)).items[0]?.id;
  const show = (id) => { shown = id; return showRollout(ctx, id, rolloutEl, devices, () => shown === id); };
  if (shown) await show(shown);
  ctx.on('rollout', (r) => { if (r.groupId === group.id && r.id !== shown) show(r.id); });

  return [
    h('p', { class: 'muted' }, h('a', { href: ctx.teamPath() }, 'Applications'), ' / ',
      h('a', { href: ctx.teamPath(`/applications/${app.id}?tab=groups`) }, app.name), ' / '),
    h('h1', {}, group.name),
    group.description ? h('p', {}, group.description) : null,
    rolloutEl,
    ctx.can('rollout:control') ? rolloutForm(ctx, group, base, snaps) : null,
    section('Devices', membersEl),
    ctx.can('application:device-group:update') ? fleetSettingsSection(`/device-groups/${group.id}`, group.settings, 'group') : null,
  ];
}

// applicationSnapshots lists the snapshots of every instance of the application, named "<instance> / <name>".
async function applicationSnapshots(ctx, applicationId) {
  if (!ctx.can('project:snapshot:list')) return [];
  const instances = await api.list(`/applications/${applicationId}/instances`);
  const lists = await Promise.all(instances.map((i) => api.list(`/instances/${i.id}/snapshots`).catch(() => [])
    .then((items) => items.map((x) => ({ ...x, name: `${i.name} / ${x.name}` })))));
  return lists.flat();
}

function rolloutForm(ctx, group, base, snaps) {
  return section('Start a rollout', form({
    label: 'Start a rollout',
    submit: 'Start rollout',
    fields: [
      { name: 'snapshotId', label: 'Snapshot to deploy', type: 'select', options: snaps.map((x) => ({ value: x.id, label: x.name })) },
      { name: 'waves', label: 'Waves (percent of the group, in order)', value: '1, 10, 50, 100', hint: 'Each wave must finish before the next starts.' },
      { name: 'approval', label: 'Approval', type: 'select', options: [{ value: 'none', label: 'None: continue automatically' }, { value: 'between-waves', label: 'Approve between waves' }] },
      { name: 'waveTimeout', label: 'Wave timeout', value: '10m' },
    ],
    onSubmit: async (v) => {
      const waves = v.waves.split(/[\s,]+/).filter(Boolean).map(Number);
      const res = await api.post(`/device-groups/${group.id}/rollouts`, { snapshotId: v.snapshotId, strategy: { waves, approval: v.approval, waveTimeout: v.waveTimeout } });
      announce('Rollout started.');
      ctx.navigate(`${base}?rollout=${res.rollout.id}`);
    },
  }));
}

// showRollout draws a rollout and keeps it live with the team's `rollout` events (the same JSON as its GET).
async function showRollout(ctx, id, el, devices, isShown) {
  let ro = await api.get(`/rollouts/${id}`);
  const op = operationLine();
  const watch = watchOperation(ctx, op);
  if (ro.operationId) api.get(`/operations/${ro.operationId}`).then((o) => watch.show(o)).catch(() => {});
  const draw = () => {
    const c = ro.counts || {};
    const pct = (n) => (c.total ? (100 * n) / c.total : 0);
    const name = (deviceId) => devices.get(deviceId)?.name || deviceId;
    replace(el, h('section', { class: 'card', 'aria-labelledby': 'rollout-title' },
      h('h2', { id: 'rollout-title' }, 'Rollout ', h('span', { id: 'rollout-status' }, badge(ro.status))),
      h('p', {}, `Wave ${Math.min(ro.wave + 1, ro.waves || 1)} of ${ro.waves || '?'}`, ro.reason ? ` · ${ro.reason}` : ''),
      h('div', { class: 'meter', role: 'img', 'aria-label': `${c.updated || 0} of ${c.total || 0} devices updated, ${c.failed || 0} failed` },
        h('span', { class: 'updated', 'data-w': pct(c.updated || 0) }), h('span', { class: 'failed', 'data-w': pct(c.failed || 0) })),
      h('div', { class: 'counts', 'aria-live': 'polite' }, ['total', 'updated', 'failed', 'pending', 'rolledBack'].map((k) =>
        h('div', { 'data-count': k }, h('strong', {}, String(c[k] ?? 0)), h('span', { class: 'muted' }, k === 'rolledBack' ? 'rolled back' : k)))),
      ro.failedDevices?.length ? table({ caption: 'Failed devices', rows: ro.failedDevices, columns: [
        { label: 'Device', cell: (f) => h('a', { href: ctx.teamPath(`/devices/${f.deviceId}`) }, name(f.deviceId)) },
        { label: 'Error', cell: (f) => f.error }] }) : null,
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Rollout actions' },
        ctx.can('rollout:control') ? (controls[ro.status] || []).map((a) => action(a[0].toUpperCase() + a.slice(1), async () => {
          await api.post(`/rollouts/${id}/actions/${a}`);
          ro = await api.get(`/rollouts/${id}`);
          announce(`Rollout ${a} sent.`);
          draw();
        }, a === 'abort' ? { danger: true, confirm: { title: 'Abort the rollout?', text: 'Devices not yet updated stay as they are.', confirm: 'Abort' } } : {})) : null,
        ro.temporalUrl ? h('a', { href: ro.temporalUrl, target: '_blank', rel: 'noopener' }, 'View in Temporal UI') : null),
      op.el));
    // Widths from data attributes: the page's CSP allows no inline styles in markup, but script may set them.
    el.querySelectorAll('.meter span').forEach((s) => { s.style.width = `${s.dataset.w}%`; });
  };
  if (!isShown()) return;
  draw();
  ctx.on('rollout', (next) => {
    if (next.id !== id || !isShown()) return;
    if (next.status !== ro.status && finished.includes(next.status)) announce(`Rollout ${next.status}.`);
    ro = next;
    draw();
  });
}

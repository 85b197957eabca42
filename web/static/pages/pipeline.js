import * as api from '../api.js';
import { action, announce, badge, confirmDialog, fmtTime, form, h, replace, section, table } from '../ui.js';

export const title = 'Pipeline';

const stageActions = [
  { value: 'create_snapshot', label: 'Create a snapshot of the instance' },
  { value: 'use_latest_snapshot', label: 'Use the latest snapshot' },
  { value: 'use_active_snapshot', label: 'Use what the device runs' },
  { value: 'prompt', label: 'Ask for the snapshot when promoting' },
];
const kindPath = { instance: 'instances', device: 'devices', device_group: 'device-groups' };
const open = ['scheduled', 'awaiting_approval', 'running'];

export async function render(ctx) {
  const id = ctx.params.pipeline;
  let p = await api.get(`/pipelines/${id}`);
  const appId = p.applicationId;
  const [app, instances, devices, groups, promotions] = await Promise.all([api.get(`/applications/${appId}`),
    api.list(`/applications/${appId}/instances`), api.list(`/applications/${appId}/devices`).catch(() => []),
    api.list(`/applications/${appId}/device-groups`).catch(() => []), api.list(`/pipelines/${id}/promotions`)]);
  ctx.title = p.name;
  const targets = [...instances.map((x) => ({ kind: 'instance', ...x })), ...devices.map((x) => ({ kind: 'device', ...x })),
    ...groups.map((x) => ({ kind: 'device_group', ...x }))];
  const targetName = (t) => targets.find((x) => x.id === t.id)?.name || t.id;
  const stageName = (sid) => p.stages.find((s) => s.id === sid)?.name || sid;
  const stagesEl = h('div', {});
  const promotionsEl = h('div', {});
  const snapshotsOf = async (s) => (s.action !== 'prompt' ? [] : (await Promise.all(s.targets.filter((t) => t.kind !== 'device_group')
    .map((t) => api.list(`/${kindPath[t.kind]}/${t.id}/snapshots`).catch(() => [])))).flat());

  const drawStages = async () => replace(stagesEl, table({
    caption: 'Stages, in promotion order',
    columns: [
      { label: 'Stage', cell: (s) => h('strong', {}, s.name) },
      { label: 'Targets', cell: (s) => s.targets.map((t, i) => [i ? ', ' : '', h('a', { href: ctx.teamPath(`/${kindPath[t.kind]}/${t.id}`) }, targetName(t))]) },
      { label: 'Snapshot from', cell: (s) => stageActions.find((a) => a.value === s.action)?.label || s.action },
      { label: 'Runs', cell: (s) => (s.current ? [h('code', {}, s.current.snapshotId), ' ', fmtTime(s.current.promotedAt)] : '—') },
      { label: 'Approval', cell: (s) => [s.requiresApproval ? `${s.approverRole} approves` : 'none', s.protected ? ' · protected' : ''] },
      { label: 'Actions', cell: (s) => stageActionsCell(s) },
    ],
    rows: p.stages,
    empty: 'No stages yet: add the first one below.',
    rowAttrs: (s) => ({ 'data-stage': s.name }),
  }));

  const promoteAllowed = (next) => ctx.can('pipeline:promote') && next && (!next.protected || ctx.role === 'owner' || ctx.user.admin);
  const snapshotCache = new Map();
  function stageActionsCell(s) {
    const next = p.stages[p.stages.indexOf(s) + 1];
    const out = [];
    if (promoteAllowed(next)) out.push(promoteForm(s, next));
    if (ctx.can('pipeline:edit')) {
      out.push(action('Remove stage', async () => {
        await api.del(`/pipelines/${id}/stages/${s.id}`);
        announce(`Stage ${s.name} removed.`);
        await refresh();
      }, { danger: true, confirm: { title: `Remove stage ${s.name}?`, text: 'Its targets keep what they run.', confirm: 'Remove' } }));
    }
    return h('div', { class: 'actions' }, out);
  }

  function promoteForm(s, next) {
    const snapSelect = h('select', { id: `promote-snap-${s.id}`, name: 'snapshotId' });
    if (s.action === 'prompt') {
      const fill = (items) => replace(snapSelect, items.map((x) => h('option', { value: x.id }, x.name)));
      if (snapshotCache.has(s.id)) fill(snapshotCache.get(s.id));
      else snapshotsOf(s).then((items) => { snapshotCache.set(s.id, items); fill(items); });
    }
    return form({
      label: `Promote ${s.name} to ${next.name}`, submit: `Promote to ${next.name}`, cls: 'inline',
      fields: [
        s.action === 'prompt' ? h('div', { class: 'field', 'data-field': 'snapshotId' }, h('label', { for: snapSelect.id }, 'Snapshot'), snapSelect, h('p', { class: 'field-error' })) : null,
        { name: 'at', label: 'At (optional)', type: 'datetime-local', hint: 'Leave empty to promote now.' },
      ].filter(Boolean),
      onSubmit: async (v) => {
        const ok = await confirmDialog({ title: `Promote ${s.name} to ${next.name}?`, confirm: 'Promote',
          text: `${next.targets.map(targetName).join(', ') || 'The next stage'} will run ${s.name}'s snapshot${next.requiresApproval ? ' once approved' : ''}.` });
        if (!ok) return;
        const body = {};
        if (v.snapshotId) body.snapshotId = v.snapshotId;
        if (v.at) body.at = new Date(v.at).toISOString();
        const res = await api.post(`/pipelines/${id}/stages/${s.id}/promote`, body);
        announce(`Promotion to ${next.name} ${res.promotion.status}.`);
        await refresh();
      },
    });
  }

  const drawPromotions = (items) => replace(promotionsEl, table({
    caption: 'Promotions, newest first',
    columns: [
      { label: 'Requested', cell: (r) => fmtTime(r.createdAt) },
      { label: 'From → to', cell: (r) => `${stageName(r.sourceStageId)} → ${stageName(r.targetStageId)}` },
      { label: 'Status', cell: (r) => [badge(r.status), r.scheduledAt && r.status === 'scheduled' ? [' for ', fmtTime(r.scheduledAt)] : '',
        r.reason ? h('span', { class: 'field-error' }, ' ', r.reason) : ''] },
      { label: 'Results', cell: (r) => (r.results || []).map((x) => h('div', {}, `${targetName(x)}: `, badge(x.status), x.detail ? ` ${x.detail}` : '')) },
      { label: 'Actions', cell: (r) => (ctx.can('pipeline:promote') && open.includes(r.status) ? h('div', { class: 'actions' },
        r.status === 'awaiting_approval' ? [decide(r, 'approve', 'Approve'), decide(r, 'reject', 'Reject')] : null,
        decide(r, 'cancel', 'Cancel promotion')) : '') },
    ],
    rows: [...items].reverse(),
    empty: 'Nothing promoted yet.',
    rowAttrs: (r) => ({ 'data-promotion': r.id }),
  }));
  const decide = (r, verb, label) => action(label, async () => {
    await api.post(`/promotions/${r.id}/${verb}`);
    announce(`Promotion ${verb === 'cancel' ? 'canceled' : verb + 'd'}.`);
    await refresh();
  }, { danger: verb !== 'approve', primary: verb === 'approve',
    confirm: verb === 'approve' ? null : { title: `${label}?`, confirm: label } });

  let refreshing = null;
  const refresh = () => (refreshing ||= (async () => {
    try {
      const [np, items] = await Promise.all([api.get(`/pipelines/${id}`), api.list(`/pipelines/${id}/promotions`)]);
      if (!ctx.current()) return;
      p = np;
      drawStages();
      drawPromotions(items);
    } finally { refreshing = null; }
  })());
  // Promotions run as operations: each of their events redraws stages and promotions (no polling).
  ctx.on('operation', (op) => { if (op.subjectType === 'promotion') refresh().catch(() => {}); });
  drawStages();
  drawPromotions(promotions);

  return [
    h('p', { class: 'muted' }, h('a', { href: ctx.teamPath('/pipelines') }, 'Pipelines'), ' / ',
      h('a', { href: ctx.teamPath(`/applications/${app.id}`) }, app.name), ' / '),
    h('h1', {}, p.name),
    section('Stages', stagesEl),
    ctx.can('pipeline:edit') ? section('Add a stage', addStageForm(ctx, id, targets, refresh)) : null,
    section('Promotions', promotionsEl),
    ctx.can('pipeline:edit') || ctx.can('pipeline:delete') ? section('Pipeline settings',
      ctx.can('pipeline:edit') ? form({ label: 'Rename the pipeline', submit: 'Rename', cls: 'inline',
        fields: [{ name: 'name', label: 'Pipeline name', value: p.name, required: true }],
        onSubmit: async (v) => { p = await api.patch(`/pipelines/${id}`, { name: v.name }); announce('Pipeline renamed.'); ctx.navigate(location.pathname, { replace: true }); } }) : null,
      ctx.can('pipeline:delete') ? action('Delete pipeline', async () => {
        await api.del(`/pipelines/${id}`);
        ctx.navigate(ctx.teamPath('/pipelines'));
      }, { danger: true, confirm: { title: `Delete ${p.name}?`, text: 'Its targets keep what they run.', confirm: 'Delete' } }) : null) : null,
  ];
}

function addStageForm(ctx, id, targets, refresh) {
  const kindLabel = { instance: 'Instance', device: 'Device', device_group: 'Device group' };
  return form({
    label: 'Add a stage', submit: 'Add stage',
    fields: [
      { name: 'name', label: 'Stage name', required: true },
      { name: 'target', label: 'Target', type: 'select', options: targets.map((t) => ({ value: `${t.kind}:${t.id}`, label: `${kindLabel[t.kind]} ${t.name}` })) },
      { name: 'action', label: 'Snapshot to promote from this stage', type: 'select', options: stageActions },
      { name: 'requiresApproval', label: 'Promotions into this stage need approval', type: 'checkbox' },
      { name: 'approverRole', label: 'Who approves', type: 'select', value: 'owner', options: [{ value: 'owner', label: 'Owners' }, { value: 'member', label: 'Members' }] },
      { name: 'protected', label: 'Protected: only owners promote into it', type: 'checkbox' },
      { name: 'deployToDevices', label: 'Deploy to the devices of the instance', type: 'checkbox' },
    ],
    onSubmit: async (v, el) => {
      const [kind, tid] = (v.target || ':').split(':');
      const target = kind === 'instance' ? { instanceId: tid } : kind === 'device' ? { deviceId: tid } : kind ? { deviceGroupId: tid } : undefined;
      await api.post(`/pipelines/${id}/stages`, { name: v.name, target, action: v.action, requiresApproval: v.requiresApproval,
        approverRole: v.approverRole, protected: v.protected, deployToDevices: v.deployToDevices });
      el.reset();
      announce(`Stage ${v.name} added.`);
      await refresh();
    },
  });
}

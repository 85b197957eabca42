import * as api from '../api.js';
import { action, announce, confirmDialog, fmtTime, form, h, replace, section, table } from '../ui.js';
import { promotionsTable } from './pipeline-promotions.js';
import { addStageForm, stageActions } from './pipeline-stage.js';

export const title = 'Pipeline';

const kindPath = { instance: 'instances', device: 'devices', device_group: 'device-groups' };

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
          text: `${next.targets.map(targetName).join(', ') || 'The next stage'} will run ${v.snapshotId ? `snapshot ${snapSelect.selectedOptions[0]?.textContent}` : `${s.name}'s snapshot`}${next.requiresApproval ? ' once approved' : ''}.` });
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

  const drawPromotions = (items) => replace(promotionsEl, promotionsTable(ctx, items, { stages: p.stages, targetName, refresh }));

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

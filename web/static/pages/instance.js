import * as api from '../api.js';
import { stream } from '../sse.js';
import { action, announce, badge, confirmDialog, download, fmtTime, form, h, replace, section, table } from '../ui.js';
import { operationLine, watchOperation } from '../operation.js';
import { healthSection } from '../health.js';

export const title = 'Instance';

// The lifecycle actions, the states they make sense in, and what the confirmation says (start needs none).
const lifecycle = [
  { name: 'start', label: 'Start', when: ['stopped', 'suspended', 'crashed', 'error'] },
  { name: 'stop', label: 'Stop', when: ['running', 'crashed', 'error'], warn: 'Its flows stop running until it is started again.' },
  { name: 'restart', label: 'Restart', when: ['running', 'crashed', 'error'], warn: 'Its flows stop for a moment; changed settings and environment apply.' },
  { name: 'suspend', label: 'Suspend', when: ['running', 'stopped', 'crashed', 'error'], warn: 'It stops and gives back its resources until it is started again.' },
];

export async function render(ctx) {
  const id = ctx.params.instance;
  let inst = await api.get(`/instances/${id}`);
  const [app, template, ops, stacks] = await Promise.all([
    api.get(`/applications/${inst.applicationId}`),
    api.get(`/templates/${inst.templateId}`).catch(() => ({ settings: {}, policy: {}, env: [] })),
    api.get(`/instances/${id}/operations?limit=1`).catch(() => ({ items: [] })),
    api.list('/stacks').catch(() => []),
  ]);
  ctx.title = inst.name;

  const stateEl = h('span', {});
  const reasonEl = h('p', { class: 'muted' });
  const stackEl = h('dd', { id: 'instance-stack' });
  const actionsEl = h('div', { class: 'actions', role: 'group', 'aria-label': 'Instance actions' });
  const op = operationLine();
  const watch = watchOperation(ctx, op, (o) => o.subjectType === 'instance' && o.subjectId === id);
  if (ops.items[0]) watch.show(ops.items[0]);

  const draw = () => {
    replace(stateEl, badge(inst.state));
    stackEl.textContent = stackLabel(stacks, inst.stackId);
    reasonEl.textContent = inst.stateReason || '';
    replace(actionsEl, actionButtons(ctx, inst, watch));
  };
  draw();
  ctx.on('instance', (next) => {
    if (next.id !== id) return;
    if (next.state !== inst.state) announce(`${inst.name} is ${next.state}.`);
    inst = next;
    draw();
  });

  return [
    h('p', { class: 'muted' }, h('a', { href: ctx.teamPath() }, 'Applications'), ' / ',
      h('a', { href: ctx.teamPath(`/applications/${app.id}`) }, app.name), ' / '),
    h('h1', {}, inst.name, ' ', stateEl),
    reasonEl,
    section('Overview',
      h('dl', { class: 'facts' },
        h('dt', {}, 'URL'), h('dd', {}, inst.url ? h('a', { href: inst.url, target: '_blank', rel: 'noopener' }, inst.url) : '—'),
        h('dt', {}, 'Editor'), h('dd', {}, inst.editorUrl && ctx.can('project:flows:view')
          ? h('a', { href: inst.editorUrl, target: '_blank', rel: 'noopener', id: 'open-editor' }, 'Open editor') : '—'),
        h('dt', {}, 'Node-RED'), stackEl,
        h('dt', {}, 'Created'), h('dd', {}, fmtTime(inst.createdAt))),
      actionsEl, op.el),
    healthSection(ctx, id),
    await endpointsSection(ctx, inst),
    upgradeSection(ctx, inst, stacks, watch),
    h('div', { class: 'grid' }, settingsSection(ctx, inst, template), envSection(ctx, inst, template)),
    logsSection(ctx, id),
    await snapshotsSection(ctx, inst, watch),
  ];
}

// endpointsSection: where the flows' endpoints live (the instance's own address) and, for owners, their
// protection (the platform's sign-in for team members, or endpoint tokens for scripts).
async function endpointsSection(ctx, inst) {
  if (!ctx.can('project:endpoints:manage')) return null;
  const base = `/instances/${inst.id}`;
  const stateEl = h('p', { id: 'endpoints-protection' });
  const shownOnce = h('div', { 'aria-live': 'polite' });
  const listEl = h('div', {});
  let isProtected = inst.endpointsProtected;
  const toggle = h('div', { class: 'actions' });
  const drawState = () => {
    stateEl.textContent = isProtected
      ? 'Protected: members of the team sign in through the platform; scripts send an endpoint token.'
      : 'Open: anyone may call the endpoints.';
    replace(toggle, action(isProtected ? 'Open to anyone' : 'Protect', async () => {
      isProtected = (await api.put(`${base}/endpoints`, { protected: !isProtected })).protected;
      announce(isProtected ? 'Endpoints protected.' : 'Endpoints open to anyone.');
      drawState();
    }));
  };
  const drawList = async () => replace(listEl, table({
    caption: 'Endpoint tokens',
    columns: [
      { label: 'Name', cell: (t) => t.name },
      { label: 'Expires', cell: (t) => (t.expiresAt ? fmtTime(t.expiresAt) : 'never') },
      { label: 'Created', cell: (t) => fmtTime(t.createdAt) },
      { label: 'Actions', cell: (t) => action('Revoke', async () => {
        await api.del(`${base}/endpoint-tokens/${t.id}`);
        announce(`Token ${t.name} revoked.`);
        await drawList();
      }, { danger: true, confirm: { title: `Revoke ${t.name}?`, text: 'Callers using it are refused at once.', confirm: 'Revoke' } }) },
    ],
    rows: await api.list(`${base}/endpoint-tokens`),
    empty: 'No endpoint tokens.',
  }));
  drawState();
  await drawList();
  return section('Endpoints',
    h('p', {}, 'The flows\' http-in endpoints and dashboards are at the root of ', h('code', {}, inst.url), '.'),
    stateEl, toggle, listEl, shownOnce,
    form({
      label: 'Create an endpoint token', submit: 'Create endpoint token',
      fields: [{ name: 'name', label: 'Name of the endpoint token', required: true }],
      onSubmit: async (v, el) => {
        const t = await api.post(`${base}/endpoint-tokens`, v);
        replace(shownOnce, h('div', { class: 'card' }, h('p', {}, 'Send it as Authorization: Bearer <token>. It is shown only now.'),
          h('p', { class: 'token', id: 'endpoint-token', 'data-token': t.token }, t.token)));
        el.reset();
        await drawList();
      },
    }));
}

function actionButtons(ctx, inst, watch) {
  const out = [];
  if (ctx.can('project:change-status')) {
    for (const a of lifecycle.filter((a) => a.when.includes(inst.state))) {
      out.push(action(a.label, async () => watch.show((await api.post(`/instances/${inst.id}/actions/${a.name}`)).operation),
        a.warn ? { confirm: { title: `${a.label} ${inst.name}?`, text: a.warn, confirm: a.label } } : {}));
    }
  }
  if (ctx.can('project:delete') && inst.state !== 'deleting') {
    out.push(action('Delete instance', async () => {
      watch.show((await api.del(`/instances/${inst.id}`)).operation);
      ctx.navigate(ctx.teamPath(`/applications/${inst.applicationId}`));
    }, { danger: true, confirm: { title: `Delete ${inst.name}?`, text: 'Its flows, settings and snapshots go with it. This cannot be undone.', confirm: 'Delete' } }));
  }
  return out;
}

const stackLabel = (stacks, id) => {
  const s = stacks.find((x) => x.id === id);
  return s ? `${s.nodeRedVersion} (stack ${s.name})` : '—';
};

// upgradeSection moves the instance to another stack: an operation that snapshots it, restarts it on the new
// Node-RED and waits for its flows, and puts the old stack and flows back if they do not start.
function upgradeSection(ctx, inst, stacks, watch) {
  if (!ctx.can('project:edit')) return null;
  const choices = stacks.filter((s) => s.active && s.id !== inst.stackId && (!s.instanceTypeId || s.instanceTypeId === inst.instanceTypeId));
  if (!choices.length) return null;
  return section('Change Node-RED version', h('p', { class: 'muted' },
    'The instance is snapshotted, restarted on the stack you choose and checked until its flows run; if they do not start, it goes back to its current stack and flows.'),
  form({
    label: 'Change Node-RED version', submit: 'Change version', cls: 'inline',
    fields: [{ name: 'stackId', label: 'Stack', type: 'select',
      options: choices.map((s) => ({ value: s.id, label: `Node-RED ${s.nodeRedVersion} (stack ${s.name})` })) }],
    onSubmit: async (v) => {
      const to = stacks.find((s) => s.id === v.stackId);
      if (!(await confirmDialog({ title: `Move ${inst.name} to Node-RED ${to.nodeRedVersion}?`,
        text: 'Its flows stop while it restarts on the new version.', confirm: 'Change version' }))) return;
      watch.show((await api.post(`/instances/${inst.id}/upgrade`, { stackId: v.stackId })).operation);
      announce(`${inst.name} is moving to Node-RED ${to.nodeRedVersion}.`);
    },
  }));
}

// settingsSection edits the instance's own settings over its template's; settings the template locks are shown
// read-only with the reason, and are never sent.
function settingsSection(ctx, inst, template) {
  const keys = [...new Set([...Object.keys(template.settings || {}), ...Object.keys(inst.settings || {})])]
    .filter((k) => ['string', 'number', 'boolean'].includes(typeof (inst.settings?.[k] ?? template.settings?.[k])));
  const locked = (k) => template.policy?.[k] === false;
  const editable = ctx.can('project:edit');
  const fields = keys.map((k) => {
    const v = inst.settings?.[k] ?? template.settings?.[k];
    return { name: k, label: k, value: v, type: typeof v === 'boolean' ? 'checkbox' : typeof v === 'number' ? 'number' : 'text',
      locked: locked(k) ? 'Locked by the template' : null, readonly: !editable };
  });
  if (!fields.length) return section('Settings', h('p', { class: 'muted' }, 'No settings.'));
  if (!editable) return section('Settings', fields.map((f) => h('p', {}, h('strong', {}, f.label), ': ', String(f.value), f.locked ? ' (locked by the template)' : '')));
  return section('Settings', form({
    label: 'Instance settings', submit: 'Save settings', fields,
    onSubmit: async (v) => {
      const settings = {};
      for (const k of keys.filter((k) => !locked(k))) {
        if (v[k] !== undefined && v[k] !== template.settings?.[k]) settings[k] = v[k];
      }
      await api.patch(`/instances/${inst.id}`, { settings });
      announce('Settings saved. They apply at the next restart.');
    },
  }));
}

// envSection edits the instance's environment variables; the template's locked variables are listed, locked.
function envSection(ctx, inst, template) {
  const lockedVars = (template.env || []).filter((e) => e.locked);
  const editable = ctx.can('project:edit-env');
  const rows = h('div', { class: 'env-rows' });
  const addRow = (e = { name: '', value: '' }) => {
    const n = rows.children.length;
    rows.append(h('div', { class: 'form inline env-row', 'data-field': `env[${n}]` },
      h('div', { class: 'field' }, h('label', { for: `env-name-${n}` }, 'Name'),
        h('input', { id: `env-name-${n}`, name: `envName${n}`, value: e.name, readonly: !editable, 'aria-describedby': `env-err-${n}` })),
      h('div', { class: 'field' }, h('label', { for: `env-value-${n}` }, 'Value'),
        h('input', { id: `env-value-${n}`, name: `envValue${n}`, value: e.value, readonly: !editable })),
      h('p', { id: `env-err-${n}`, class: 'field-error' })));
  };
  (inst.env || []).filter((e) => !lockedVars.some((l) => l.name === e.name)).forEach((e) => addRow(e));
  const lockedList = lockedVars.length ? h('ul', { class: 'locked' }, lockedVars.map((e) =>
    h('li', {}, h('code', {}, e.name), ' = ', h('code', {}, e.value), ' (locked by the template)'))) : null;
  if (!editable) return section('Environment', lockedList, rows.children.length ? rows : h('p', { class: 'muted' }, 'No variables.'));
  return section('Environment', lockedList, form({
    label: 'Environment variables', submit: 'Save environment',
    extra: [rows, h('button', { type: 'button', onClick: () => addRow() }, 'Add variable')],
    onSubmit: async (v) => {
      // Rows left without a name are dropped; each row is named by its index in what is sent, and by its
      // variable, so the API's errors (env[1].name, env.LOCKED) land on the right row.
      const env = [];
      [...rows.children].forEach((row, i) => {
        const name = v[`envName${i}`];
        row.dataset.field = name ? `env[${env.length}] env.${name}` : `unsent-${i}`;
        if (name) env.push({ name, value: v[`envValue${i}`] || '' });
      });
      await api.patch(`/instances/${inst.id}`, { env });
      announce('Environment saved. It applies at the next restart.');
    },
  }));
}

// logsSection streams the runtime log (the stream sends recent lines first, then new ones); where the stream is
// refused, it shows the recent lines once.
function logsSection(ctx, id) {
  if (!ctx.can('project:log')) return null;
  const pre = h('pre', { class: 'logs', tabindex: '0', 'aria-label': 'Runtime log' });
  const note = h('p', { class: 'muted' });
  const add = (l) => {
    pre.append(`${new Date(l.ts || l.time).toLocaleTimeString()} [${l.level}] ${l.msg}\n`);
    pre.scrollTop = pre.scrollHeight;
  };
  const once = () => api.get(`/instances/${id}/logs?limit=200`)
    .then((r) => { if (ctx.current()) r.items.forEach(add); })
    .catch((err) => { note.textContent = `No logs to show: ${err.message}`; });
  ctx.onCleanup(stream(`/api/v1/instances/${id}/logs/stream?limit=200`, 'log', add, once));
  return section('Logs', note, pre);
}

async function snapshotsSection(ctx, inst, watch) {
  if (!ctx.can('project:snapshot:list')) return null;
  const listEl = h('div', {});
  const exportSel = h('select', { id: 'export-snapshot', name: 'snapshotId' });
  const targetEl = h('p', { id: 'device-target' });
  const setTarget = async (snapshotId) => {
    inst = snapshotId ? await api.put(`/instances/${inst.id}/device-target`, { snapshotId }) : await api.del(`/instances/${inst.id}/device-target`);
    announce(snapshotId ? 'The snapshot is now the target of the instance\'s devices.' : 'The instance has no device target now.');
    await refresh();
  };
  const refresh = async () => {
    const items = await api.list(`/instances/${inst.id}/snapshots`);
    const target = items.find((s) => s.id === inst.deviceTargetSnapshotId);
    const canTarget = ctx.can('device:snapshot:set-target');
    replace(targetEl, 'Devices\' target: ', target ? h('strong', {}, target.name) : inst.deviceTargetSnapshotId ? inst.deviceTargetSnapshotId : 'none',
      target && canTarget ? [' ', action('Clear device target', () => setTarget(null), { confirm: { title: 'Clear the device target?', text: 'The instance\'s devices keep running what they run; devices assigned later get nothing.', confirm: 'Clear' } })] : null);
    replace(exportSel, items.map((s) => h('option', { value: s.id }, s.name)));
    replace(listEl, table({
      caption: 'Snapshots of the instance',
      columns: [
        { label: 'Name', cell: (s) => [s.name + (s.auto ? ' (automatic)' : ''), s.id === inst.deviceTargetSnapshotId ? h('span', { class: 'badge', 'data-device-target': '' }, 'device target') : null] },
        { label: 'Created', cell: (s) => fmtTime(s.createdAt) },
        { label: 'Persistent context', cell: (s) => (s.hasContext ? 'included' : '—') },
        { label: 'Actions', cell: (s) => h('div', { class: 'actions' },
          ctx.can('project:snapshot:rollback') ? action('Roll back', async () => {
            watch.show((await api.post(`/instances/${inst.id}/rollback`, { snapshotId: s.id })).operation);
          }, { confirm: { title: `Roll back to ${s.name}?`, confirm: 'Roll back', text: 'The instance restarts with the flows, settings and environment of this snapshot' +
            (s.hasContext ? ', and its persistent context.' : '; its persistent context stays as it is.') } }) : null,
          canTarget && s.id !== inst.deviceTargetSnapshotId ? action('Set as device target', () => setTarget(s.id),
            { confirm: { title: `Deploy ${s.name} to the instance's devices?`, text: 'Every device assigned to the instance runs it, and so does a device assigned later.', confirm: 'Set target' } }) : null,
          ctx.can('snapshot:delete') ? action('Delete', async () => { await api.del(`/snapshots/${s.id}`); announce(`Snapshot ${s.name} deleted.`); await refresh(); },
            { danger: true, confirm: { title: `Delete snapshot ${s.name}?`, confirm: 'Delete' } }) : null) },
      ],
      rows: items,
      empty: 'No snapshots yet.',
      rowAttrs: (s) => ({ 'data-snapshot': s.name }),
    }));
  };
  await refresh();
  return section('Snapshots', targetEl, listEl,
    h('p', {}, h('a', { href: ctx.teamPath(`/instances/${inst.id}/snapshot-schedule`), id: 'snapshot-schedule' }, 'Automatic snapshot schedule')),
    ctx.can('project:snapshot:create') ? form({
      label: 'Take a snapshot', submit: 'Take snapshot', cls: 'inline',
      fields: [{ name: 'name', label: 'Snapshot name', required: true }, { name: 'description', label: 'Description (optional)' },
        { name: 'includeContext', label: 'Include the persistent context', type: 'checkbox' }],
      onSubmit: async (v, el) => {
        const res = await api.post(`/instances/${inst.id}/snapshots`,
          { name: v.name, description: v.description || undefined, includeContext: v.includeContext || undefined });
        if (res.operation) watch.show(res.operation);
        el.reset();
        announce(`Snapshot ${v.name} taken.`);
        await refresh();
      },
    }) : null,
    ctx.can('snapshot:export') ? form({
      label: 'Export a snapshot', submit: 'Export', cls: 'inline',
      fields: [h('div', { class: 'field', 'data-field': 'snapshotId' }, h('label', { for: 'export-snapshot' }, 'Snapshot'), exportSel, h('p', { class: 'field-error' })),
        { name: 'credentialSecret', label: 'Credential secret for the export', type: 'password', required: true, autocomplete: 'new-password' }],
      onSubmit: async (v) => {
        const doc = await api.post(`/snapshots/${v.snapshotId}/export`, { credentialSecret: v.credentialSecret });
        download(`${inst.name}-${doc.name || v.snapshotId}.json`, JSON.stringify(doc, null, 2));
      },
    }) : null);
}

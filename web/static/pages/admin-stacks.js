import * as api from '../api.js';
import { action, announce, badge, confirmDialog, fmtTime, form, h, replace, section, table } from '../ui.js';
import { activeColumn, activeField, objectPage } from './admin-crud.js';

export const title = 'Stacks';

export async function render(ctx) {
  const types = await api.list('/instance-types');
  const typeName = (id) => types.find((t) => t.id === id)?.name || '—';
  const page = await objectPage(ctx, {
    path: '/stacks', heading: 'Stacks', noun: 'stack',
    intro: 'A stack is the Node-RED and Node.js version an instance runs, with its memory and CPU.',
    columns: [
      { label: 'Name', cell: (s) => s.name },
      { label: 'Node-RED', cell: (s) => s.nodeRedVersion },
      { label: 'Node.js', cell: (s) => s.nodeVersion || 'default' },
      { label: 'Memory', cell: (s) => `${s.memoryMB} MB` },
      { label: 'CPU', cell: (s) => `${s.cpuPercent} %` },
      { label: 'Instance type', cell: (s) => typeName(s.instanceTypeId) },
      activeColumn,
    ],
    fields: (s) => [
      { name: 'name', label: 'Name', value: s?.name, required: true },
      { name: 'nodeRedVersion', label: 'Node-RED version', value: s?.nodeRedVersion, required: true, placeholder: '4.1.15' },
      { name: 'nodeVersion', label: 'Node.js version (optional)', value: s?.nodeVersion, placeholder: '22' },
      { name: 'memoryMB', label: 'Memory (MB)', type: 'number', value: s?.memoryMB ?? 256, required: true },
      { name: 'cpuPercent', label: 'CPU (% of a core)', type: 'number', value: s?.cpuPercent ?? 50, required: true },
      { name: 'instanceTypeId', label: 'Instance type', type: 'select', value: s?.instanceTypeId || '',
        options: [{ value: '', label: 'None' }, ...types.map((t) => ({ value: t.id, label: t.name }))] },
      activeField(s),
    ],
    body: (v) => ({ ...v, instanceTypeId: v.instanceTypeId || undefined, nodeVersion: v.nodeVersion || undefined }),
  });
  return ctx.user.admin ? [...page, await movesSection()] : page;
}

const stackOption = (s) => ({ value: s.id, label: `${s.name} (Node-RED ${s.nodeRedVersion})` });

// movesSection moves every instance of a stack to another one (a workflow upgrades them in waves and stops
// past the failure threshold), and lists the moves with each instance's part. Moves are platform operations,
// outside the teams' live events: Refresh reads them again.
async function movesSection() {
  const stacks = await api.list('/stacks');
  const listEl = h('div', {});
  const detail = h('div', { 'aria-live': 'polite' });
  const name = (id) => stacks.find((s) => s.id === id)?.name || id;
  const refresh = async () => {
    const moves = (await Promise.all(stacks.map((s) => api.list(`/stacks/${s.id}/moves`)))).flat()
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    replace(listEl, table({
      caption: 'Moves of instances between stacks',
      columns: [
        { label: 'From', cell: (m) => name(m.fromStackId) },
        { label: 'To', cell: (m) => name(m.toStackId) },
        { label: 'Status', cell: (m) => badge(m.status) },
        { label: 'Wave', cell: (m) => `${Math.min(m.wave + 1, m.waves)} of ${m.waves}` },
        { label: 'Instances', cell: (m) => `${m.moved} moved, ${m.failed} failed, ${m.skipped} skipped, ${m.pending} waiting of ${m.total}` },
        { label: 'Reason', cell: (m) => m.reason || '—' },
        { label: 'Started', cell: (m) => fmtTime(m.createdAt) },
        { label: 'Details', cell: (m) => h('button', { type: 'button', onClick: () => showInstances(detail, m) }, 'Instances') },
      ],
      rows: moves,
      empty: 'No moves yet.',
      rowAttrs: (m) => ({ 'data-move': m.id, 'data-status': m.status }),
    }));
  };
  await refresh();
  return section('Move every instance of a stack',
    h('p', { class: 'muted' }, 'Each instance is snapshotted, restarted on the new stack and checked until its flows run; ',
      'one whose flows do not start goes back to its stack. The instances move in waves, a few at a time, and the move stops ',
      'when more than the failure threshold of them fail.'),
    form({
      label: 'Move every instance of a stack', submit: 'Move instances',
      fields: [
        { name: 'fromStackId', label: 'From stack', type: 'select', options: stacks.map(stackOption) },
        { name: 'toStackId', label: 'To stack', type: 'select', options: stacks.filter((s) => s.active).map(stackOption) },
        { name: 'waves', label: 'Waves (cumulative %)', value: '10, 50, 100' },
        { name: 'failureThreshold', label: 'Failure threshold (%)', type: 'number', value: 10 },
        { name: 'concurrency', label: 'Instances at once', type: 'number', value: 4 },
      ],
      onSubmit: async (v) => {
        if (!(await confirmDialog({ title: `Move every instance of ${name(v.fromStackId)} to ${name(v.toStackId)}?`,
          text: 'Each instance restarts on the new stack.', confirm: 'Move instances' }))) return;
        const waves = v.waves.split(',').map((w) => Number(w.trim())).filter((w) => w);
        await api.post(`/stacks/${v.fromStackId}/move`, { toStackId: v.toStackId, waves,
          failureThreshold: v.failureThreshold === undefined ? undefined : v.failureThreshold / 100, concurrency: v.concurrency });
        announce(`The instances of ${name(v.fromStackId)} are moving to ${name(v.toStackId)}.`);
        await refresh();
      },
    }),
    h('div', { class: 'actions' }, action('Refresh', refresh)),
    listEl, detail);
}

async function showInstances(el, move) {
  const parts = await api.list(`/stack-moves/${move.id}/instances`);
  replace(el, table({
    caption: 'Instances of the move',
    columns: [
      { label: 'Instance', cell: (p) => p.name || p.instanceId },
      { label: 'Wave', cell: (p) => String(p.wave + 1) },
      { label: 'Status', cell: (p) => badge(p.status) },
      { label: 'Error', cell: (p) => p.error || '—' },
    ],
    rows: parts,
    empty: 'The move had no instances.',
    rowAttrs: (p) => ({ 'data-instance': p.name }),
  }));
}

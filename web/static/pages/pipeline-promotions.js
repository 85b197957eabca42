// A pipeline's promotions, newest first, with approve, reject and cancel for the open ones (a section of the
// pipeline page). Who may approve is the stage's approver role; the API answers 403/409 beside the button.
import * as api from '../api.js';
import { action, announce, badge, fmtTime, h, table } from '../ui.js';

const open = ['scheduled', 'awaiting_approval', 'running'];

export function promotionsTable(ctx, items, { stageName, targetName, refresh }) {
  const decide = (r, verb, label) => action(label, async () => {
    await api.post(`/promotions/${r.id}/${verb}`);
    announce(`Promotion ${verb === 'cancel' ? 'canceled' : verb + 'd'}.`);
    await refresh();
  }, { danger: verb !== 'approve', primary: verb === 'approve',
    confirm: verb === 'approve' ? null : { title: `${label}?`, confirm: label } });
  return table({
    caption: 'Promotions, newest first',
    columns: [
      { label: 'Requested', cell: (r) => fmtTime(r.createdAt) },
      { label: 'From → to', cell: (r) => `${stageName(r.sourceStageId)} → ${stageName(r.targetStageId)}` },
      { label: 'Status', cell: (r) => [badge(r.status), r.scheduledAt && open.includes(r.status) ? [' for ', fmtTime(r.scheduledAt)] : '',
        r.reason ? h('span', { class: 'field-error' }, ' ', r.reason) : ''] },
      { label: 'Results', cell: (r) => (r.results || []).map((x) => h('div', {}, `${targetName(x)}: `, badge(x.status), x.detail ? ` ${x.detail}` : '')) },
      { label: 'Actions', cell: (r) => (ctx.can('pipeline:promote') && open.includes(r.status) ? h('div', { class: 'actions' },
        r.status === 'awaiting_approval' ? [decide(r, 'approve', 'Approve'), decide(r, 'reject', 'Reject')] : null,
        decide(r, 'cancel', 'Cancel promotion')) : '') },
    ],
    rows: [...items].reverse(),
    empty: 'Nothing promoted yet.',
    rowAttrs: (r) => ({ 'data-promotion': r.id }),
  });
}

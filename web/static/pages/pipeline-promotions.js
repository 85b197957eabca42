// A pipeline's promotions, newest first, with approve, reject and cancel for the open ones (a section of the
// pipeline page). Who may approve is the stage's approver role; the API answers 403/409 beside the button.
import * as api from '../api.js';
import { ROLES } from '../permissions.js';
import { action, announce, badge, fmtTime, h, table } from '../ui.js';

const open = ['scheduled', 'awaiting_approval', 'running'];

export function promotionsTable(ctx, items, { stages, targetName, refresh }) {
  const stageName = (id) => stages.find((s) => s.id === id)?.name || id;
  // mayDecide mirrors the API: the target stage's approver role or above, and not one's own promotion when the
  // stage forbids it (platform admins decide as owners).
  const mayDecide = (r) => {
    const st = stages.find((s) => s.id === r.targetStageId);
    if (!st) return false;
    if (st.forbidSelfApproval && r.requestedBy === ctx.user.id) return false;
    return ctx.user.admin || (ROLES[ctx.role] || 0) >= (ROLES[st.approverRole] || ROLES.owner);
  };
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
        r.status === 'awaiting_approval' && mayDecide(r) ? [decide(r, 'approve', 'Approve'), decide(r, 'reject', 'Reject')] : null,
        decide(r, 'cancel', 'Cancel promotion')) : '') },
    ],
    rows: [...items].reverse(),
    empty: 'Nothing promoted yet.',
    rowAttrs: (r) => ({ 'data-promotion': r.id }),
  });
}

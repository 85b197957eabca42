import * as api from '../api.js';
import { action, badge, fmtTime, h, section, table } from '../ui.js';

export const title = 'Billing';

// Statuses in which the team has no live subscription and may start one.
const canSubscribe = ['none', 'trial', 'trial_ended', 'canceled'];

export async function render(ctx) {
  const b = await api.get(`/teams/${ctx.team.id}/billing`);
  if (!b.enabled) {
    return [h('h1', {}, 'Billing'), h('p', { class: 'muted', id: 'billing-off' }, 'Billing is not enabled on this platform.')];
  }
  if (!b.billed) {
    return [h('h1', {}, 'Billing'), h('p', { class: 'muted' }, `${ctx.team.name}'s team type is not billed.`)];
  }
  return [
    h('h1', {}, 'Billing'),
    section('Subscription',
      h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, badge(b.status)),
        b.trialEndsAt ? [h('dt', {}, 'Trial ends'), h('dd', {}, fmtTime(b.trialEndsAt))] : null,
        b.nextInvoiceAt ? [h('dt', {}, 'Next invoice'), h('dd', {}, fmtTime(b.nextInvoiceAt))] : null,
        h('dt', {}, 'Last synced with Stripe'), h('dd', {}, fmtTime(b.syncedAt))),
      canSubscribe.includes(b.status) && ctx.can('team:billing:manage') ? h('div', { class: 'actions' }, action('Subscribe with Stripe', async () => {
        const back = location.origin + ctx.teamPath('/billing');
        const sess = await api.post(`/teams/${ctx.team.id}/billing/checkout`, { successUrl: back, cancelUrl: back });
        location.assign(sess.url);
      }, { primary: true })) : null),
    section('What the team is billed for', table({
      caption: 'Billed lines',
      columns: [
        { label: 'Kind', cell: (l) => l.kind + (l.instanceTypeId ? ` (${l.instanceTypeId})` : '') },
        { label: 'Held', cell: (l) => String(l.count) },
        { label: 'Free', cell: (l) => String(l.free) },
        { label: 'Billed', cell: (l) => String(l.quantity) },
      ],
      rows: b.lines,
      empty: 'Nothing billed.',
    })),
  ];
}

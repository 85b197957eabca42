import * as api from '../api.js';
import { action, announce, badge, copyBlock, fmtTime, form, h, replace, section, table } from '../ui.js';

export const title = 'Alerts';

// What each kind of event is called on the page (the API's kinds, alerts.Kinds).
const KINDS = [
  ['instance_crashed', 'Instance crashed'],
  ['instance_safe_mode', 'Instance in safe mode'],
  ['instance_error', 'Instance stopped by an error'],
  ['device_offline', 'Device offline for longer than…'],
  ['rollout_failed', 'Rollout failed'],
  ['rollout_rolled_back', 'Rollout rolled back'],
  ['promotion_failed', 'Promotion failed'],
  ['billing_problem', 'Billing problem'],
];
const kindLabel = (k) => (KINDS.find(([v]) => v === k) || [k, k === 'test' ? 'Test' : k])[1];

export async function render(ctx) {
  const base = `/teams/${ctx.team.id}`;
  const [rules, hooks, log] = await Promise.all([api.list(`${base}/alert-rules`), api.list(`${base}/webhooks`),
    api.get(`${base}/alert-deliveries?limit=50`)]);
  const manage = ctx.can('team:alerts:manage');
  const state = { rules, hooks };
  const rulesEl = h('div', {});
  const hooksEl = h('div', {});
  const logEl = h('div', {});
  const secretEl = h('div', { 'aria-live': 'polite' });
  const hookName = (id) => state.hooks.find((w) => w.id === id)?.name || '—';

  const ruleFormEl = h('div', {});
  const reload = async () => {
    [state.rules, state.hooks] = await Promise.all([api.list(`${base}/alert-rules`), api.list(`${base}/webhooks`)]);
    drawRules();
    drawHooks();
    drawRuleForm();
  };
  const drawLog = (page) => replace(logEl, table({
    caption: 'Deliveries, newest first',
    columns: [
      { label: 'When', cell: (d) => fmtTime(d.createdAt) },
      { label: 'Event', cell: (d) => h('span', {}, h('strong', {}, d.title), d.message ? h('span', { class: 'muted' }, ` — ${d.message}`) : '') },
      { label: 'To', cell: (d) => (d.channel === 'webhook' ? `webhook ${hookName(d.webhookId)}` : d.target) },
      { label: 'Status', cell: (d) => badge(d.status) },
      { label: 'Attempts', cell: (d) => String(d.attempts) },
      { label: 'Last error', cell: (d) => d.lastError || (d.lastStatus ? `HTTP ${d.lastStatus}` : '') },
    ],
    rows: page.items,
    empty: 'Nothing delivered yet.',
  }));
  const refreshLog = async () => drawLog(await api.get(`${base}/alert-deliveries?limit=50`));

  const drawRules = () => replace(rulesEl, table({
    caption: 'Alert rules of the team',
    columns: [
      { label: 'Name', cell: (r) => r.name },
      { label: 'Events', cell: (r) => r.kinds.map((k) => (k === 'device_offline' ? `Device offline > ${r.offlineMinutes} min` : kindLabel(k))).join(', ') },
      { label: 'E-mail', cell: (r) => (r.emailRole ? `${r.emailRole}s and up` : '—') },
      { label: 'Webhook', cell: (r) => (r.webhookId ? hookName(r.webhookId) : '—') },
      { label: 'Throttle', cell: (r) => (r.throttleMinutes ? `1 per ${r.throttleMinutes} min, then a summary` : 'every event') },
      { label: 'On', cell: (r) => (r.enabled ? 'yes' : 'paused') },
      { label: 'Actions', cell: (r) => (manage ? [
        action(r.enabled ? 'Pause' : 'Resume', async () => {
          await api.patch(`/alert-rules/${r.id}`, { enabled: !r.enabled });
          announce(`Rule ${r.name} ${r.enabled ? 'paused' : 'resumed'}.`);
          await reload();
        }),
        action('Delete', async () => { await api.del(`/alert-rules/${r.id}`); announce(`Rule ${r.name} deleted.`); await reload(); },
          { danger: true, confirm: { title: `Delete the rule ${r.name}?`, text: 'Its events are no longer sent.', confirm: 'Delete' } }),
      ] : '') },
    ],
    rows: state.rules,
    empty: 'No alert rules yet: nobody is told when something goes wrong.',
  }));

  const drawHooks = () => replace(hooksEl, table({
    caption: 'Webhooks of the team',
    columns: [
      { label: 'Name', cell: (w) => w.name },
      { label: 'URL', cell: (w) => h('code', {}, w.url) },
      { label: 'Created', cell: (w) => fmtTime(w.createdAt) },
      { label: 'Actions', cell: (w) => (manage ? [
        action('Send test', async () => {
          await api.post(`/webhooks/${w.id}/test`);
          announce(`Test queued for ${w.name}; refresh the delivery log to see it arrive.`);
          await refreshLog();
        }),
        action('Delete', async () => { await api.del(`/webhooks/${w.id}`); announce(`Webhook ${w.name} deleted.`); await reload(); },
          { danger: true, confirm: { title: `Delete the webhook ${w.name}?`, text: 'Rules that use it keep their e-mail.', confirm: 'Delete' } }),
      ] : '') },
    ],
    rows: state.hooks,
    empty: 'No webhooks yet.',
  }));

  drawRules();
  drawHooks();
  drawLog(log);
  const drawRuleForm = () => replace(ruleFormEl, manage ? ruleForm(state.hooks, async (body) => {
    await api.post(`${base}/alert-rules`, body);
    announce(`Rule ${body.name} created.`);
    await reload();
  }) : null);
  drawRuleForm();

  const newHook = manage ? section('New webhook', h('p', { class: 'muted' },
    'Each alert is POSTed as JSON with the header X-Flowyard-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the webhook\'s secret>. Failed deliveries are retried with back-off.'),
  form({
    label: 'Create a webhook', submit: 'Create webhook',
    fields: [{ name: 'name', label: 'Webhook name', required: true }, { name: 'url', label: 'URL', type: 'url', required: true, placeholder: 'https://…' }],
    onSubmit: async (v, el) => {
      const w = await api.post(`${base}/webhooks`, v);
      replace(secretEl, h('div', { class: 'card' }, h('h2', {}, `Webhook ${w.name} created`),
        h('p', {}, 'This is the only time its signing secret is shown. Copy it into your receiver now.'),
        h('p', { class: 'token', id: 'webhook-secret' }, w.secret), copyBlock('Signing secret', w.secret)));
      el.reset();
      announce('Webhook created; its secret is shown once.');
      await reload();
    },
  })) : null;

  return [h('h1', {}, 'Alerts'),
    h('p', { class: 'muted' }, 'Rules send the team\'s problems by e-mail and to webhooks; every delivery and its attempts are in the log below.'),
    secretEl,
    section('Rules', rulesEl), ruleFormEl,
    section('Webhooks', hooksEl), newHook,
    section('Delivery log', logEl, h('div', { class: 'actions' }, action('Refresh', refreshLog)))];
}

// ruleForm is the "New rule" card, its webhook list taken from hooks.
function ruleForm(hooks, create) {
  const kindsField = h('fieldset', { class: 'field kinds', 'data-field': 'kinds' }, h('legend', {}, 'Events'),
    KINDS.map(([value, label]) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: `kind:${value}` }), ' ', label)),
    h('p', { class: 'field-error' }));
  return section('New rule', form({
    label: 'Create an alert rule', submit: 'Create rule',
    fields: [
      { name: 'name', label: 'Rule name', required: true },
      kindsField,
      { name: 'offlineMinutes', label: 'Device offline for longer than (minutes)', type: 'number', value: 10, hint: 'For "Device offline".' },
      { name: 'throttleMinutes', label: 'At most one notification per kind every (minutes)', type: 'number', value: 15,
        hint: 'Later events in the window are summarised when it ends; 0 sends every event.' },
      { name: 'emailRole', label: 'E-mail', type: 'select', options: [{ value: '', label: 'No e-mail' }, { value: 'owner', label: 'Owners' },
        { value: 'member', label: 'Members and owners' }, { value: 'viewer', label: 'Viewers and up' }] },
      { name: 'webhookId', label: 'Webhook', type: 'select', options: [{ value: '', label: 'No webhook' }, ...hooks.map((w) => ({ value: w.id, label: w.name }))] },
    ],
    onSubmit: async (v, el) => {
      const kinds = Object.keys(v).filter((k) => k.startsWith('kind:') && v[k]).map((k) => k.slice(5));
      await create({ name: v.name, kinds, offlineMinutes: v.offlineMinutes || 0, throttleMinutes: (v.throttleMinutes === '' || v.throttleMinutes == null) ? 15 : Number(v.throttleMinutes), emailRole: v.emailRole, webhookId: v.webhookId });
      el.reset();
    },
  }));
}

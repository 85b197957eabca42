import * as api from '../api.js';
import { action, announce, copyBlock, fmtTime, form, h, replace, section, table } from '../ui.js';

export const title = 'Provisioning tokens';

// deviceYml is the FlowFuse-style device.yml a device starts with: the agent provisions itself with the token.
export function deviceYml(token, team, name) {
  return `forgeURL: ${location.origin}\nprovisioningTeam: ${team.id}\nprovisioningName: ${name}\nprovisioningToken: ${token}\n`;
}

// showCode shows a one-time code once, with the command FlowFuse's installer and agent take it in.
export function showCode(el, code, what) {
  replace(el, h('div', { class: 'card' },
    h('h2', {}, 'One-time code'),
    h('p', {}, `This code ${what}. It works once, until ${fmtTime(code.expiresAt)}, and is shown only now.`),
    h('p', { class: 'token', id: 'one-time-code', 'data-token': code.otc }, code.otc),
    copyBlock('Set the device up with', code.command)));
  announce('One-time code created; it is shown once.');
}

export async function render(ctx) {
  const [apps, tokens] = await Promise.all([api.list(`/teams/${ctx.team.id}/applications`), api.list(`/teams/${ctx.team.id}/provisioning-tokens`)]);
  const groupsByApp = new Map();
  await Promise.all(apps.filter(() => ctx.can('application:device-group:list')).map(async (a) =>
    groupsByApp.set(a.id, await api.list(`/applications/${a.id}/device-groups`).catch(() => []))));
  const appName = (id) => apps.find((a) => a.id === id)?.name || '—';
  const shownOnce = h('div', { 'aria-live': 'polite' });
  const listEl = h('div', {});
  const drawList = (items) => replace(listEl, table({
    caption: 'Provisioning tokens of the team',
    columns: [
      { label: 'Name', cell: (t) => t.name },
      { label: 'Application', cell: (t) => appName(t.applicationId) },
      { label: 'Expires', cell: (t) => (t.expiresAt ? fmtTime(t.expiresAt) : 'never') },
      { label: 'Created', cell: (t) => fmtTime(t.createdAt) },
      { label: 'Actions', cell: (t) => h('div', { class: 'actions' },
        ctx.can('team:device:provisioning-token:create') ? action('One-time code', async () => {
          showCode(shownOnce, await api.post(`/teams/${ctx.team.id}/provisioning-tokens/${t.id}/one-time-codes`), `registers one new device as ${t.name} would`);
        }) : null,
        ctx.can('team:device:provisioning-token:delete') ? action('Revoke', async () => {
          await api.del(`/teams/${ctx.team.id}/provisioning-tokens/${t.id}`);
          announce(`Token ${t.name} revoked.`);
          drawList(await api.list(`/teams/${ctx.team.id}/provisioning-tokens`));
        }, { danger: true, confirm: { title: `Revoke ${t.name}?`, text: 'Devices that already provisioned keep working; new ones, and its unused one-time codes, cannot use it.', confirm: 'Revoke' } }) : null) },
    ],
    rows: items,
    empty: 'No provisioning tokens yet.',
  }));
  drawList(tokens);
  const groupOptions = [{ value: '', label: 'No group' }];
  for (const a of apps) for (const g of groupsByApp.get(a.id) || []) groupOptions.push({ value: g.id, label: `${a.name} / ${g.name}` });

  const create = ctx.can('team:device:provisioning-token:create') ? section('New provisioning token', form({
    label: 'Create a provisioning token', submit: 'Create token',
    fields: [
      { name: 'name', label: 'Token name', required: true },
      { name: 'applicationId', label: 'Application for new devices', type: 'select', options: [{ value: '', label: 'None (unassigned)' }, ...apps.map((a) => ({ value: a.id, label: a.name }))] },
      { name: 'deviceGroupId', label: 'Device group for new devices', type: 'select', options: groupOptions, hint: 'A group implies its application.' },
    ],
    onSubmit: async (v, el) => {
      const body = { name: v.name };
      if (v.deviceGroupId) {
        body.deviceGroupId = v.deviceGroupId;
        body.applicationId = [...groupsByApp].find(([, gs]) => gs.some((g) => g.id === v.deviceGroupId))[0];
      } else if (v.applicationId) body.applicationId = v.applicationId;
      const tok = await api.post(`/teams/${ctx.team.id}/provisioning-tokens`, body);
      replace(shownOnce, h('div', { class: 'card' },
        h('h2', {}, `Token ${tok.name || v.name} created`),
        h('p', {}, 'This is the only time the token is shown. Copy it, or the device.yml below, now.'),
        h('p', { class: 'token', id: 'new-token', 'data-token': tok.token }, tok.token),
        copyBlock('device.yml', deviceYml(tok.token, ctx.team, v.name))));
      el.reset();
      announce('Provisioning token created; it is shown once.');
      drawList(await api.list(`/teams/${ctx.team.id}/provisioning-tokens`));
    },
  })) : null;
  return [h('h1', {}, 'Provisioning tokens'),
    h('p', { class: 'muted' }, 'Devices started with a provisioning token register themselves in this team (and the application or group the token names).'),
    shownOnce, create, listEl];
}

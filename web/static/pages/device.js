import * as api from '../api.js';
import { stream } from '../sse.js';
import { action, announce, badge, copyBlock, fmtTime, h, replace, section } from '../ui.js';
import { showCode } from './provisioning.js';
import { fleetSettingsSection } from '../fleet.js';

export const title = 'Device';

// Names rarely change while the page is open: each is read once, so a device event redraws without requests.
const names = new Map();
function nameOf(path, fallback) {
  if (!path) return Promise.resolve(fallback);
  if (!names.has(path)) names.set(path, api.get(path).then((o) => o.name, () => fallback));
  return names.get(path);
}

// snapshotName shows a snapshot by name, or its ID when it cannot be read (deleted, or another application's).
const snapshotName = (id) => (id ? nameOf(`/snapshots/${id}`, id) : Promise.resolve('none'));

export async function render(ctx) {
  const id = ctx.params.device;
  names.clear();
  let dev = await api.get(`/devices/${id}`);
  ctx.title = dev.name;
  const facts = h('dl', { class: 'facts' });
  const statusEl = h('span', {});
  const modeEl = h('div', { class: 'actions' });
  const shownOnce = h('div', { 'aria-live': 'polite' });

  const draw = async () => {
    const [active, target, groupName, appName] = await Promise.all([snapshotName(dev.activeSnapshotId), snapshotName(dev.targetSnapshotId),
      nameOf(dev.deviceGroupId && `/device-groups/${dev.deviceGroupId}`, 'Device group'),
      nameOf(dev.applicationId && `/applications/${dev.applicationId}`, 'Application')]);
    if (!ctx.current()) return;
    replace(statusEl, badge(dev.status));
    const inSync = dev.activeSnapshotId === dev.targetSnapshotId;
    replace(facts,
      h('dt', {}, 'Status'), h('dd', {}, badge(dev.status), ' ', dev.state || ''),
      dev.stateDetail ? [h('dt', {}, 'Detail'), h('dd', {}, dev.stateDetail)] : null,
      h('dt', {}, 'Last seen'), h('dd', {}, fmtTime(dev.lastSeenAt)),
      h('dt', {}, 'Active snapshot'), h('dd', { id: 'active-snapshot' }, active),
      h('dt', {}, 'Target snapshot'), h('dd', { id: 'target-snapshot' }, target, inSync ? ' (in sync)' : dev.isDeploying ? ' (deploying)' : ' (pending)'),
      h('dt', {}, 'Mode'), h('dd', {}, dev.mode === 'developer' ? 'Developer mode' : 'Autonomous'),
      h('dt', {}, 'Agent'), h('dd', {}, dev.agentVersion || '—'),
      h('dt', {}, 'Node-RED'), h('dd', {}, dev.nodeRedVersion || '—'),
      h('dt', {}, 'Group'), h('dd', {}, dev.deviceGroupId ? h('a', { href: ctx.teamPath(`/device-groups/${dev.deviceGroupId}`) }, groupName) : '—'),
      h('dt', {}, 'Application'), h('dd', {}, dev.applicationId ? h('a', { href: ctx.teamPath(`/applications/${dev.applicationId}?tab=devices`) }, appName) : '—'));
    replace(modeEl, dev.mode === 'developer' && ctx.can('project:flows:view')
      // The device's editor, through the tunnel its agent opens, on an origin of its own (pages/editor.js).
      ? h('a', { href: `/editor/device/${encodeURIComponent(id)}/`, target: '_blank', rel: 'noopener', id: 'open-device-editor' }, 'Open editor') : null,
    ctx.can('device:edit') ? action(dev.mode === 'developer' ? 'Leave developer mode' : 'Enter developer mode', async () => {
      dev = await api.patch(`/devices/${id}`, { mode: dev.mode === 'developer' ? 'autonomous' : 'developer' });
      announce(`${dev.name} is in ${dev.mode} mode.`);
      await draw();
    }) : null, ctx.can('device:edit') ? action('One-time code', async () => {
      showCode(shownOnce, await api.post(`/devices/${id}/one-time-code`), `gives the agent that uses it new credentials of ${dev.name}; the current ones work until then`);
    }) : null, ctx.can('device:edit') ? action('Regenerate credentials', async () => {
      const r = await api.post(`/devices/${id}/credentials`);
      replace(shownOnce, h('div', { class: 'card' }, h('h2', {}, 'New credentials'),
        h('p', {}, 'The old ones no longer work. This device.yml is shown only now: give it to the device\'s agent.'),
        copyBlock('device.yml', r.agentConfig)));
      announce('New credentials; they are shown once.');
    }, { danger: true, confirm: { title: `Regenerate the credentials of ${dev.name}?`, text: 'Its current credentials stop working at once, and it disconnects until its agent has the new device.yml.', confirm: 'Regenerate' } }) : null,
    ctx.can('device:delete') ? action('Delete device', async () => {
      await api.del(`/devices/${id}`);
      ctx.navigate(dev.applicationId ? ctx.teamPath(`/applications/${dev.applicationId}?tab=devices`) : ctx.teamPath());
    }, { danger: true, confirm: { title: `Delete ${dev.name}?`, text: 'Its credentials stop working at once.', confirm: 'Delete' } }) : null);
  };
  await draw();
  ctx.on('device', (next) => {
    if (next.id !== id) return;
    if (next.status !== dev.status) announce(`${next.name} is ${next.status}.`);
    dev = next;
    draw();
  });
  return [h('p', { class: 'muted' }, h('a', { href: ctx.teamPath() }, 'Applications'), ' / '),
    h('h1', {}, dev.name, ' ', statusEl), section('Device', facts, modeEl, shownOnce),
    nodeRedSection(ctx, id, () => dev), deviceLogsSection(ctx, id),
    ctx.can('device:edit') ? fleetSettingsSection(`/devices/${id}`, dev.settings, 'device') : null];
}

// nodeRedSection holds the actions on the device's Node-RED; the device answers at once, and the state it then
// reports reaches the page as a device event.
function nodeRedSection(ctx, id, current) {
  if (!ctx.can('device:change-status')) return null;
  const ask = (name, done, confirm) => action(name[0].toUpperCase() + name.slice(1), async () => {
    await api.post(`/devices/${id}/actions/${name}`);
    announce(`${current().name} ${done}; its state follows.`);
  }, confirm ? { confirm } : {});
  return section('Node-RED', h('div', { class: 'actions', id: 'device-actions' },
    ask('start', 'accepted to start Node-RED'),
    ask('restart', 'is restarting Node-RED'),
    ask('stop', 'accepted to stop Node-RED', { title: 'Stop Node-RED on the device?', text: 'It stays stopped, across updates and agent restarts, until it is started.', confirm: 'Stop' }),
    ask('suspend', 'suspended Node-RED', { title: 'Suspend Node-RED on the device?', text: 'It stays stopped, across updates and agent restarts, until it is started.', confirm: 'Suspend' })));
}

// deviceLogsSection streams the device's Node-RED log while the page is open: the device sends it only while
// someone watches, recent lines first.
function deviceLogsSection(ctx, id) {
  if (!ctx.can('device:read')) return null;
  const pre = h('pre', { class: 'logs', id: 'device-logs', tabindex: '0', 'aria-label': 'Device log' });
  const note = h('p', { class: 'muted' }, 'The device sends its log while this page is open.');
  const add = (l) => {
    pre.append(`${new Date(l.ts).toLocaleTimeString()} [${l.level}] ${l.msg}\n`);
    pre.scrollTop = pre.scrollHeight;
  };
  ctx.onCleanup(stream(`/api/v1/devices/${id}/logs/stream?limit=200`, 'log', add, () => {
    note.textContent = 'The device\'s log cannot be streamed now.';
  }));
  return section('Logs', note, pre);
}

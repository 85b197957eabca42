// Opens an instance's editor, which is served on an origin of its own (<instance id>.<editor domain>, where
// the dashboard's session cookie never goes): asks the API for a single-use link bound to this browser's
// session and goes there; the editor's origin spends it, sets its own cookie and shows the editor. The
// instances' editorUrl is this page, and an editor origin sends a browser without a session here too.
// /editor/device/<id> opens a device's editor the same way (developer mode; the device's agent tunnels it).
import * as api from '../api.js';
import { h } from '../ui.js';

export const title = 'Opening the editor';

export async function render(ctx) {
  const link = ctx.params.device
    ? await api.post(`/devices/${encodeURIComponent(ctx.params.device)}/editor-link`)
    : await api.post(`/instances/${encodeURIComponent(ctx.params.instance)}/editor-link`);
  // replace: Back from the editor returns to the page before, not to this one (which would open it again).
  // The fragment (#flow/<id>) is the editor's own address inside the page.
  location.replace(link.url + location.hash);
  return [h('h1', {}, 'Opening the editor…'),
    h('p', { class: 'muted' }, link.access === 'view' ? 'Your role lets you read its flows, not deploy.' : '')];
}

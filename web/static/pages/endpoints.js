// Signs this browser in to an instance's protected address (<name>.<apps domain>, where the dashboard's session
// cookie never goes): asks the API for a single-use link bound to this browser's session and goes there; the
// address spends it, sets its own cookie and opens the page the browser asked for (?next=). A protected address
// sends a browser without its session here.
import * as api from '../api.js';
import { h } from '../ui.js';

export const title = 'Signing in to the instance';

export async function render(ctx) {
  const next = ctx.query.get('next') || '/';
  const link = await api.post(`/instances/${encodeURIComponent(ctx.params.instance)}/endpoints-link`, { next });
  location.replace(link.url);
  return [h('h1', {}, 'Signing in to the instance…')];
}

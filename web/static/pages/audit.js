import * as api from '../api.js';
import { fmtTime, h, replace, table } from '../ui.js';

export const title = 'Audit log';

const PAGE = 50;

// The API lists the log oldest first with a cursor; the page reads it through to the newest entry (bounded)
// and shows it newest first, a page at a time.
export async function render(ctx) {
  const [entries, members] = await Promise.all([
    api.list(`/teams/${ctx.team.id}/audit-log`, 5000),
    api.list(`/teams/${ctx.team.id}/members`).catch(() => []),
  ]);
  entries.reverse();
  const who = (id) => (id ? members.find((m) => m.userId === id)?.email || id : 'Flowyard');
  const listEl = h('div', {});
  const more = h('button', { type: 'button' }, 'Show older entries');
  let shown = 0;
  const draw = () => {
    shown = Math.min(entries.length, shown + PAGE);
    replace(listEl, table({
      caption: `Audit log of ${ctx.team.name}, newest first (${shown} of ${entries.length})`,
      columns: [
        { label: 'When', cell: (e) => fmtTime(e.createdAt) },
        { label: 'Event', cell: (e) => h('code', {}, e.event) },
        { label: 'By', cell: (e) => who(e.userId) },
        { label: 'Subject', cell: (e) => `${e.entityType} ${e.entityId}` },
        { label: 'Details', cell: (e) => details(e.body) },
      ],
      rows: entries.slice(0, shown),
      empty: 'Nothing recorded yet.',
    }));
    more.hidden = shown >= entries.length;
  };
  more.addEventListener('click', () => {
    const first = shown;
    draw();
    const cell = listEl.querySelectorAll('tbody tr')[first]?.querySelector('td');
    cell?.setAttribute('tabindex', '-1');
    cell?.focus(); // keyboard users continue at the first older entry
  });
  draw();
  return [h('h1', {}, 'Audit log'), listEl, h('div', { class: 'actions' }, more)];
}

function details(body) {
  const pairs = Object.entries(body || {}).filter(([, v]) => v !== null && v !== undefined);
  if (!pairs.length) return '';
  return h('span', { class: 'muted' }, pairs.map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', '));
}

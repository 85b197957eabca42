import * as api from '../api.js';
import { action, announce, form, h, replace, section } from '../ui.js';

export const title = 'Snapshot schedule';

// readSchedule answers the instance's schedule, or null when it has none (the route answers 404 then).
async function readSchedule(id) {
  try {
    return await api.get(`/instances/${id}/snapshot-schedule`);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

export async function render(ctx) {
  const inst = await api.get(`/instances/${ctx.params.instance}`);
  ctx.title = `Snapshot schedule of ${inst.name}`;
  const body = h('div', {});
  const draw = (sch) => replace(body, scheduleSection(ctx, inst, sch, draw));
  draw(await readSchedule(inst.id));
  return [
    h('p', { class: 'muted' }, h('a', { href: ctx.teamPath(`/instances/${inst.id}`) }, inst.name), ' / '),
    h('h1', {}, 'Snapshot schedule'),
    body,
  ];
}

// scheduleSection shows the schedule and, for roles that may, a form to set it and a button to stop it.
export function scheduleSection(ctx, inst, sch, redraw) {
  const editable = ctx.can('project:snapshot:schedule');
  const summary = sch
    ? h('p', { id: 'schedule-summary' }, 'Automatic snapshots ', sch.cron ? ['at ', h('code', {}, sch.cron), ' (UTC)'] : ['every ', h('code', {}, sch.every)],
      `, keeping the newest ${sch.keep}.`)
    : h('p', { id: 'schedule-summary', class: 'muted' }, 'No schedule: snapshots are taken by hand only.');
  return section('Automatic snapshots', summary,
    editable ? form({
      label: 'Set the snapshot schedule', submit: sch ? 'Save schedule' : 'Set schedule',
      fields: [
        { name: 'every', label: 'Every (e.g. 6h, at least 1h)', value: sch?.every || '', hint: 'Or give a cron time instead.' },
        { name: 'cron', label: 'Cron (five fields, UTC, at most hourly)', value: sch?.cron || '', placeholder: '0 2 * * *' },
        { name: 'keep', label: 'Automatic snapshots to keep', type: 'number', value: sch?.keep ?? 10 },
      ],
      onSubmit: async (v) => {
        const next = await api.put(`/instances/${inst.id}/snapshot-schedule`,
          { every: v.every || undefined, cron: v.cron || undefined, keep: v.keep });
        announce('Snapshot schedule saved.');
        redraw(next);
      },
    }) : null,
    editable && sch ? h('div', { class: 'actions' }, action('Stop scheduled snapshots', async () => {
      await api.del(`/instances/${inst.id}/snapshot-schedule`);
      announce('Snapshot schedule removed; the snapshots taken stay.');
      redraw(null);
    }, { danger: true, confirm: { title: 'Stop scheduled snapshots?', text: 'The snapshots already taken stay.', confirm: 'Stop' } })) : null);
}

// Operation progress: a line that shows the latest long operation of a subject (kind, status, progress, a link
// into the Temporal UI) and follows it live: each `operation` event of the team re-reads the operation.

import * as api from './api.js';
import { announce, badge, h, replace } from './ui.js';

export function operationLine() {
  const el = h('p', { class: 'operation', 'aria-live': 'polite' });
  return {
    el,
    set(op) {
      if (!op) return replace(el);
      const p = op.progress || {};
      replace(el, 'Last operation: ', h('strong', {}, op.kind), ' ', badge(op.status),
        p.total ? ` ${p.done || 0}/${p.total}` : '',
        op.error ? h('span', { class: 'field-error' }, ' ', op.error) : '',
        op.temporalUrl ? [' · ', h('a', { href: op.temporalUrl, target: '_blank', rel: 'noopener' }, 'View in Temporal')] : '');
    },
  };
}

// watchOperation follows the operation shown in line; matches(op) also picks up operations started elsewhere
// (another tab, a schedule) for the same subject.
export function watchOperation(ctx, line, matches = () => false) {
  let current = null;
  ctx.on('operation', async (event) => {
    if (!(current && event.id === current.id) && !matches(event)) return;
    try {
      const op = await api.get(`/operations/${event.id}`);
      if (!ctx.current()) return;
      if (current?.status !== op.status && ['succeeded', 'failed', 'canceled'].includes(op.status)) announce(`${op.kind} ${op.status}.`);
      current = op;
      line.set(op);
    } catch { /* the operation went away with its subject */ }
  });
  return { show(op) { current = op; line.set(op); } };
}

import { h } from '../ui.js';

export const title = 'Teams';

// The start page goes to the caller's first team, or to creating one.
export async function render(ctx) {
  if (ctx.teams.length) {
    queueMicrotask(() => ctx.navigate(`/teams/${ctx.teams[0].slug}`, { replace: true }));
    return h('p', { class: 'muted' }, 'Opening your team…');
  }
  return [h('h1', {}, 'Welcome to Flowyard'), h('p', {}, 'You are not in a team yet. ', h('a', { href: '/teams/new' }, 'Create a team'), ' to start.')];
}

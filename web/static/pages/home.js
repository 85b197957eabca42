import { h } from '../ui.js';

export const title = 'Teams';

// The start page goes to the caller's first team (its dashboards, for the dashboard role, which sees nothing
// else), or to creating one.
export async function render(ctx) {
  if (ctx.teams.length) {
    const team = ctx.teams[0];
    const rest = team.role === 'dashboard' ? '/dashboards' : '';
    queueMicrotask(() => ctx.navigate(`/teams/${team.slug}${rest}`, { replace: true }));
    return h('p', { class: 'muted' }, 'Opening your team…');
  }
  return [h('h1', {}, 'Welcome to Flowyard'), h('p', {}, 'You are not in a team yet. ', h('a', { href: '/teams/new' }, 'Create a team'), ' to start.')];
}

// The app shell: who is signed in, the team switcher, the navigation, and running the page for the path.

import * as api from './api.js';
import { can } from './permissions.js';
import { routes } from './routes.js';
import { match, navigate, startRouter } from './router.js';
import { closeTeamEvents, teamEvents } from './sse.js';
import { announce, errorText, h, replace } from './ui.js';

const state = { user: null, teams: [] };
const main = document.getElementById('main');
let cleanups = [];
let renderSeq = 0;

api.setUnauthorizedHandler(() => {
  state.user = null;
  if (location.pathname !== '/signin') navigate('/signin?next=' + encodeURIComponent(location.pathname + location.search), { replace: true });
});

// passwordPath is where a user who must change the password is held (the API answers nothing else).
const passwordPath = '/account/password';

api.setPasswordChangeHandler(() => {
  state.user = { ...(state.user || {}), passwordChangeRequired: true };
  if (location.pathname !== passwordPath) navigate(passwordPath, { replace: true });
});

// twoFactorPath is where a user is held while the platform requires two-factor sign-in and theirs is off.
const twoFactorPath = '/account/two-factor';

api.setTwoFactorHandler(() => {
  if (state.user) state.user.twoFactorRequired = true;
  if (location.pathname !== twoFactorPath) navigate(twoFactorPath, { replace: true });
});

async function loadSession() {
  try {
    state.user = await api.get('/user');
    state.teams = await api.list('/teams');
  } catch (err) {
    // A user held to changing the password is signed in, but may read nothing until it is done; one held to
    // turning on two-factor sign-in may read who they are, but no team.
    const code = err instanceof api.ApiError ? err.code : '';
    if (code === 'password_change_required') state.user = { passwordChangeRequired: true };
    else if (code !== 'two_factor_required') state.user = null;
    state.teams = [];
  }
}

// refreshTeams re-reads the caller's teams (after creating or leaving one) and redraws the shell.
async function refreshTeams() {
  state.teams = await api.list('/teams');
}

function findTeam(ref) {
  return state.teams.find((t) => t.slug === ref || t.id === ref) || null;
}

function renderShell(team) {
  const top = document.getElementById('top');
  if (!state.user) {
    replace(top, h('a', { href: '/signin', class: 'brand' }, 'Flowyard'));
    replace(document.getElementById('nav'));
    return;
  }
  const switcher = h('select', { id: 'team-switcher', name: 'team' },
    team ? null : h('option', { value: '', selected: true }, 'Choose a team'),
    state.teams.map((t) => h('option', { value: t.slug, selected: team && t.id === team.id }, t.name)));
  // A form with a button, not navigation on change: arrowing through the list with the keyboard must not
  // jump between teams.
  const go = (e) => { e.preventDefault(); if (switcher.value) navigate(`/teams/${switcher.value}`); };
  replace(top,
    h('a', { href: team ? `/teams/${team.slug}` : '/', class: 'brand' }, 'Flowyard'),
    h('form', { class: 'switcher', onSubmit: go, 'aria-label': 'Switch team' }, h('label', { for: 'team-switcher' }, 'Team'), switcher,
      h('button', { type: 'submit' }, 'Open'), h('a', { href: '/teams/new' }, 'New team')),
    h('div', { class: 'who' }, h('span', {}, state.user.name || state.user.email, state.user.admin ? ' (admin)' : ''),
      ' ', h('a', { href: passwordPath }, 'Change password'), ' ',
      h('a', { href: twoFactorPath }, 'Two-factor sign-in'), ' ',
      h('button', { type: 'button', id: 'sign-out', onClick: signOut }, 'Sign out')));
  renderNav(team);
}

// whenShown hides a conditional nav entry until its check says yes; the answer is kept per team and entry.
const shownCache = new Map();
function whenShown(li, nav, team) {
  const key = nav.label + ' ' + team.id;
  if (!shownCache.has(key)) shownCache.set(key, nav.shown(team));
  li.hidden = true;
  shownCache.get(key).then((yes) => { li.hidden = !yes; });
}

// isolation is what the public readiness probe says of the instances' sandbox: "ok", or why instances run
// unisolated: without the sandbox every flow can read the platform's files; in a sandbox whose network is not
// filtered ("network not filtered: …") it can reach the platform's services. Asked once a session, for
// platform admins.
let isolation = null;
function isolationWarning() {
  isolation ??= fetch('/readyz').then((r) => r.json()).then((b) => b.instances || 'ok').catch(() => 'ok');
  const note = h('p', { class: 'nav-warning', id: 'isolation-warning', role: 'alert', hidden: true });
  isolation.then((said) => {
    if (said === 'ok') return;
    note.hidden = false;
    const why = said.replace(/^not isolated: /, '');
    const consequence = why.startsWith('network not filtered')
      ? '. Any flow can reach the platform\'s services (Temporal, the database, other instances).'
      : '. Any flow can read the platform\'s files.';
    replace(note, h('strong', {}, 'Instances not isolated'), ': ', why, consequence);
  });
  return note;
}

function renderNav(team) {
  const links = [];
  const here = location.pathname;
  const item = (href, label) => h('li', {}, h('a', { href, 'aria-current': here === href ? 'page' : null }, label));
  if (team) {
    for (const r of routes.filter((r) => r.nav?.scope === 'team' && can(state.user, team.role, r.nav.action))) {
      const li = item(r.path.replace(':team', team.slug), r.nav.label);
      if (r.nav.shown) whenShown(li, r.nav, team);
      links.push(li);
    }
  }
  const admin = routes.filter((r) => r.nav?.scope === 'admin' && state.user.admin);
  replace(document.getElementById('nav'),
    team ? h('h2', { class: 'nav-title' }, team.name) : null,
    links.length ? h('ul', {}, links) : null,
    admin.length ? [h('h2', { class: 'nav-title' }, 'Platform'), isolationWarning(), h('ul', {}, admin.map((r) => item(r.path, r.nav.label)))] : null);
}

async function signOut() {
  try { await api.post('/auth/logout'); } catch { /* signed out either way */ }
  state.user = null;
  state.teams = [];
  closeTeamEvents();
  navigate('/signin');
  announce('Signed out.');
}

function notFound(text = 'There is no such page, or it is not yours.') {
  return [h('h1', {}, 'Not found'), h('p', {}, text), h('p', {}, h('a', { href: '/' }, 'Back to your teams'))];
}

// context is what a page gets: the params of its path, the caller and the team with their role, and helpers.
function context(params, team, seq) {
  const ctx = {
    params,
    query: new URLSearchParams(location.search),
    user: state.user,
    team,
    role: team?.role || '',
    teams: state.teams,
    can: (action) => can(state.user, team?.role || '', action),
    navigate,
    teamPath: (rest = '') => `/teams/${team.slug}${rest}`,
    // on subscribes to the team's live events for as long as the page is shown.
    on: (type, fn) => { if (team) cleanups.push(teamEvents(team.id, type, fn)); },
    onCleanup: (fn) => cleanups.push(fn),
    refreshTeams: async () => { await refreshTeams(); renderShell(team); },
    // current is false once the user has moved on, so late answers do not draw over the next page.
    current: () => seq === renderSeq,
  };
  return ctx;
}

async function show() {
  const seq = ++renderSeq;
  cleanups.forEach((fn) => fn());
  cleanups = [];
  const m = match(location.pathname);
  if (state.user === null && !m?.route.public) await loadSession();
  if (seq !== renderSeq) return;
  if (!state.user && !m?.route.public) {
    navigate('/signin?next=' + encodeURIComponent(location.pathname + location.search), { replace: true });
    return;
  }
  if (state.user?.passwordChangeRequired && location.pathname !== passwordPath && !m?.route.public) {
    navigate(passwordPath, { replace: true });
    return;
  }
  if (state.user?.twoFactorRequired && location.pathname !== twoFactorPath && !m?.route.public) {
    navigate(twoFactorPath, { replace: true });
    return;
  }
  let team = null;
  if (m?.params.team) {
    team = findTeam(m.params.team);
    if (!team) { await refreshTeams(); team = findTeam(m.params.team); }
  }
  renderShell(team);
  if (!m || (m.params.team && !team)) return draw(seq, 'Not found', notFound());
  try {
    const mod = await m.route.page();
    const ctx = context(m.params, team, seq);
    const nodes = await mod.render(ctx);
    const title = ctx.title || mod.title;
    draw(seq, title, nodes);
    // The stream says "reload" when it cannot replay what was missed (a long disconnect): draw the page again.
    if (team) ctx.on('resync', () => { if (ctx.current()) show(); });
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) return;
    draw(seq, 'Error', err instanceof api.ApiError && err.status === 404 ? notFound() :
      [h('h1', {}, 'Something went wrong'), h('p', { role: 'alert' }, errorText(err))]);
  }
}

function draw(seq, title, nodes) {
  if (seq !== renderSeq) return;
  replace(main, nodes);
  document.title = title ? `${title} · Flowyard` : 'Flowyard';
  main.focus({ preventScroll: true });
  announce(title || 'Flowyard');
}

export const app = { state, refreshTeams, loadSession };

startRouter(routes, show);

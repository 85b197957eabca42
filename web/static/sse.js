// Live updates by Server-Sent Events. One EventSource per team (GET /api/v1/teams/{teamId}/events, events
// instance | operation | device | rollout, each data the resource's JSON) is shared by every page of that team;
// pages subscribe with on() and the app drops their subscriptions when the page changes. Where the server has no
// such stream, the EventSource closes and the pages simply show what they loaded: there is no polling.

let team = null; // {id, source, handlers: Map<type, Set<fn>>}

function dispatch(type, e) {
  let data;
  try { data = JSON.parse(e.data); } catch { return; }
  for (const fn of team?.handlers.get(type) || []) fn(data);
}

// teamEvents subscribes fn to events of type for the team and returns the unsubscribe function.
export function teamEvents(teamId, type, fn) {
  if (team?.id !== teamId) {
    team?.source.close();
    team = { id: teamId, source: new EventSource(`/api/v1/teams/${encodeURIComponent(teamId)}/events`), handlers: new Map() };
  }
  const current = team;
  if (!current.handlers.has(type)) {
    current.handlers.set(type, new Set());
    current.source.addEventListener(type, (e) => dispatch(type, e));
  }
  current.handlers.get(type).add(fn);
  return () => current.handlers.get(type)?.delete(fn);
}

// closeTeamEvents ends the team stream (on sign-out).
export function closeTeamEvents() {
  team?.source.close();
  team = null;
}

// stream opens a page's own EventSource (such as an instance's log stream) and returns its close function.
// onClosed runs when the server refuses the stream (the browser then stops retrying).
export function stream(url, type, fn, onClosed = () => {}) {
  const source = new EventSource(url);
  source.addEventListener(type, (e) => {
    try { fn(JSON.parse(e.data)); } catch { /* a malformed event is skipped */ }
  });
  source.addEventListener('error', () => { if (source.readyState === EventSource.CLOSED) onClosed(); });
  return () => source.close();
}

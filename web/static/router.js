// History-API router: real paths (/teams/acme/applications/…), links handled in the page, back/forward kept.

let compiled = [];
let onChange = () => {};

// compile turns '/teams/:team/x' into a matcher that yields {team}.
function compile(route) {
  const keys = [];
  const source = route.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:(\w+)/g, (_, k) => { keys.push(k); return '([^/]+)'; });
  return { ...route, keys, regex: new RegExp('^' + source + '/?$') };
}

export function match(pathname) {
  for (const r of compiled) {
    const m = r.regex.exec(pathname);
    if (m) return { route: r, params: Object.fromEntries(r.keys.map((k, i) => [k, decodeURIComponent(m[i + 1])])) };
  }
  return null;
}

export function navigate(path, { replace = false } = {}) {
  if (path === location.pathname + location.search && !replace) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', path);
  onChange();
}

// startRouter handles same-origin links inside the app and the browser's back and forward buttons.
export function startRouter(routes, handler) {
  compiled = routes.map(compile);
  onChange = handler;
  window.addEventListener('popstate', () => onChange());
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[href]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
    if (/^\/(api|editor|assets)\//.test(a.pathname)) return;
    e.preventDefault();
    navigate(a.pathname + a.search);
  });
  onChange();
}

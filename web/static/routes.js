// Every page of the dashboard: its path, its module (loaded on first visit) and, for pages in the side
// navigation, its nav entry. nav.scope: 'team' (shown under the current team when the role may do nav.action)
// or 'admin' (shown to platform admins). See web/CONVENTIONS.md.

export const routes = [
  { path: '/signin', page: () => import('./pages/signin.js'), public: true },
  { path: '/', page: () => import('./pages/home.js') },
  { path: '/teams/new', page: () => import('./pages/team-new.js') },
  { path: '/teams/:team', page: () => import('./pages/applications.js'),
    nav: { scope: 'team', label: 'Applications', action: 'team:projects:list' } },
  { path: '/teams/:team/applications/:app', page: () => import('./pages/application.js') },
  { path: '/teams/:team/instances/:instance', page: () => import('./pages/instance.js') },
  { path: '/teams/:team/devices/:device', page: () => import('./pages/device.js') },
  { path: '/teams/:team/device-groups/:group', page: () => import('./pages/group.js') },
  { path: '/teams/:team/provisioning', page: () => import('./pages/provisioning.js'),
    nav: { scope: 'team', label: 'Provisioning tokens', action: 'team:device:provisioning-token:list' } },
];

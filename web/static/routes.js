// Every page of the dashboard: its path, its module (loaded on first visit) and, for pages in the side
// navigation, its nav entry. nav.scope: 'team' (shown under the current team when the role may do nav.action)
// or 'admin' (shown to platform admins); nav.shown(team), when given, resolves whether to list the entry at
// all. See web/CONVENTIONS.md.

import * as api from './api.js';

export const routes = [
  { path: '/signin', page: () => import('./pages/signin.js'), public: true },
  { path: '/invitations/:token', page: () => import('./pages/invitation.js'), public: true },
  { path: '/reset-password/:token', page: () => import('./pages/reset-password.js'), public: true },
  { path: '/signup', page: () => import('./pages/signup.js'), public: true },
  { path: '/verify-email/:token', page: () => import('./pages/verify-email.js'), public: true },
  { path: '/account/password', page: () => import('./pages/password.js') },
  { path: '/account/two-factor', page: () => import('./pages/two-factor.js') },
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
  { path: '/teams/:team/members', page: () => import('./pages/members.js'),
    nav: { scope: 'team', label: 'Members', action: 'team:user:list' } },
  { path: '/teams/:team/audit-log', page: () => import('./pages/audit.js'),
    nav: { scope: 'team', label: 'Audit log', action: 'team:audit-log' } },
  { path: '/teams/:team/alerts', page: () => import('./pages/alerts.js'),
    nav: { scope: 'team', label: 'Alerts', action: 'team:alerts:read' } },
  { path: '/teams/:team/pipelines', page: () => import('./pages/pipelines.js'),
    nav: { scope: 'team', label: 'Pipelines', action: 'pipeline:read' } },
  { path: '/teams/:team/pipelines/:pipeline', page: () => import('./pages/pipeline.js') },
  { path: '/teams/:team/instances/:instance/snapshot-schedule', page: () => import('./pages/snapshot-schedule.js') },
  { path: '/editor/device/:device', page: () => import('./pages/editor.js') },
  { path: '/editor/:instance', page: () => import('./pages/editor.js') },
  { path: '/endpoints/:instance', page: () => import('./pages/endpoints.js') },
  { path: '/teams/:team/dashboards', page: () => import('./pages/dashboards.js'),
    nav: { scope: 'team', label: 'Dashboards', action: 'team:dashboards:list' } },
  { path: '/teams/:team/billing', page: () => import('./pages/billing.js'),
    nav: { scope: 'team', label: 'Billing', action: 'team:billing:read',
      // Listed only when the platform bills teams (a Stripe key is configured).
      shown: (team) => api.get(`/teams/${team.id}/billing`).then((b) => b.enabled, () => false) } },
  { path: '/admin/stacks', page: () => import('./pages/admin-stacks.js'), nav: { scope: 'admin', label: 'Stacks' } },
  { path: '/admin/templates', page: () => import('./pages/admin-templates.js'), nav: { scope: 'admin', label: 'Templates' } },
  { path: '/admin/instance-types', page: () => import('./pages/admin-instance-types.js'), nav: { scope: 'admin', label: 'Instance types' } },
  { path: '/admin/team-types', page: () => import('./pages/admin-team-types.js'), nav: { scope: 'admin', label: 'Team types' } },
  { path: '/admin/blueprints', page: () => import('./pages/admin-blueprints.js'), nav: { scope: 'admin', label: 'Blueprints' } },
  { path: '/admin/users', page: () => import('./pages/admin-users.js'), nav: { scope: 'admin', label: 'Users' } },
  { path: '/admin/users/:user', page: () => import('./pages/admin-user.js') },
  { path: '/admin/sign-in', page: () => import('./pages/admin-sign-in.js'), nav: { scope: 'admin', label: 'Sign-in' } },
];

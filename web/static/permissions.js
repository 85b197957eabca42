// The permission table of domain/permissions.go, copied from it (not generated). web/permissions_test.go checks
// that it equals domain.MinRole for every action, so a change there fails the tests until this copy follows.
// The API still decides; the dashboard only hides what the caller's role may not do.

export const ROLES = { owner: 50, member: 30, viewer: 10, dashboard: 5 };

// The least team role each action needs. Actions missing here are for platform admins only.
export const MIN_ROLE = {
  'team:read': 'dashboard',
  'team:edit': 'owner',
  'team:delete': 'owner',
  'team:audit-log': 'owner',
  'team:user:list': 'viewer',
  'team:user:invite': 'owner',
  'team:user:remove': 'owner',
  'team:user:change-role': 'owner',
  'team:projects:list': 'viewer',
  'application:create': 'owner',
  'application:read': 'viewer',
  'application:edit': 'owner',
  'application:delete': 'owner',
  'project:create': 'owner',
  'project:read': 'viewer',
  'project:edit': 'owner',
  'project:delete': 'owner',
  'project:status': 'dashboard',
  'project:change-status': 'owner',
  'project:edit-env': 'member',
  'project:log': 'viewer',
  'project:flows:view': 'viewer',
  'project:flows:edit': 'member',
  'project:endpoints:use': 'dashboard',
  'project:endpoints:manage': 'owner',
  'team:dashboards:list': 'dashboard',
  'project:snapshot:create': 'member',
  'project:snapshot:list': 'viewer',
  'snapshot:meta': 'viewer',
  'snapshot:full': 'member',
  'snapshot:export': 'member',
  'snapshot:import': 'owner',
  'snapshot:edit': 'owner',
  'snapshot:delete': 'owner',
  'project:snapshot:rollback': 'member',
  'project:snapshot:schedule': 'member',
  'operation:read': 'viewer',
  'team:billing:read': 'owner',
  'team:billing:manage': 'owner',
  'team:alerts:read': 'member',
  'team:alerts:manage': 'owner',
  'application:device-group:create': 'owner',
  'application:device-group:list': 'member',
  'application:device-group:read': 'member',
  'application:device-group:update': 'owner',
  'application:device-group:delete': 'owner',
  'application:device-group:membership:update': 'owner',
  'rollout:read': 'member',
  'rollout:control': 'owner',
  'team:device:list': 'viewer',
  'device:create': 'owner',
  'device:read': 'viewer',
  'device:edit': 'owner',
  'device:edit-env': 'member',
  'device:delete': 'owner',
  'device:change-status': 'member',
  'device:snapshot:create': 'member',
  'device:snapshot:list': 'viewer',
  'device:snapshot:set-target': 'member',
  'device:audit-log': 'viewer',
  'team:device:provisioning-token:create': 'owner',
  'team:device:provisioning-token:list': 'owner',
  'team:device:provisioning-token:delete': 'owner',
  'pipeline:read': 'member',
  'pipeline:create': 'owner',
  'pipeline:edit': 'owner',
  'pipeline:delete': 'owner',
  'pipeline:promote': 'member',
};

// Actions any signed-in user may do, without a team role.
export const ANY_USER = ['team:create', 'platform:read'];

// can answers whether a user holding role (a team role name, or '' when not a member) may do action.
export function can(user, role, action) {
  if (!user) return false;
  if (user.admin) return true;
  if (ANY_USER.includes(action)) return true;
  const need = MIN_ROLE[action];
  return need !== undefined && (ROLES[role] || 0) >= ROLES[need];
}

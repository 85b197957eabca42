package domain

// Action is something a caller may do. Every handler names its action and asks Allowed.
type Action string

// Actions, named as in FlowFuse's permission table where one exists there.
const (
	ActionTeamCreate           Action = "team:create"
	ActionTeamRead             Action = "team:read"
	ActionTeamEdit             Action = "team:edit"
	ActionTeamDelete           Action = "team:delete"
	ActionTeamAuditLog         Action = "team:audit-log"
	ActionTeamUserList         Action = "team:user:list"
	ActionTeamUserInvite       Action = "team:user:invite"
	ActionTeamUserRemove       Action = "team:user:remove"
	ActionTeamUserChangeRole   Action = "team:user:change-role"
	ActionApplicationList      Action = "team:projects:list"
	ActionApplicationCreate    Action = "application:create"
	ActionApplicationRead      Action = "application:read"
	ActionApplicationEdit      Action = "application:edit"
	ActionApplicationDelete    Action = "application:delete"
	ActionInstanceCreate       Action = "project:create"
	ActionInstanceRead         Action = "project:read"
	ActionInstanceStatus       Action = "project:status"
	ActionInstanceChangeStatus Action = "project:change-status"
	ActionInstanceEdit         Action = "project:edit"
	ActionInstanceEditEnv      Action = "project:edit-env"
	ActionInstanceDelete       Action = "project:delete"
	ActionInstanceLog          Action = "project:log"
	ActionInstanceFlowsView    Action = "project:flows:view"
	ActionInstanceFlowsEdit    Action = "project:flows:edit"
	// The instance's own address, <name>.<apps domain>: signing in to its protected endpoints (Dashboard 2
	// included), and turning the protection on or off and managing its bearer tokens.
	ActionInstanceEndpointsUse    Action = "project:endpoints:use"
	ActionInstanceEndpointsManage Action = "project:endpoints:manage"
	ActionTeamDashboardsList      Action = "team:dashboards:list" // the team's instances' dashboards, for the dashboard role
	ActionSnapshotCreate          Action = "project:snapshot:create"
	ActionSnapshotList            Action = "project:snapshot:list"
	ActionSnapshotMeta            Action = "snapshot:meta"
	ActionSnapshotFull            Action = "snapshot:full"
	ActionSnapshotExport          Action = "snapshot:export"
	ActionSnapshotImport          Action = "snapshot:import"
	ActionSnapshotEdit            Action = "snapshot:edit"
	ActionSnapshotDelete          Action = "snapshot:delete"
	ActionSnapshotRollback        Action = "project:snapshot:rollback"
	ActionSnapshotSchedule        Action = "project:snapshot:schedule"
	ActionOperationRead           Action = "operation:read"
	ActionTeamBillingRead         Action = "team:billing:read"
	ActionTeamBillingManage       Action = "team:billing:manage"
	ActionTeamAlertsRead          Action = "team:alerts:read"   // alert rules, webhooks, the delivery log
	ActionTeamAlertsManage        Action = "team:alerts:manage" // change them, send a test

	// Devices, as in FlowFuse's table.
	ActionDeviceGroupCreate       Action = "application:device-group:create"
	ActionDeviceGroupList         Action = "application:device-group:list"
	ActionDeviceGroupRead         Action = "application:device-group:read"
	ActionDeviceGroupUpdate       Action = "application:device-group:update"
	ActionDeviceGroupDelete       Action = "application:device-group:delete"
	ActionDeviceGroupMembership   Action = "application:device-group:membership:update"
	ActionRolloutRead             Action = "rollout:read"
	ActionRolloutControl          Action = "rollout:control"
	ActionDeviceList              Action = "team:device:list"
	ActionDeviceCreate            Action = "device:create"
	ActionDeviceRead              Action = "device:read"
	ActionDeviceEdit              Action = "device:edit"
	ActionDeviceEditEnv           Action = "device:edit-env"
	ActionDeviceDelete            Action = "device:delete"
	ActionDeviceChangeStatus      Action = "device:change-status"
	ActionDeviceSnapshotCreate    Action = "device:snapshot:create"
	ActionDeviceSnapshotList      Action = "device:snapshot:list"
	ActionDeviceSnapshotSetTarget Action = "device:snapshot:set-target"
	ActionDeviceAuditLog          Action = "device:audit-log"
	ActionProvisioningTokenCreate Action = "team:device:provisioning-token:create"
	ActionProvisioningTokenList   Action = "team:device:provisioning-token:list"
	ActionProvisioningTokenDelete Action = "team:device:provisioning-token:delete"
	ActionPipelineRead            Action = "pipeline:read"
	ActionPipelineCreate          Action = "pipeline:create"
	ActionPipelineEdit            Action = "pipeline:edit"
	ActionPipelineDelete          Action = "pipeline:delete"
	ActionPipelinePromote         Action = "pipeline:promote" // protected stages and approvals ask for more

	// Platform objects: any signed-in user reads them; only platform admins write them.
	ActionPlatformRead  Action = "platform:read"
	ActionPlatformWrite Action = "platform:write"
	ActionUserCreate    Action = "user:create"
	ActionUserList      Action = "user:list"
)

// rolePermissions is the one permission table: the least team role an action needs.
// Actions missing here are platform-admin only.
var rolePermissions = map[Action]Role{
	ActionTeamRead:                RoleDashboard,
	ActionTeamEdit:                RoleOwner,
	ActionTeamDelete:              RoleOwner,
	ActionTeamAuditLog:            RoleOwner,
	ActionTeamUserList:            RoleViewer,
	ActionTeamUserInvite:          RoleOwner,
	ActionTeamUserRemove:          RoleOwner,
	ActionTeamUserChangeRole:      RoleOwner,
	ActionApplicationList:         RoleViewer,
	ActionApplicationCreate:       RoleOwner,
	ActionApplicationRead:         RoleViewer,
	ActionApplicationEdit:         RoleOwner,
	ActionApplicationDelete:       RoleOwner,
	ActionInstanceCreate:          RoleOwner,
	ActionInstanceRead:            RoleViewer,
	ActionInstanceEdit:            RoleOwner,
	ActionInstanceDelete:          RoleOwner,
	ActionInstanceStatus:          RoleDashboard,
	ActionInstanceChangeStatus:    RoleOwner,
	ActionInstanceEditEnv:         RoleMember,
	ActionInstanceLog:             RoleViewer,
	ActionInstanceFlowsView:       RoleViewer,
	ActionInstanceFlowsEdit:       RoleMember,
	ActionInstanceEndpointsUse:    RoleDashboard,
	ActionInstanceEndpointsManage: RoleOwner,
	ActionTeamDashboardsList:      RoleDashboard,
	ActionSnapshotCreate:          RoleMember,
	ActionSnapshotList:            RoleViewer,
	ActionSnapshotMeta:            RoleViewer,
	ActionSnapshotFull:            RoleMember,
	ActionSnapshotExport:          RoleMember,
	ActionSnapshotImport:          RoleOwner,
	ActionSnapshotEdit:            RoleOwner,
	ActionSnapshotDelete:          RoleOwner,
	ActionSnapshotRollback:        RoleMember,
	ActionSnapshotSchedule:        RoleMember,
	ActionOperationRead:           RoleViewer,
	ActionTeamBillingRead:         RoleOwner,
	ActionTeamBillingManage:       RoleOwner,
	ActionTeamAlertsRead:          RoleMember,
	ActionTeamAlertsManage:        RoleOwner,

	ActionDeviceGroupCreate:       RoleOwner,
	ActionDeviceGroupList:         RoleMember,
	ActionDeviceGroupRead:         RoleMember,
	ActionDeviceGroupUpdate:       RoleOwner,
	ActionDeviceGroupDelete:       RoleOwner,
	ActionDeviceGroupMembership:   RoleOwner,
	ActionRolloutRead:             RoleMember,
	ActionRolloutControl:          RoleOwner,
	ActionDeviceList:              RoleViewer,
	ActionDeviceCreate:            RoleOwner,
	ActionDeviceRead:              RoleViewer,
	ActionDeviceEdit:              RoleOwner,
	ActionDeviceEditEnv:           RoleMember,
	ActionDeviceDelete:            RoleOwner,
	ActionDeviceChangeStatus:      RoleMember,
	ActionDeviceSnapshotCreate:    RoleMember,
	ActionDeviceSnapshotList:      RoleViewer,
	ActionDeviceSnapshotSetTarget: RoleMember,
	ActionDeviceAuditLog:          RoleViewer,
	ActionProvisioningTokenCreate: RoleOwner,
	ActionProvisioningTokenList:   RoleOwner,
	ActionProvisioningTokenDelete: RoleOwner,
	ActionPipelineRead:            RoleMember,
	ActionPipelineCreate:          RoleOwner,
	ActionPipelineEdit:            RoleOwner,
	ActionPipelineDelete:          RoleOwner,
	ActionPipelinePromote:         RoleMember,
}

// anyUserActions need a signed-in user and no team role.
var anyUserActions = map[Action]bool{
	ActionTeamCreate:   true,
	ActionPlatformRead: true,
}

// Caller is who makes a request, as far as permissions care.
type Caller struct {
	UserID string
	Admin  bool
}

// Allowed reports whether a caller holding role in the team of the subject may perform the action.
// Platform admins may do everything.
func Allowed(c Caller, role Role, a Action) bool {
	if c.Admin {
		return true
	}
	if c.UserID == "" {
		return false
	}
	if anyUserActions[a] {
		return true
	}
	min, ok := rolePermissions[a]
	if !ok {
		return false
	}
	return role >= min
}

// MinRole returns the least team role an action needs, and false for actions that are platform-admin
// only or need no team role.
func MinRole(a Action) (Role, bool) {
	r, ok := rolePermissions[a]
	return r, ok
}

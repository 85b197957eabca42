// Package domain holds Flowyard's core types, validation rules, roles and the permission table.
// It imports no other package of the project.
package domain

import "fmt"

// Role is a member's role in a team. The values match FlowFuse's so that levels compare the same way.
type Role int

// Team roles, from least to most privileged. RoleNone means "not a member".
const (
	RoleNone      Role = 0
	RoleDashboard Role = 5
	RoleViewer    Role = 10
	RoleMember    Role = 30
	RoleOwner     Role = 50
)

// TeamRoles lists the roles a membership may hold, least privileged first.
var TeamRoles = []Role{RoleDashboard, RoleViewer, RoleMember, RoleOwner}

// String returns the role's API name.
func (r Role) String() string {
	switch r {
	case RoleDashboard:
		return "dashboard"
	case RoleViewer:
		return "viewer"
	case RoleMember:
		return "member"
	case RoleOwner:
		return "owner"
	}
	return "none"
}

// ParseRole turns an API role name into a Role.
func ParseRole(s string) (Role, error) {
	for _, r := range TeamRoles {
		if r.String() == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q: want owner, member, viewer or dashboard", s)
}

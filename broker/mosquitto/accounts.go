package mosquitto

import (
	"context"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/storage"
)

// A device is one dynamic-security client and one role of the same name, device:<team>:<device>: the client
// signs in with the device's broker password and only with its own client ID; the role holds exactly the
// device's topic ACL (docs/device-protocol.md §3.7). Mosquitto's ACL patterns cannot derive the protocol's topics
// from that name (%u and %c stand for a whole topic level, and the plugin of Mosquitto 2.0 substitutes neither),
// so every device has a role of its own.

// Plugin error texts the accounts rely on.
const (
	reasonClientExists   = "Client already exists"
	reasonRoleExists     = "Role already exists"
	reasonClientNotFound = "Client not found"
	reasonRoleNotFound   = "Role not found"
)

// deviceACLs is a device's ACL as role entries. Subscriptions are compared literally, so no wildcard, shared or
// system filter ever matches one; publishes are matched as topics. Everything else falls to the plugin's
// default access, which denies publishing and subscribing.
func deviceACLs(d *storage.Device) []map[string]any {
	allow := func(acltype, topic string) map[string]any {
		return map[string]any{"acltype": acltype, "topic": topic, "allow": true}
	}
	acls := []map[string]any{allow("subscribeLiteral", devices.DeviceTopic(d.TeamID, d.ID, "command"))}
	if d.ApplicationID != nil {
		acls = append(acls, allow("subscribeLiteral", devices.OwnerCommandTopic(d.TeamID, "a", *d.ApplicationID)))
	}
	if d.InstanceID != nil {
		acls = append(acls, allow("subscribeLiteral", devices.OwnerCommandTopic(d.TeamID, "p", *d.InstanceID)))
	}
	for _, leaf := range []string{"status", "logs", "resources", "response", "response/#"} {
		acls = append(acls, allow("publishClientSend", devices.DeviceTopic(d.TeamID, d.ID, leaf)))
	}
	return acls
}

// accountName is a device's client and role name, its broker username.
func accountName(teamID, deviceID string) string { return devices.BrokerUsername(teamID, deviceID) }

// createAccount makes a device's role and client, signing in with password and only as its own client ID. A
// device that has them already (its credentials were issued again) gets the new password and ACL, enabled.
func (c *control) createAccount(ctx context.Context, d *storage.Device, password string) error {
	name := accountName(d.TeamID, d.ID)
	acls := deviceACLs(d)
	_, err := c.do(ctx,
		command{"command": "createRole", "rolename": name, "acls": acls},
		command{"command": "createClient", "username": name, "password": password, "clientid": name,
			"roles": []map[string]any{{"rolename": name}}})
	if err == nil || !(refused(err, reasonRoleExists) || refused(err, reasonClientExists)) {
		return err
	}
	_, err = c.do(ctx,
		command{"command": "modifyRole", "rolename": name, "acls": acls},
		command{"command": "modifyClient", "username": name, "password": password, "clientid": name,
			"roles": []map[string]any{{"rolename": name}}},
		command{"command": "enableClient", "username": name})
	return err
}

// setACL makes a device's role hold its ACL as the device is now (its owner changed).
func (c *control) setACL(ctx context.Context, d *storage.Device) error {
	_, err := c.do(ctx, command{"command": "modifyRole", "rolename": accountName(d.TeamID, d.ID), "acls": deviceACLs(d)})
	return err
}

// disableAccount stops a device from signing in and closes its connections; enableAccount undoes it.
func (c *control) disableAccount(ctx context.Context, teamID, deviceID string) error {
	_, err := c.do(ctx, command{"command": "disableClient", "username": accountName(teamID, deviceID)})
	return err
}

func (c *control) enableAccount(ctx context.Context, teamID, deviceID string) error {
	_, err := c.do(ctx, command{"command": "enableClient", "username": accountName(teamID, deviceID)})
	return err
}

// deleteAccount removes a device's client (closing its connections) and its role. One already gone is not an
// error: deletion is retried until both are.
func (c *control) deleteAccount(ctx context.Context, teamID, deviceID string) error {
	name := accountName(teamID, deviceID)
	if _, err := c.do(ctx, command{"command": "deleteClient", "username": name}); err != nil && !refused(err, reasonClientNotFound) {
		return err
	}
	if _, err := c.do(ctx, command{"command": "deleteRole", "rolename": name}); err != nil && !refused(err, reasonRoleNotFound) {
		return err
	}
	return nil
}

package mosquitto

import (
	"context"

	"github.com/flowyard/flowyard/storage"
)

// DeviceACLs is a device's role ACL, for the measurements' seeded accounts.
func DeviceACLs(d *storage.Device) []map[string]any { return deviceACLs(d) }

// CreateBareClient makes a client without a role: the least any per-device account could cost the plugin.
func (b *Broker) CreateBareClient(ctx context.Context, username, password string) error {
	return b.bounded(ctx, func(ctx context.Context) error {
		_, err := b.ctl.do(ctx, command{"command": "createClient", "username": username, "password": password, "clientid": username})
		return err
	})
}

// CreateInOneMessage makes the accounts of ds (role and client each) with the commands of all of them in one
// control message.
func (b *Broker) CreateInOneMessage(ctx context.Context, ds []*storage.Device, password string) error {
	var cmds []command
	for _, d := range ds {
		name := accountName(d.TeamID, d.ID)
		cmds = append(cmds, command{"command": "createRole", "rolename": name, "acls": deviceACLs(d)},
			command{"command": "createClient", "username": name, "password": password, "clientid": name,
				"roles": []map[string]any{{"rolename": name}}})
	}
	return b.bounded(ctx, func(ctx context.Context) error { _, err := b.ctl.do(ctx, cmds...); return err })
}

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

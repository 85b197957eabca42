package mosquitto

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/storage"
)

// platformRole lets the admin client do the platform's part of the device protocol: publish every device's
// commands and receive every device's status messages and replies. The admin client of `mosquitto_ctrl dynsec
// init` may subscribe to everything but publish only to the plugin.
const platformRole = "flowyard-platform"

func platformACLs() []map[string]any {
	acl := func(acltype, leaf string) map[string]any {
		return map[string]any{"acltype": acltype, "topic": devices.DeviceTopic("+", "+", leaf), "allow": true}
	}
	return []map[string]any{acl("publishClientSend", "command"),
		acl("subscribePattern", "status"), acl("subscribePattern", "response/#"),
		acl("publishClientReceive", "status"), acl("publishClientReceive", "response/#")}
}

// grantPlatform makes sure platformRole holds its ACL and the admin client has it.
//
// Replicas that start at once grant it at once, and each grant closes the admin client's connections, the other
// processes' too, so an exchange may go unanswered: the whole grant is tried again (it is idempotent) until the
// admin has the role, grantAttempts times at most.
func (b *Broker) grantPlatform(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= grantAttempts; attempt++ {
		if err = b.tryGrantPlatform(ctx); err == nil || ctx.Err() != nil {
			return err
		}
		b.log.Info("could not give the admin client the platform's role (another process may be giving it); trying again", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	return err
}

// grantAttempts bounds grantPlatform's tries.
const grantAttempts = 5

func (b *Broker) tryGrantPlatform(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	err := b.ensurePlatformRole(ctx)
	if err != nil {
		return fmt.Errorf("give the MQTT admin client %s the role %s (is it the dynamic-security admin?): %w", b.cfg.Username, platformRole, err)
	}
	has, err := b.adminHasPlatformRole(ctx)
	if err != nil || has {
		return err
	}
	// The plugin closes every connection of a client whose roles change, this one included, so the answer may
	// never come: what counts is that the admin has the role once this process is connected again.
	before := b.connections.Load()
	b.granting.Store(true)
	defer b.granting.Store(false)
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, _ = b.ctl.do(short, command{"command": "addClientRole", "username": b.cfg.Username, "rolename": platformRole})
	cancelShort()
	for wait := time.Now().Add(3 * time.Second); b.connections.Load() == before && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	if has, err = b.adminHasPlatformRole(ctx); err != nil || !has {
		return fmt.Errorf("give the MQTT admin client %s the role %s: %w", b.cfg.Username, platformRole, cmp.Or(err, errors.New("the role did not stick")))
	}
	return nil
}

// ensurePlatformRole creates platformRole or rewrites its ACL, only when it does not hold platformACLs already: the
// plugin closes the connections of every client of a role it modifies, so a process that started and rewrote it
// unchanged would disconnect every other process from the broker for a moment, losing the messages meanwhile.
func (b *Broker) ensurePlatformRole(ctx context.Context) error {
	got, err := b.ctl.do(ctx, command{"command": "getRole", "rolename": platformRole})
	if refused(err, reasonRoleNotFound) {
		_, err = b.ctl.do(ctx, command{"command": "createRole", "rolename": platformRole, "acls": platformACLs()})
		if !refused(err, reasonRoleExists) {
			return err
		}
		got, err = b.ctl.do(ctx, command{"command": "getRole", "rolename": platformRole})
	}
	if err != nil {
		return err
	}
	var data struct {
		Role struct {
			ACLs []acl `json:"acls"`
		} `json:"role"`
	}
	if err := json.Unmarshal(got[0].Data, &data); err != nil {
		return fmt.Errorf("read the role %s: %w", platformRole, err)
	}
	if sameACLs(data.Role.ACLs, platformACLs()) {
		return nil
	}
	_, err = b.ctl.do(ctx, command{"command": "modifyRole", "rolename": platformRole, "acls": platformACLs()})
	return err
}

// acl is one entry of a role's ACL as getRole reads it.
type acl struct {
	ACLType string `json:"acltype"`
	Topic   string `json:"topic"`
	Allow   bool   `json:"allow"`
}

// sameACLs reports whether a role's ACL holds exactly the entries of want, in any order.
func sameACLs(got []acl, want []map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(got, acl{ACLType: w["acltype"].(string), Topic: w["topic"].(string), Allow: w["allow"].(bool)}) {
			return false
		}
	}
	return true
}

// roleRef names a role of a client.
type roleRef struct {
	Rolename string `json:"rolename"`
}

// adminHasPlatformRole reads the admin client's roles.
func (b *Broker) adminHasPlatformRole(ctx context.Context) (bool, error) {
	got, err := b.ctl.do(ctx, command{"command": "getClient", "username": b.cfg.Username})
	if err != nil {
		return false, fmt.Errorf("read the MQTT admin client %s: %w", b.cfg.Username, err)
	}
	var data struct {
		Client struct {
			Roles []roleRef `json:"roles"`
		} `json:"client"`
	}
	if err := json.Unmarshal(got[0].Data, &data); err != nil {
		return false, fmt.Errorf("read the MQTT admin client %s: %w", b.cfg.Username, err)
	}
	return slices.Contains(data.Client.Roles, roleRef{platformRole}), nil
}

func updatePayload(d *storage.Device) []byte {
	payload, _ := json.Marshal(devices.UpdateCommand(d))
	return payload
}

// The device accounts (devices.Accounts), each exchange with the plugin bounded by the configured timeout.

// Create gives a device its client and role (accounts.go).
func (b *Broker) Create(ctx context.Context, d *storage.Device, password string) error {
	return b.bounded(ctx, func(ctx context.Context) error { return b.ctl.createAccount(ctx, d, password) })
}

// Refresh makes a device's role hold its ACL as the device is now.
func (b *Broker) Refresh(ctx context.Context, d *storage.Device) error {
	return b.bounded(ctx, func(ctx context.Context) error { return b.ctl.setACL(ctx, d) })
}

// Disable stops a device from signing in and closes its connections at once.
func (b *Broker) Disable(ctx context.Context, teamID, deviceID string) error {
	return b.bounded(ctx, func(ctx context.Context) error { return b.ctl.disableAccount(ctx, teamID, deviceID) })
}

// Enable undoes Disable.
func (b *Broker) Enable(ctx context.Context, teamID, deviceID string) error {
	return b.bounded(ctx, func(ctx context.Context) error { return b.ctl.enableAccount(ctx, teamID, deviceID) })
}

// Delete removes a device's client and role.
func (b *Broker) Delete(ctx context.Context, teamID, deviceID string) error {
	return b.bounded(ctx, func(ctx context.Context) error { return b.ctl.deleteAccount(ctx, teamID, deviceID) })
}

func (b *Broker) bounded(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	if err != nil {
		b.log.Warn("a change of device accounts at the MQTT broker failed", "took", time.Since(start), "err", err)
	}
	return err
}

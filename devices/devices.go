// Package devices holds what Flowyard knows about the FlowFuse device protocol on the platform side: device
// registration and credentials, reading an agent's state report, the check-in decision (200 or 409 with what
// the device should run), the `update` command, and the documents an agent downloads (its target snapshot with
// credentials re-encrypted to its own secret, and its settings). The HTTP device endpoints (api) and the MQTT
// broker (comms) both call it, so the protocol's rules live in one place. docs/device-protocol.md describes the
// protocol; comments cite its sections: §2 the agent's HTTP calls and state object, §3 MQTT topics and commands,
// §4 the agent's deployment, §5 credentials, §7 versions.
package devices

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Token kinds and prefixes of a device's credentials in the tokens table.
const (
	TokenKindDevice       = "device"       // fyd_…: the agent's HTTP bearer token
	TokenKindBroker       = "broker"       // fyb_…: the agent's MQTT password
	TokenKindProvisioning = "provisioning" // fyp_…: a team's token that registers new devices
	BrokerPasswordPrefix  = "fyb_"
	tokenOwnerDevice      = "device"
)

// Modes of a device.
const (
	ModeAutonomous = "autonomous"
	ModeDeveloper  = "developer"
)

// Owner types as the protocol names them in `update` commands.
const (
	OwnerApplication = "application"
	OwnerInstance    = "instance"
)

// Status of a device's connection, derived from its check-ins.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
	StatusNever   = "never"
)

// DefaultOfflineAfter is how long a device that is not connected to the broker may stay silent before it shows
// offline: the agent checks in every 60 s plus up to 10 s of jitter, so three missed check-ins.
const DefaultOfflineAfter = 3*time.Minute + 30*time.Second

// minAgentVersion is the oldest agent that can run application-owned devices (docs/device-protocol.md §7).
var minAgentVersion = [3]int{1, 11, 0}

// Service runs the platform side of the protocol on a store.
type Service struct {
	Store  *storage.Store
	Sealer *domain.Sealer
	// ForgeURL is how agents reach the API; BrokerURL the broker they connect to ("" = HTTP polling only).
	ForgeURL, BrokerURL string
	// OfflineAfter overrides DefaultOfflineAfter.
	OfflineAfter time.Duration
	// Accounts are the broker's own device accounts when it signs devices in itself (an external broker); nil
	// with the embedded broker, which asks the store.
	Accounts Accounts

	memo *memo // set on the copy RehashDevices works with: reads shared by a batch of devices, once
}

// Accounts are a broker's own accounts of devices: a broker that signs devices in and checks their topics
// itself hears of every device, password and owner through them. Each call answers once the broker applied it.
type Accounts interface {
	// Create gives a device an account that signs in with password, as the device's client ID only, and allows
	// exactly its topics (docs/device-protocol.md §3.7); a device that has one gets the new password, enabled.
	Create(ctx context.Context, d *storage.Device, password string) error
	// Refresh makes the account allow the device's topics as they are now (its owner changed).
	Refresh(ctx context.Context, d *storage.Device) error
	// Disable stops the device from signing in and closes its connections; Enable undoes it.
	Disable(ctx context.Context, teamID, deviceID string) error
	Enable(ctx context.Context, teamID, deviceID string) error
	// Delete removes the account; one already gone is no error.
	Delete(ctx context.Context, teamID, deviceID string) error
}

// Credentials are a device's secrets, shown once when it is registered.
type Credentials struct {
	Token            string             `json:"token"`
	CredentialSecret string             `json:"credentialSecret"`
	Broker           *BrokerCredentials `json:"broker,omitempty"`
}

// BrokerCredentials are how a device signs in to the broker.
type BrokerCredentials struct {
	URL      string `json:"url"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// BrokerUsername is the broker user (and client ID) of a device: device:<team>:<device>.
func BrokerUsername(teamID, deviceID string) string { return "device:" + teamID + ":" + deviceID }

// ParseBrokerUsername splits device:<team>:<device>.
func ParseBrokerUsername(u string) (teamID, deviceID string, ok bool) {
	parts := strings.Split(u, ":")
	if len(parts) != 3 || parts[0] != "device" || parts[1] == "" || parts[2] == "" {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// OwnerType is "application", "instance" or "" for an unassigned device.
func OwnerType(d *storage.Device) string {
	switch {
	case d.ApplicationID != nil:
		return OwnerApplication
	case d.InstanceID != nil:
		return OwnerInstance
	}
	return ""
}

// Status derives online, offline or never from a device's check-ins: connected to the broker, or seen over
// HTTP within the offline window since its last disconnection.
func (s *Service) Status(d *storage.Device, at time.Time) string {
	switch {
	case d.LastSeenAt == nil:
		return StatusNever
	case d.Connected:
		return StatusOnline
	case d.DisconnectedAt != nil && !d.LastSeenAt.After(*d.DisconnectedAt):
		return StatusOffline
	case at.Sub(*d.LastSeenAt) <= s.offlineAfter():
		return StatusOnline
	}
	return StatusOffline
}

// OfflineWindow is how long a device not connected to the broker may stay silent before it shows offline.
func (s *Service) OfflineWindow() time.Duration { return s.offlineAfter() }

func (s *Service) offlineAfter() time.Duration {
	if s.OfflineAfter > 0 {
		return s.OfflineAfter
	}
	return DefaultOfflineAfter
}

// NewDevice builds a device of a team (not stored yet) with a fresh sealed credential secret.
func (s *Service) NewDevice(teamID, name, typ string) (*storage.Device, error) {
	if err := domain.Collect(domain.ValidateName("name", name), validateType(typ)); err != nil {
		return nil, err
	}
	return &storage.Device{ID: domain.NewID(), TeamID: teamID, Name: name, Type: typ, Mode: ModeAutonomous,
		CredentialSecret: s.Sealer.Seal(domain.NewSecret(32)), Env: []domain.EnvVar{}}, nil
}

func validateType(typ string) *domain.FieldError {
	if len(typ) > 200 || strings.ContainsAny(typ, "\x00\n\r") {
		return &domain.FieldError{Field: "type", Detail: "must be at most 200 characters on one line"}
	}
	return nil
}

// Register stores a new device with its settings hash and issues its credentials, inside tx.
func (s *Service) Register(ctx context.Context, tx *storage.Store, d *storage.Device) (*Credentials, error) {
	if err := s.Rehash(ctx, tx, d); err != nil {
		return nil, err
	}
	if err := tx.InsertDevice(ctx, d); err != nil {
		return nil, err
	}
	return s.IssueCredentials(ctx, tx, d)
}

// IssueCredentials replaces a device's token and broker password with new ones and returns them with its
// credential secret.
func (s *Service) IssueCredentials(ctx context.Context, tx *storage.Store, d *storage.Device) (*Credentials, error) {
	secret, err := s.Sealer.Open(d.CredentialSecret)
	if err != nil {
		return nil, fmt.Errorf("open device credential secret: %w", err)
	}
	token, tokenHash := domain.NewToken(domain.TokenPrefixDevice)
	password, passwordHash := domain.NewToken(BrokerPasswordPrefix)
	for _, kind := range []string{TokenKindDevice, TokenKindBroker} {
		if err := tx.DeleteTokensOfOwnerKind(ctx, tokenOwnerDevice, d.ID, kind); err != nil {
			return nil, err
		}
	}
	for kind, hash := range map[string]string{TokenKindDevice: tokenHash, TokenKindBroker: passwordHash} {
		if err := tx.InsertToken(ctx, &storage.Token{ID: domain.NewID(), TokenHash: hash, Kind: kind, Name: kind,
			OwnerType: tokenOwnerDevice, OwnerID: d.ID, TeamID: &d.TeamID}); err != nil {
			return nil, err
		}
	}
	creds := &Credentials{Token: token, CredentialSecret: secret}
	if s.Accounts != nil {
		// Inside the transaction: the broker learns the password now, the only time it is known, and a broker
		// that refuses it leaves nothing registered. An account made for a transaction that then fails is
		// deleted when the platform next starts (see the external broker's reconciliation).
		if err := s.Accounts.Create(ctx, d, password); err != nil {
			return nil, brokerUnavailable(err)
		}
	}
	if s.BrokerURL != "" {
		creds.Broker = &BrokerCredentials{URL: s.BrokerURL, Username: BrokerUsername(d.TeamID, d.ID), Password: password}
	}
	return creds, nil
}

// DeviceByToken authenticates a device token (HTTP) and returns its device.
func (s *Service) DeviceByToken(ctx context.Context, token string) (*storage.Device, error) {
	return s.deviceByCredential(ctx, token, domain.TokenPrefixDevice, TokenKindDevice)
}

// DeviceByBrokerPassword authenticates a broker password and returns its device.
func (s *Service) DeviceByBrokerPassword(ctx context.Context, password string) (*storage.Device, error) {
	return s.deviceByCredential(ctx, password, BrokerPasswordPrefix, TokenKindBroker)
}

func (s *Service) deviceByCredential(ctx context.Context, secret, prefix, kind string) (*storage.Device, error) {
	if !strings.HasPrefix(secret, prefix) {
		return nil, domain.Unauthorized("Invalid device credentials.")
	}
	d, err := s.Store.GetDeviceByToken(ctx, domain.HashToken(secret), kind, time.Now())
	if domain.IsKind(err, domain.KindNotFound) {
		return nil, domain.Unauthorized("Invalid device credentials.")
	}
	return d, err
}

// agentTooOld reports whether an application-owned device's agent predates application devices. An agent
// that never said its version is not assumed old.
func agentTooOld(d *storage.Device) bool {
	if d.ApplicationID == nil || d.AgentVersion == "" {
		return false
	}
	v, ok := parseVersion(d.AgentVersion)
	if !ok {
		return false
	}
	for i := range v {
		if v[i] != minAgentVersion[i] {
			return v[i] < minAgentVersion[i]
		}
	}
	return false
}

// parseVersion reads the numeric major.minor.patch of a version such as "4.2.1" or "v1.11.0-beta".
func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n := 0
		if p == "" {
			return v, false
		}
		for _, r := range p {
			if r < '0' || r > '9' || n > 1e6 {
				return v, false
			}
			n = n*10 + int(r-'0')
		}
		v[i] = n
	}
	return v, true
}

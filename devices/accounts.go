package devices

import (
	"context"
	"slices"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The device lifecycle as a broker with its own accounts sees it (Service.Accounts). With the embedded broker,
// which reads credentials and owners from the store, each of these does nothing.

// brokerUnavailable is the error of a change the broker did not take: the request changes nothing and may be
// tried again.
// The broker's own reason is logged where the call failed (comms/mosquitto), not answered.
func brokerUnavailable(error) error {
	return domain.Unavailable("broker_unavailable", "The MQTT broker did not take the change, so nothing was changed: try again.")
}

// OwnerColumns are the device columns its topic ACL depends on.
var OwnerColumns = []string{"application_id", "instance_id"}

// RefreshAccount gives a device's broker account the topics of its owner, inside the transaction that changed
// columns: a broker that refuses fails the change.
func (s *Service) RefreshAccount(ctx context.Context, d *storage.Device, columns []string) error {
	if s.Accounts == nil || !slices.ContainsFunc(columns, func(c string) bool { return slices.Contains(OwnerColumns, c) }) {
		return nil
	}
	if err := s.Accounts.Refresh(ctx, d); err != nil {
		return brokerUnavailable(err)
	}
	return nil
}

// RevokeAccount disables a device's broker account, closing its connections, inside the transaction that
// deletes it: a broker that refuses fails the deletion. DeleteAccount, once that transaction is committed,
// removes the account; RestoreAccount re-enables it when the transaction failed after all.
func (s *Service) RevokeAccount(ctx context.Context, d *storage.Device) error {
	if s.Accounts == nil {
		return nil
	}
	if err := s.Accounts.Disable(ctx, d.TeamID, d.ID); err != nil {
		return brokerUnavailable(err)
	}
	return nil
}

// DeleteAccount removes the broker account of a deleted device. An account left behind is disabled, and the
// external broker's reconciliation deletes it at the platform's next start.
func (s *Service) DeleteAccount(ctx context.Context, teamID, deviceID string) error {
	if s.Accounts == nil {
		return nil
	}
	return s.Accounts.Delete(ctx, teamID, deviceID)
}

// RestoreAccount re-enables the account RevokeAccount disabled, for a deletion that did not commit.
func (s *Service) RestoreAccount(ctx context.Context, d *storage.Device) error {
	if s.Accounts == nil {
		return nil
	}
	return s.Accounts.Enable(ctx, d.TeamID, d.ID)
}

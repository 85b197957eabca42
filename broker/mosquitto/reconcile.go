package mosquitto

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flowyard/flowyard/devices"
)

// The store is the truth; the broker's accounts follow it. A process that stops between a change at the broker
// and the end of its transaction leaves an account behind: one made for a registration that did not commit, one
// disabled for a deletion that did not commit, or one of a deleted team's devices whose removal was cut short.
// An API process puts that right when it starts.

// reconcilePage is how many accounts one listing reads.
const reconcilePage = 1000

// account is a device account as the plugin lists it.
type account struct {
	Username string `json:"username"`
	Disabled bool   `json:"disabled"`
}

// reconcile deletes the accounts of devices that do not exist and enables the disabled accounts of devices that
// do. A candidate is looked at again after grace, so that a registration or deletion in progress in another
// process, whose account changed before its transaction ends, is left alone.
func (b *Broker) reconcile(ctx context.Context, grace time.Duration) (deleted, enabled int, err error) {
	stale, disabled, err := b.candidates(ctx)
	if err != nil || len(stale)+len(disabled) == 0 {
		return 0, 0, err
	}
	select {
	case <-time.After(grace):
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	ids := make([]string, 0, len(stale)+len(disabled))
	for id := range stale {
		ids = append(ids, id)
	}
	for id := range disabled {
		ids = append(ids, id)
	}
	teams, err := b.store.DeviceTeams(ctx, ids)
	if err != nil {
		return 0, 0, err
	}
	for id, team := range stale {
		if teams[id] != team && b.Delete(ctx, team, id) == nil {
			deleted++
		}
	}
	for id, team := range disabled {
		if teams[id] == team && b.Enable(ctx, team, id) == nil {
			enabled++
		}
	}
	return deleted, enabled, nil
}

// candidates lists the device accounts, page by page, and returns those of devices the store does not hold
// (stale) and the disabled ones of devices it holds, each by device ID with its team.
func (b *Broker) candidates(ctx context.Context) (stale, disabled map[string]string, err error) {
	stale, disabled = map[string]string{}, map[string]string{}
	for offset := 0; ; offset += reconcilePage {
		page, err := b.listAccounts(ctx, offset)
		if err != nil {
			return nil, nil, err
		}
		byDevice := map[string]account{}
		ids := make([]string, 0, len(page))
		teamOf := map[string]string{}
		for _, a := range page {
			if team, id, ok := devices.ParseBrokerUsername(a.Username); ok {
				byDevice[id], teamOf[id] = a, team
				ids = append(ids, id)
			}
		}
		teams, err := b.store.DeviceTeams(ctx, ids)
		if err != nil {
			return nil, nil, err
		}
		for id, a := range byDevice {
			switch {
			case teams[id] != teamOf[id]:
				stale[id] = teamOf[id]
			case a.Disabled:
				disabled[id] = teamOf[id]
			}
		}
		if len(page) < reconcilePage {
			return stale, disabled, nil
		}
	}
}

func (b *Broker) listAccounts(ctx context.Context, offset int) ([]account, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	got, err := b.ctl.do(ctx, command{"command": "listClients", "verbose": true, "count": reconcilePage, "offset": offset})
	if err != nil {
		return nil, err
	}
	var data struct {
		Clients []account `json:"clients"`
	}
	err = json.Unmarshal(got[0].Data, &data)
	return data.Clients, err
}

// reconcileInBackground runs reconcile once and logs what it did.
func (b *Broker) reconcileInBackground(grace time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.stop
		cancel()
	}()
	go func() {
		deleted, enabled, err := b.reconcile(ctx, grace)
		switch {
		case err != nil && ctx.Err() == nil:
			b.log.Warn("could not check the broker's device accounts against the store", "err", err)
		case deleted+enabled > 0:
			b.log.Info("put the broker's device accounts right", "deletedAccountsOfMissingDevices", deleted, "enabledAccountsOfDevices", enabled)
		}
	}()
}

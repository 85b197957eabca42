package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/storage"
)

// StartFunc starts the delivery workflow of an event; starting one that exists already must succeed (the
// workflow ID derives from the event, so an event is delivered once however often it is started).
type StartFunc func(ctx context.Context, eventID, teamID string) error

// Dispatcher runs in every worker process: it starts the delivery workflow of each event not yet started,
// sends the summaries of throttle windows that ended (Summarise), watches for devices offline longer than a rule says, and drops old log entries. Several dispatchers may run
// against one store: a workflow is started once per event, and offline events are deduplicated by their key.
type Dispatcher struct {
	Store   *storage.Store
	Start   StartFunc
	Devices *devices.Service // the offline window; nil: devices.DefaultOfflineAfter
	Log     *slog.Logger
	// Every is how often the store is looked at for undelivered events (default 2 s; Emit wakes a dispatcher
	// in its own process at once), WatchEvery how often offline devices are looked for (default 30 s).
	Every, WatchEvery time.Duration
	// Retention is how long the delivery log keeps an event (default 30 days).
	Retention time.Duration
}

// Run works until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	every, watchEvery := or(d.Every, 2*time.Second), or(d.WatchEvery, 30*time.Second)
	tick, watch := time.NewTicker(every), time.NewTicker(watchEvery)
	defer tick.Stop()
	defer watch.Stop()
	lastPrune := time.Time{}
	for {
		d.logErr(ctx, "summarise throttled alerts", d.Summarise(ctx, time.Now()))
		d.logErr(ctx, "dispatch alert events", d.DispatchPending(ctx))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		case <-watch.C:
			d.logErr(ctx, "watch offline devices", d.WatchDevices(ctx, time.Now()))
			if time.Since(lastPrune) > time.Hour {
				_, err := d.Store.DeleteAlertEventsBefore(ctx, time.Now().Add(-or(d.Retention, 30*24*time.Hour)))
				d.logErr(ctx, "prune the alert log", err)
				lastPrune = time.Now()
			}
		}
	}
}

func (d *Dispatcher) logErr(ctx context.Context, what string, err error) {
	if err != nil && ctx.Err() == nil {
		d.Log.Warn(what, "error", err)
	}
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// DispatchPending starts the delivery workflow of every event not started yet.
func (d *Dispatcher) DispatchPending(ctx context.Context) error {
	for {
		events, err := d.Store.UndispatchedAlertEvents(ctx, 100)
		if err != nil || len(events) == 0 {
			return err
		}
		for _, ev := range events {
			if err := d.Start(ctx, ev.ID, ev.TeamID); err != nil {
				return fmt.Errorf("start delivery of event %s: %w", ev.ID, err)
			}
			if err := d.Store.MarkAlertEventDispatched(ctx, ev.ID); err != nil {
				return err
			}
		}
		if len(events) < 100 {
			return nil
		}
	}
}

// WatchDevices emits a device_offline event for each device offline longer than an enabled rule's minutes,
// once per rule and stretch of being offline.
func (d *Dispatcher) WatchDevices(ctx context.Context, now time.Time) error {
	rules, err := d.Store.ListEnabledAlertRules(ctx)
	if err != nil {
		return err
	}
	for i := range rules {
		r := &rules[i]
		if r.OfflineMinutes <= 0 || !slices.Contains(r.Kinds, KindDeviceOffline) {
			continue
		}
		if err := d.watchRule(ctx, r, now); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) watchRule(ctx context.Context, r *storage.AlertRule, now time.Time) error {
	limit := time.Duration(r.OfflineMinutes) * time.Minute
	candidates, err := d.Store.DevicesOfflineSince(ctx, r.TeamID, now.Add(-limit), 1000)
	if err != nil {
		return err
	}
	for i := range candidates {
		dev := &candidates[i]
		since, offline := d.offlineSince(dev, now)
		if !offline || now.Sub(since) < limit {
			continue
		}
		_, err := Emit(ctx, d.Store, Event{TeamID: r.TeamID, Kind: KindDeviceOffline, SubjectType: "device", SubjectID: dev.ID,
			SubjectName: dev.Name, RuleID: r.ID,
			Message:  fmt.Sprintf("Offline since %s (more than %d minutes).", since.UTC().Format(time.RFC3339), r.OfflineMinutes),
			DedupKey: "device_offline:" + r.ID + ":" + dev.ID + ":" + strconv.FormatInt(since.Unix(), 10)})
		if err != nil {
			return err
		}
	}
	return nil
}

// offlineSince is when a device went offline: its broker disconnection, or, for one that checks in over HTTP,
// the end of the offline window after its last check-in (devices.Service.Status's rule).
func (d *Dispatcher) offlineSince(dev *storage.Device, now time.Time) (time.Time, bool) {
	svc := d.Devices
	if svc == nil {
		svc = &devices.Service{}
	}
	if svc.Status(dev, now) != devices.StatusOffline {
		return time.Time{}, false
	}
	if dev.DisconnectedAt != nil && !dev.LastSeenAt.After(*dev.DisconnectedAt) {
		return *dev.DisconnectedAt, true
	}
	return dev.LastSeenAt.Add(svc.OfflineWindow()), true
}

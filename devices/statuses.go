package devices

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/flowyard/flowyard/storage"
)

// Status is a status message a device published on ff/v1/<team>/d/<device>/status (docs/device-protocol.md §4.3).
// Either broker lets only the device itself publish there.
type Status struct {
	TeamID, DeviceID string
	Payload          []byte
}

// StatusQueue holds, by device, the latest status message waiting on its lane to be recorded, for either broker:
// a device's newer status replaces its queued one, which it supersedes, so the lane records the device's latest
// state and decides its `update` on it, and a device repeating its status while the store is behind holds one
// place in the queue, not many. The zero value is ready.
type StatusQueue struct {
	mu      sync.Mutex
	pending map[string]*queuedStatus // by device ID
	queued  map[string]int           // by device ID: its items queued and not yet taken, sealed ones too
}

// queuedStatus is a device's place in its lane's queue, holding its latest status.
type queuedStatus struct{ st Status }

// Queue makes st its device's status waiting to be recorded. It returns the item to queue on the device's lane
// (lanes.Batch), or nil when a status of the device waits there already: st replaced it.
func (q *StatusQueue) Queue(st Status) any {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.pending[st.DeviceID]; p != nil {
		p.st = st
		return nil
	}
	return q.add(st)
}

// add makes st its device's pending status in a new item; q.mu is held.
func (q *StatusQueue) add(st Status) *queuedStatus {
	if q.pending == nil {
		q.pending, q.queued = map[string]*queuedStatus{}, map[string]int{}
	}
	p := &queuedStatus{st: st}
	q.pending[st.DeviceID] = p
	q.queued[st.DeviceID]++
	return p
}

// Seal keeps a device's queued status from taking newer ones: work queued on the lane after it (a connection
// opening or closing) stays after the statuses published before it.
func (q *StatusQueue) Seal(deviceID string) {
	q.mu.Lock()
	delete(q.pending, deviceID)
	q.mu.Unlock()
}

// Take returns the statuses of a lane's batch of Queue's items, each its device's latest, and seals them.
func (q *StatusQueue) Take(items []any) []Status {
	out := make([]Status, len(items))
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, item := range items {
		p := item.(*queuedStatus)
		if q.pending[p.st.DeviceID] == p {
			delete(q.pending, p.st.DeviceID)
		}
		if q.queued[p.st.DeviceID]--; q.queued[p.st.DeviceID] <= 0 {
			delete(q.queued, p.st.DeviceID)
		}
		out[i] = p.st
	}
	return out
}

// RequeueAfter is how long Requeue's statuses wait before they queue again: a store that fails at once (down)
// is not asked again in a tight loop.
const RequeueAfter = time.Second

// Requeue gives the statuses of a batch the store failed to record (Take's, RecordStatuses' failed) their
// places again: each device's status waits, taking the device's newer ones meanwhile as Queue does, and after
// RequeueAfter queue is called for it from another goroutine (the caller is its lane's, which a full lane would
// stall). A status is dropped only when a newer one of its device is queued already: that one supersedes it.
// A requeued status may be recorded after a connection change queued meanwhile.
func (q *StatusQueue) Requeue(sts []Status, queue func(deviceID string, item any)) {
	q.mu.Lock()
	items := make([]*queuedStatus, 0, len(sts))
	for _, st := range sts {
		if q.queued[st.DeviceID] > 0 {
			continue // a newer status waits on the lane
		}
		items = append(items, q.add(st))
	}
	q.mu.Unlock()
	if len(items) == 0 {
		return
	}
	go func() {
		time.Sleep(RequeueAfter)
		for _, p := range items {
			queue(p.st.DeviceID, p)
		}
	}()
}

// RecordStatuses consumes devices' status messages (a lane's batch, Take's): it records them in one statement
// (RecordAll) and returns the devices recorded with their reports, to answer each that does not run what it
// should with `update` (NeedsUpdate, docs/device-protocol.md §4.4). A malformed status and one from a device not
// of its topic's team are logged and dropped. A batch the store failed to record is logged and its statuses
// returned as failed (each device's latest), for the caller to Requeue: a lost status leaves a rollout waiting
// for the device's next heartbeat.
func (s *Service) RecordStatuses(ctx context.Context, log *slog.Logger, sts []Status, at time.Time) (ds []*storage.Device, rs []*Report, failed []Status) {
	teams := make(map[string]string, len(sts))
	reports := make(map[string]*Report, len(sts))
	latest := make(map[string]Status, len(sts))
	ids := make([]string, 0, len(sts))
	fail := func(err error) ([]*storage.Device, []*Report, []Status) {
		log.Error("record device statuses", "devices", len(ids), "err", err)
		failed := make([]Status, len(ids))
		for i, id := range ids {
			failed[i] = latest[id]
		}
		return nil, nil, failed
	}
	for _, st := range sts {
		r, err := ParseReport(st.Payload)
		if err != nil {
			log.Warn("refused a malformed status message", "device", st.DeviceID, "err", err)
			continue
		}
		if _, twice := reports[st.DeviceID]; !twice { // sealed in a race with its next status: the later one holds
			ids = append(ids, st.DeviceID)
		}
		teams[st.DeviceID], reports[st.DeviceID], latest[st.DeviceID] = st.TeamID, r, st
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	found, err := s.Store.GetDevices(ctx, ids)
	if err != nil {
		return fail(err)
	}
	byID := make(map[string]*storage.Device, len(found))
	for i := range found {
		byID[found[i].ID] = &found[i]
	}
	ds = make([]*storage.Device, 0, len(ids))
	rs = make([]*Report, 0, len(ids))
	for _, id := range ids {
		d := byID[id]
		if d == nil || d.TeamID != teams[id] {
			log.Warn("status from an unknown device", "device", id)
			continue
		}
		ds, rs = append(ds, d), append(rs, reports[id])
	}
	ds, rs, err = s.RecordAll(ctx, ds, rs, at)
	if err != nil {
		return fail(err)
	}
	return ds, rs, nil
}

package relay

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/storage"
)

// A device's live log and the actions on its Node-RED, wherever the device is connected (docs/ARCHITECTURE.md
// §6, "Delivery across processes").
//
// A process whose streams watch a device's log watches it through its own broker (a device connected here gets
// `startLog`) and announces it to the others with a lease (`watchlog`, renewed every LeaseEvery; `unwatchlog`
// when its last watcher leaves). Every process with a broker holds the leases it hears of as watchers of its
// own broker, so the one holding the device asks it for its log, and a device that reconnects elsewhere is asked
// again there; a lease not renewed within three LeaseEvery ends (the process that held it died), and with the
// last watcher anywhere gone the device is sent `stopLog`. Every LinesEvery the process holding the device sends
// the lines received since its last batch to each process holding a lease (`lines`, in notifications under
// Postgres's 8000-byte limit), which keeps them for its streams. Lines are not stored: a notification lost while
// a process listens again loses those lines of the live view, nothing else.
//
// An action goes like an upload request (upload.go): to the process holding the device, whose answer comes
// back through device_replies.

// Live is what a process's broker does for live logs and actions on the devices connected to it (broker.Broker).
type Live interface {
	// WatchLog asks the device for its log while someone watches: `startLog` for the first watcher (at once,
	// or when it connects), `stopLog` once the returned function has been called by the last.
	WatchLog(teamID, deviceID string) (stop func())
	// LogLines returns up to limit lines of a watched device's log received after since.
	LogLines(deviceID string, since time.Time, limit int) []devices.LogLine
	// DeviceAction asks a device connected here to run an action on its Node-RED and waits for its answer.
	DeviceAction(ctx context.Context, d *storage.Device, action string) error
}

// Defaults of the live log; a Relay's fields of the same names override them.
const (
	// DefaultLeaseEvery is how often a process renews its watches of devices' logs; a watch not renewed within
	// three times as long ends.
	DefaultLeaseEvery = 10 * time.Second
	// DefaultLinesEvery is how often the process holding a watched device sends the lines it received.
	DefaultLinesEvery = 250 * time.Millisecond
)

// relayedLinesKept is how many recent lines of a device watched here are kept from other processes (as many as
// a broker keeps of the devices connected to it).
const relayedLinesKept = 1000

// maxLinesPayload keeps a notification of lines under Postgres's 8000-byte limit.
const maxLinesPayload = 7000

// line is a log line in a notification.
type line struct {
	Received time.Time `json:"r"`
	Time     time.Time `json:"t"`
	Level    string    `json:"v,omitempty"`
	Msg      string    `json:"m"`
}

// logs is a process's side of the live log.
type logs struct {
	announce sync.Mutex // orders the announcements of watches, so a device's watch and unwatch arrive in order
	mu       sync.Mutex
	watched  map[string]*watch // devices whose log is watched here
	relayed  *devices.LogRing  // their lines, from the processes holding them
	leases   map[lease]*held   // the other processes' watches, held by this process's broker
}

type watch struct {
	watchers int
	stop     func() // the watch through this process's broker
}

// lease is a device watched by another process.
type lease struct{ device, process string }

type held struct {
	until time.Time
	stop  func()
	sent  time.Time // the last line sent
}

func newLogs() *logs {
	return &logs{watched: map[string]*watch{}, relayed: devices.NewLogRing(relayedLinesKept), leases: map[lease]*held{}}
}

// live is this process's broker for live logs and actions, if it has one that does them.
func (r *Relay) live() Live {
	l, _ := r.local().(Live)
	return l
}

// WatchLog watches a device's log for one watcher here, wherever the device is connected; the returned function
// ends the watch.
func (r *Relay) WatchLog(teamID, deviceID string) (stop func()) {
	r.logs.announce.Lock()
	r.logs.mu.Lock()
	w := r.logs.watched[deviceID]
	first := w == nil
	if first {
		w = &watch{stop: func() {}}
		if lv := r.live(); lv != nil {
			w.stop = lv.WatchLog(teamID, deviceID)
		}
		r.logs.watched[deviceID] = w
	}
	w.watchers++
	r.logs.mu.Unlock()
	if first {
		r.announceWatch(kindWatchLog, []string{deviceID})
	}
	r.logs.announce.Unlock()
	var once sync.Once
	return func() { once.Do(func() { r.unwatchLog(deviceID) }) }
}

func (r *Relay) unwatchLog(deviceID string) {
	r.logs.announce.Lock()
	defer r.logs.announce.Unlock()
	r.logs.mu.Lock()
	w := r.logs.watched[deviceID]
	w.watchers--
	last := w.watchers == 0
	if last {
		delete(r.logs.watched, deviceID)
		r.logs.relayed.Forget(deviceID)
	}
	r.logs.mu.Unlock()
	if last {
		w.stop()
		r.announceWatch(kindUnwatchLog, []string{deviceID})
	}
}

// announceWatch tells the other processes of watches starting, renewed or ending here.
func (r *Relay) announceWatch(kind string, ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.publishIDs(ctx, kind, ids); err != nil {
		r.log.Warn("could not tell the other processes of a watch of device logs", "kind", kind, "err", err)
	}
}

// LogLines returns up to limit lines of a device watched here received after since: from this process's
// broker and from the process holding the device.
func (r *Relay) LogLines(deviceID string, since time.Time, limit int) []devices.LogLine {
	lines := r.logs.relayed.Since(deviceID, since, limit)
	if lv := r.live(); lv != nil {
		if own := lv.LogLines(deviceID, since, limit); len(own) > 0 {
			lines = append(lines, own...)
			slices.SortStableFunc(lines, func(a, b devices.LogLine) int { return a.Received.Compare(b.Received) })
		}
	}
	if len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return lines
}

// relayed keeps lines another process sent for a device watched here.
func (r *Relay) relayed(deviceID string, in []line) {
	r.logs.mu.Lock()
	defer r.logs.mu.Unlock()
	if r.logs.watched[deviceID] == nil {
		return
	}
	lines := make([]devices.LogLine, 0, len(in))
	for _, l := range in {
		lines = append(lines, devices.LogLine{Received: l.Received, Time: l.Time, Level: l.Level, Msg: l.Msg})
	}
	r.logs.relayed.Append(deviceID, lines)
}

// leased takes another process's watches (or their end) into this process's broker.
func (r *Relay) leased(ctx context.Context, lv Live, m message) {
	until := time.Now().Add(3 * r.LeaseEvery)
	var fresh []string
	var ended []func()
	r.logs.mu.Lock()
	for _, id := range m.IDs {
		k := lease{device: id, process: m.From}
		h := r.logs.leases[k]
		switch {
		case m.Kind == kindUnwatchLog && h != nil:
			delete(r.logs.leases, k)
			ended = append(ended, h.stop)
		case m.Kind == kindWatchLog && h != nil:
			h.until = until
		case m.Kind == kindWatchLog:
			fresh = append(fresh, id)
		}
	}
	r.logs.mu.Unlock()
	for _, stop := range ended {
		stop()
	}
	if len(fresh) == 0 {
		return
	}
	list, err := r.store.GetDevices(ctx, fresh)
	if err != nil {
		r.log.Warn("read devices whose logs another process watches", "devices", len(fresh), "err", err)
		return
	}
	r.logs.mu.Lock()
	defer r.logs.mu.Unlock()
	for _, d := range list {
		k := lease{device: d.ID, process: m.From}
		if r.logs.leases[k] == nil {
			r.logs.leases[k] = &held{until: until, stop: lv.WatchLog(d.TeamID, d.ID)}
		}
	}
}

// runLive renews this process's watches, sends the lines of the devices others watch and ends the leases not
// renewed, until ctx ends.
func (r *Relay) runLive(ctx context.Context) {
	renew := time.NewTicker(r.LeaseEvery)
	defer renew.Stop()
	send := time.NewTicker(r.LinesEvery)
	defer send.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			r.renewWatches()
		case <-send.C:
			r.sendLines(ctx)
		}
	}
}

func (r *Relay) renewWatches() {
	r.logs.announce.Lock()
	defer r.logs.announce.Unlock()
	r.logs.mu.Lock()
	ids := make([]string, 0, len(r.logs.watched))
	for id := range r.logs.watched {
		ids = append(ids, id)
	}
	r.logs.mu.Unlock()
	r.announceWatch(kindWatchLog, ids)
}

// sendLines sends each process holding a lease the lines received since its last batch, and ends the expired
// leases.
func (r *Relay) sendLines(ctx context.Context) {
	lv := r.live()
	if lv == nil {
		return
	}
	now := time.Now()
	type batch struct {
		lease
		h *held
	}
	var open []batch
	var expired []func()
	r.logs.mu.Lock()
	for k, h := range r.logs.leases {
		if now.After(h.until) {
			delete(r.logs.leases, k)
			expired = append(expired, h.stop)
			continue
		}
		open = append(open, batch{k, h})
	}
	r.logs.mu.Unlock()
	for _, stop := range expired {
		stop()
	}
	for _, b := range open {
		r.logs.mu.Lock()
		since := b.h.sent
		r.logs.mu.Unlock()
		lines := lv.LogLines(b.device, since, relayedLinesKept)
		if len(lines) == 0 {
			continue
		}
		if err := r.publishLines(ctx, b.process, b.device, lines); err != nil {
			r.log.Warn("could not send a device's log lines to the process watching it", "device", b.device, "err", err)
			continue
		}
		r.logs.mu.Lock()
		b.h.sent = lines[len(lines)-1].Received
		r.logs.mu.Unlock()
	}
}

// publishLines sends lines in as many notifications as they need.
func (r *Relay) publishLines(ctx context.Context, to, deviceID string, lines []devices.LogLine) error {
	m := message{Kind: kindLines, To: to, IDs: []string{deviceID}}
	size := 0
	for _, l := range lines {
		w := line{Received: l.Received, Time: l.Time, Level: l.Level, Msg: l.Msg}
		b, _ := json.Marshal(w)
		for len(b) > maxLinesPayload-200 { // a line of escaped characters: cut it to fit
			w.Msg = w.Msg[:len(w.Msg)/2]
			b, _ = json.Marshal(w)
		}
		if size+len(b) > maxLinesPayload-200 && len(m.Lines) > 0 {
			if err := r.publish(ctx, m); err != nil {
				return err
			}
			m.Lines, size = nil, 0
		}
		m.Lines = append(m.Lines, w)
		size += len(b) + 1
	}
	return r.publish(ctx, m)
}

// DeviceAction asks a device to run an action on its Node-RED, wherever it is connected, and waits for its
// answer until ctx ends.
func (r *Relay) DeviceAction(ctx context.Context, d *storage.Device, action string) error {
	if _, err := devices.ActionCommand(action); err != nil {
		return err
	}
	if lv, c := r.live(), r.local(); lv != nil && c.Holds(d.ID) {
		return lv.DeviceAction(ctx, d, action)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	_, err := r.requestElsewhere(ctx, d, message{Kind: kindAction, Action: action}, "be asked")
	return err
}

// answerAction runs in the process holding the device: the action's outcome is the stored answer.
func (r *Relay) answerAction(lv Live, m message) {
	r.answer(m, func(ctx context.Context, d *storage.Device) (replyBody, error) {
		return replyBody{}, lv.DeviceAction(ctx, d, m.Action)
	})
}

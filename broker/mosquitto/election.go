package mosquitto

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowyard/flowyard/storage"
)

// Exactly one consuming process records the devices' status messages at a time, so that one device's messages
// are recorded in the order the broker received them: a shared subscription would hand consecutive messages of
// one device to different processes, which record them out of order. The one recording holds a Postgres session
// lock (storage.SessionLock) on a connection of its own; on SQLite there is one process, which always records.
//
// Every consuming process subscribes to every status message (a plain subscription). One that stands by keeps
// the last status of each device received in the last handoverWindow; when it takes the lock over (its holder
// died and its connection closed, or the holder lost that connection) it first records those, each device's in
// its lane before anything received after, so a status that arrived while nobody held the lock is not lost. A
// status the old holder recorded already is recorded once more, which changes nothing; one it had queued but not
// recorded when it lost the lock it drops (onStatus).
const (
	statusLock     = "flowyard-device-status-consumer"
	electInterval  = time.Second      // how often a holder checks its lock, and one standing by tries to take it
	handoverWindow = 30 * time.Second // what one standing by keeps: more than a hand-over takes (storage's idle timeout)
)

// election is this process's part in choosing the one that records status messages.
type election struct {
	mu      sync.Mutex // orders the statuses received against taking the lock over
	leading atomic.Bool
	held    map[string]heldStatus // device id → its last status received while standing by
	lock    *storage.SessionLock  // while leading; only the election's goroutine touches it
	done    chan struct{}         // closed when the election's goroutine has let the lock go
}

type heldStatus struct {
	teamID  string
	payload []byte
	at      time.Time
}

// receive hands a status to record when this process leads, and keeps it otherwise.
func (e *election) receive(teamID, deviceID string, payload []byte, record func(teamID, deviceID string, payload []byte)) {
	e.mu.Lock()
	if !e.leading.Load() {
		if e.held == nil {
			e.held = map[string]heldStatus{}
		}
		e.held[deviceID] = heldStatus{teamID: teamID, payload: payload, at: time.Now()}
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	record(teamID, deviceID, payload)
}

// leads reports whether this process records the status messages.
func (e *election) leads() bool { return e.leading.Load() }

// lead makes this process record the status messages, beginning with those kept since `since`; it returns how
// many.
func (e *election) lead(since time.Time, record func(teamID, deviceID string, payload []byte)) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leading.Store(true)
	n := 0
	for id, h := range e.held {
		if h.at.After(since) {
			record(h.teamID, id, h.payload)
			n++
		}
	}
	e.held = nil
	return n
}

// standBy stops recording; statuses are kept again from now on.
func (e *election) standBy() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leading.Store(false)
}

// forget drops the statuses kept from before `before`.
func (e *election) forget(before time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, h := range e.held {
		if h.at.Before(before) {
			delete(e.held, id)
		}
	}
}

// electInBackground tries to take the lock at once, then checks it (or tries again) every electInterval until
// Close.
func (b *Broker) electInBackground() {
	b.election.done = make(chan struct{})
	b.elect()
	go func() {
		defer close(b.election.done)
		t := time.NewTicker(electInterval)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				if b.election.lock != nil {
					b.election.standBy()
					b.election.lock.Release()
				}
				return
			case <-t.C:
				b.elect()
			}
		}
	}()
}

// elect checks the lock this process holds, or tries to take it.
func (b *Broker) elect() {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	e := &b.election
	if e.lock != nil {
		if err := e.lock.Check(ctx); err != nil {
			b.log.Warn("lost the database connection holding the lock of the status messages' consumer; another process takes over", "err", err)
			e.standBy()
			e.lock.Release()
			e.lock = nil
		}
		return
	}
	lock, err := b.store.TryLock(ctx, statusLock)
	switch {
	case err != nil:
		b.log.Warn("could not try the lock of the status messages' consumer", "err", err)
	case lock == nil:
		e.forget(time.Now().Add(-handoverWindow))
	default:
		e.lock = lock
		n := e.lead(time.Now().Add(-handoverWindow), b.record)
		b.log.Info("this process records the devices' status messages", "keptStatuses", n)
	}
}

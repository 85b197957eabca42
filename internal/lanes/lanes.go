// Package lanes runs work keyed by a device on a few goroutines, each key always on the same one: one device's
// work (its sign-in, its status messages, its connection's end) stays in order, different devices' runs side by
// side, and the store's deep stacks stay off the thousands of goroutines that read devices' connections.
package lanes

import "hash/fnv"

// Lanes are the goroutines and their queues. Stop ends them without running what is still queued.
type Lanes struct {
	queues []chan func()
	stop   chan struct{}
}

// New starts n lanes, each holding up to depth queued functions.
func New(n, depth int) *Lanes {
	l := &Lanes{queues: make([]chan func(), n), stop: make(chan struct{})}
	for i := range l.queues {
		l.queues[i] = make(chan func(), depth)
		go l.run(l.queues[i])
	}
	return l
}

func (l *Lanes) run(queue chan func()) {
	for {
		select {
		case <-l.stop:
			return
		case fn := <-queue:
			fn()
		}
	}
}

func (l *Lanes) lane(key string) chan func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return l.queues[h.Sum32()%uint32(len(l.queues))]
}

// Later runs fn on key's lane after what is queued before it. When the lane is full it waits, which slows only
// the caller; it returns without queueing once the lanes are stopped.
func (l *Lanes) Later(key string, fn func()) {
	select {
	case l.lane(key) <- fn:
	case <-l.stop:
	}
}

// Wait runs fn on key's lane and waits for it. It reports false, without waiting further, when the lanes stop
// first: they stop without running what is still queued, and a caller waiting for them forever would never end.
// fn may still be running then, so the caller reads nothing fn writes.
func (l *Lanes) Wait(key string, fn func()) bool {
	done := make(chan struct{})
	select {
	case l.lane(key) <- func() { defer close(done); fn() }:
	case <-l.stop:
		return false
	}
	select {
	case <-done:
		return true
	case <-l.stop:
		return false
	}
}

// Stop ends the lanes; what is queued is not run.
func (l *Lanes) Stop() { close(l.stop) }

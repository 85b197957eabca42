// Package lanes runs work keyed by a device on a few goroutines, each key always on the same one: one device's
// work (its sign-in, its status messages, its connection's end) stays in order, different devices' runs side by
// side, and the store's deep stacks stay off the thousands of goroutines that read devices' connections.
package lanes

import "hash/fnv"

// Lanes are the goroutines and their queues. Stop ends them without running what is still queued.
type Lanes struct {
	queues []chan job
	stop   chan struct{}
	batch  func(items []any) // runs items queued with Batch, many at once
	most   int               // the most items one batch holds
}

// job is a function, or an item for the batch function when fn is nil.
type job struct {
	fn   func()
	item any
}

// New starts n lanes, each holding up to depth queued functions.
func New(n, depth int) *Lanes { return NewBatching(n, depth, 1, nil) }

// NewBatching is New with a batch function: the items queued with Batch one after another on a lane (nothing
// else between them) are handed to batch together, up to most at once, in the order they were queued.
func NewBatching(n, depth, most int, batch func(items []any)) *Lanes {
	l := &Lanes{queues: make([]chan job, n), stop: make(chan struct{}), batch: batch, most: most}
	for i := range l.queues {
		l.queues[i] = make(chan job, depth)
		go l.run(l.queues[i])
	}
	return l
}

func (l *Lanes) run(queue chan job) {
	var items []any
	for {
		select {
		case <-l.stop:
			return
		case j := <-queue:
			if j.fn != nil {
				j.fn()
				continue
			}
			items = append(items[:0], j.item)
			next := l.gather(queue, &items)
			l.batch(items)
			clear(items) // let the items go
			if next != nil {
				next()
			}
		}
	}
}

// gather adds to items the batch items queued right behind the first, without waiting. It stops at a function
// (returned, to run after the batch), an empty queue or a full batch.
func (l *Lanes) gather(queue chan job, items *[]any) func() {
	for len(*items) < l.most {
		select {
		case j := <-queue:
			if j.fn != nil {
				return j.fn
			}
			*items = append(*items, j.item)
		default:
			return nil
		}
	}
	return nil
}

func (l *Lanes) lane(key string) chan job {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return l.queues[h.Sum32()%uint32(len(l.queues))]
}

// Later runs fn on key's lane after what is queued before it. When the lane is full it waits, which slows only
// the caller; it returns without queueing once the lanes are stopped.
func (l *Lanes) Later(key string, fn func()) {
	select {
	case l.lane(key) <- job{fn: fn}:
	case <-l.stop:
	}
}

// Batch queues item for the batch function on key's lane, after what is queued before it. Like Later, it
// waits while the lane is full and returns without queueing once the lanes are stopped.
func (l *Lanes) Batch(key string, item any) {
	select {
	case l.lane(key) <- job{item: item}:
	case <-l.stop:
	}
}

// Wait runs fn on key's lane and waits for it. It reports false, without waiting further, when the lanes stop
// first: they stop without running what is still queued, and a caller waiting for them forever would never end.
// fn may still be running then, so the caller reads nothing fn writes.
func (l *Lanes) Wait(key string, fn func()) bool {
	done := make(chan struct{})
	select {
	case l.lane(key) <- job{fn: func() { defer close(done); fn() }}:
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

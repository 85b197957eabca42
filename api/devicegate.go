package api

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// The device gate bounds the device protocol's requests (those carrying a device or provisioning token: check-ins,
// snapshot and settings downloads, provisioning, audit events) that the store serves at once. A fleet that
// provisions, or takes a rollout wave, all at once sends thousands of them within a second; served unbounded,
// each waited for one of the store's few connections holding its goroutine, its request and its buffers, and
// requests whose agents had given up (and retried) were still served: the platform held 24,000 goroutines and
// 1 GiB while 10,000 simulated devices provisioned. At the gate a request waits without touching the store; one
// that waits too long, or finds too many waiting, is answered 503 with Retry-After, which agents retry.
//
// A request past the gate runs on one of the gate's few workers, not on its connection's goroutine: the store's
// calls (SQLite's, compiled to Go, most of all) grow a goroutine's stack to tens of KiB, and a goroutine keeps its
// grown stack until the collector halves it, once a cycle. Served on the connections' goroutines, a rollout wave
// left thousands of them (and the idle workers of the HTTP server) with deep stacks, and the runtime, which sizes
// new goroutines' stacks by the average, started every MQTT connection's goroutines larger too.
const (
	deviceSlots      = 32               // device requests served at once: as many as the store's connections (SQLite)
	deviceMaxWaiting = 1024             // requests waiting for a slot (about 30 KiB each); more are refused at once
	deviceMaxWait    = 15 * time.Second // well under an agent's request timeout (FlowFuse's: 30 s or more)
	deviceWorkerIdle = 30 * time.Second // a worker with nothing to do for this long ends
)

// deviceGate is a semaphore with a bounded queue, and the workers that run the requests holding its slots.
type deviceGate struct {
	slots      chan struct{}
	waiting    atomic.Int64
	maxWaiting int64
	maxWait    time.Duration
	jobs       chan func() // to an idle worker
}

func newDeviceGate(slots, maxWaiting int, maxWait time.Duration) *deviceGate {
	return &deviceGate{slots: make(chan struct{}, slots), maxWaiting: int64(maxWaiting), maxWait: maxWait, jobs: make(chan func())}
}

// enter takes a slot, waiting up to maxWait behind at most maxWaiting others; false means none was free.
func (g *deviceGate) enter() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	if g.waiting.Add(1) > g.maxWaiting {
		g.waiting.Add(-1)
		return false
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.maxWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (g *deviceGate) leave() { <-g.slots }

// run runs fn on an idle worker, or on a new one when none is idle, and waits for it. Only a slot's holder calls
// it, so about as many workers run as there are slots (a worker just done may not be idle yet: a few more, which
// end once idle).
func (g *deviceGate) run(fn func()) {
	done := make(chan struct{})
	job := func() { defer close(done); fn() }
	select {
	case g.jobs <- job:
	default:
		go g.work(job)
	}
	<-done
}

func (g *deviceGate) work(job func()) {
	idle := time.NewTimer(deviceWorkerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(deviceWorkerIdle)
		select {
		case job = <-g.jobs:
		case <-idle.C:
			return
		}
	}
}

// gateDevices passes device protocol requests through the device gate and serves them on its workers; other
// requests go on, and so do websockets (a device's editor tunnel lives for hours and must not hold a slot).
func (s *Server) gateDevices(c *fiber.Ctx) error {
	if token, ok := bearerToken(c); !ok || !isDeviceCredential(token) || strings.EqualFold(c.Get(fiber.HeaderUpgrade), "websocket") {
		return c.Next()
	}
	if !s.deviceGate.enter() {
		// Answered here rather than through handleError: a busy platform must not also log every refusal.
		c.Set(fiber.HeaderRetryAfter, "5")
		return c.Status(fiber.StatusServiceUnavailable).JSON(envelope{Code: "platform_busy",
			Message: "The platform serves many devices at once; try again as Retry-After says."})
	}
	defer s.deviceGate.leave()
	var err error
	var panicked any
	s.deviceGate.run(func() {
		defer func() { panicked = recover() }()
		err = c.Next()
	})
	if panicked != nil {
		panic(panicked) // on the request's goroutine, where the recover middleware answers it
	}
	return err
}

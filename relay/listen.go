package relay

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// channel is the Postgres notification channel every process of a deployment shares.
const channel = "flowyard_devices"

// idsPerMessage keeps a notification of device ids (26 characters each, quoted, comma-separated) under
// Postgres's 8000-byte limit with room to spare.
const idsPerMessage = 200

// Kinds of message.
const (
	kindUpdate     = "update"     // IDs: tell them their target (from any process)
	kindDisconnect = "disconnect" // IDs: close their connections (deleted devices)
	kindUpload     = "upload"     // IDs[0]: ask it for its flows; Req, From, WaitMS
	kindAck        = "ack"        // To holds the device of request Req and asked it
	kindReply      = "reply"      // To: the answer to request Req is stored
	kindPing       = "ping"       // From tests its own listening connection
	kindAction     = "action"     // IDs[0]: run Action on its Node-RED; Req, From, WaitMS
	kindWatchLog   = "watchlog"   // From watches the logs of IDs (a lease, renewed every LeaseEvery)
	kindUnwatchLog = "unwatchlog" // From no longer watches the logs of IDs
	kindLines      = "lines"      // To: Lines of device IDs[0]'s log
	kindEditor     = "editor"     // IDs[0]: make its editor token and send it startEditor; Req, From, WaitMS
	kindStopEditor = "stopeditor" // IDs: send them stopEditor
)

// message is one notification.
type message struct {
	Kind   string   `json:"k"`
	From   string   `json:"f,omitempty"`
	To     string   `json:"t,omitempty"`
	IDs    []string `json:"ids,omitempty"`
	Req    string   `json:"r,omitempty"`
	WaitMS int64    `json:"w,omitempty"` // how long the device may take to answer, in ms (not a time: clocks differ)
	Action string   `json:"a,omitempty"`
	Lines  []line   `json:"l,omitempty"`
}

var errNotListening = errors.New("not listening for device notifications from the other processes; devices connected here learn of changes made elsewhere at their next heartbeat")

// retryEvery bounds the wait between two attempts to listen again.
const retryEvery = 5 * time.Second

// Listen receives the other processes' notifications until ctx ends, listening again whenever the connection
// is lost (Postgres restarted, the connection killed) and then re-sending `update` to the connected devices
// that may have missed one. It returns at once on SQLite, and otherwise once the work it queued has stopped.
func (r *Relay) Listen(ctx context.Context) {
	if !r.store.Notifies() {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.runWork(ctx) })
	wg.Go(func() { r.runLive(ctx) })
	defer wg.Wait()
	failures := 0 // in a row, without listening in between
	for again := false; ctx.Err() == nil; again = true {
		listened, err := r.session(ctx, again)
		if ctx.Err() != nil {
			return
		}
		if listened {
			failures = 0
		}
		r.log.Warn("lost the connection that listens for device notifications; listening again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(failures)*500*time.Millisecond, retryEvery)):
		}
		failures++
	}
}

// session listens on one connection until it is lost or ctx ends, and says whether it listened at all. Once it
// listens it makes up for what may have been missed while nothing listened.
func (r *Relay) session(ctx context.Context, again bool) (listened bool, err error) {
	ln, err := r.store.Listen(ctx, channel)
	if err != nil {
		return false, err
	}
	defer ln.Close()
	r.listening.Store(true)
	defer r.listening.Store(false)
	if again {
		r.log.Info("listening for device notifications again; re-sending update to connected devices that run something else than their target")
	}
	// Devices may have connected (and changes been notified) before this connection listened: at start too.
	r.later(ctx, func(ctx context.Context) {
		if c := r.local(); c != nil {
			c.PushMissed(ctx)
		}
	})
	got := make(chan string)
	lost := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			payload, err := ln.Receive(ctx)
			if err != nil {
				lost <- err
				return
			}
			select {
			case got <- payload:
			case <-stop:
				return
			}
		}
	}()
	return true, r.receive(ctx, got, lost)
}

// receive handles notifications as they come. A connection quiet for PingEvery is tested with a notification
// to itself; when that does not come back within PingEvery, the connection counts as lost.
func (r *Relay) receive(ctx context.Context, got <-chan string, lost <-chan error) error {
	quiet := time.NewTimer(r.PingEvery)
	defer quiet.Stop()
	pinged := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return err
		case payload := <-got:
			pinged = false
			r.handle(ctx, payload)
		case <-quiet.C:
			if pinged {
				return errors.New("the listening connection stopped answering")
			}
			pinged = true
			pctx, cancel := context.WithTimeout(ctx, r.PingEvery)
			if err := r.publish(pctx, message{Kind: kindPing, From: r.id}); err != nil {
				r.log.Warn("could not test the listening connection", "err", err)
			}
			cancel()
		}
		if !quiet.Stop() {
			select {
			case <-quiet.C:
			default:
			}
		}
		quiet.Reset(r.PingEvery)
	}
}

// handle acts on one notification. Answers to this process's requests are handed over at once; work on devices
// goes to the work queue, in order, so a burst of updates does not hold up receiving.
func (r *Relay) handle(ctx context.Context, payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		r.log.Warn("ignored a malformed device notification", "err", err)
		return
	}
	if m.To != "" && m.To != r.id {
		return
	}
	c := r.local()
	switch m.Kind {
	case kindAck, kindReply:
		r.answered(m)
	case kindUpdate:
		if c != nil && m.From != r.id {
			r.later(ctx, func(ctx context.Context) {
				if err := c.NotifyDevices(ctx, m.IDs); err != nil {
					r.log.Warn("notify devices", "devices", len(m.IDs), "err", err)
				}
			})
		}
	case kindDisconnect:
		if c != nil && m.From != r.id {
			for _, id := range m.IDs {
				c.DisconnectDevice(id)
			}
		}
	case kindUpload:
		if c != nil && len(m.IDs) == 1 && m.Req != "" && c.Holds(m.IDs[0]) {
			go r.answerUpload(c, m)
		}
	case kindAction:
		if lv := r.live(); lv != nil && len(m.IDs) == 1 && m.Req != "" && c.Holds(m.IDs[0]) {
			go r.answerAction(lv, m)
		}
	case kindEditor:
		if e := r.editor(); e != nil && len(m.IDs) == 1 && m.Req != "" && c.Holds(m.IDs[0]) {
			go r.answerEditor(e, m)
		}
	case kindStopEditor:
		if e := r.editor(); e != nil && m.From != r.id {
			r.later(ctx, func(ctx context.Context) { r.stopEditors(ctx, e, m.IDs) })
		}
	case kindWatchLog, kindUnwatchLog:
		if lv := r.live(); lv != nil && m.From != r.id {
			r.later(ctx, func(ctx context.Context) { r.leased(ctx, lv, m) })
		}
	case kindLines:
		if len(m.IDs) == 1 {
			r.relayed(m.IDs[0], m.Lines)
		}
	}
}

// workTimeout bounds one piece of queued work.
const workTimeout = time.Minute

// later queues work on devices; it waits while the queue is full (the notifications wait in Postgres
// meanwhile), or until ctx ends.
func (r *Relay) later(ctx context.Context, fn func(ctx context.Context)) {
	select {
	case r.work <- func() {
		ctx, cancel := context.WithTimeout(context.Background(), workTimeout)
		defer cancel()
		fn(ctx)
	}:
	case <-ctx.Done():
	}
}

func (r *Relay) runWork(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case fn := <-r.work:
			fn()
		}
	}
}

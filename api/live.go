package api

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Live updates are Server-Sent Events. Each stream subscribes to a topic (a team's changes, an instance's log);
// one poller per topic, shared by every connection of this replica, reads the source about once a second while
// the topic has subscribers and fans the events out. Every subscriber has a bounded buffer: a client that
// cannot keep up is dropped (its stream ends, and EventSource reconnects with Last-Event-ID) instead of
// growing memory. The last subscriber to leave stops the poller.

// LiveConfig tunes the live streams; zero values take the defaults.
type LiveConfig struct {
	PollInterval time.Duration // how often a topic's poller reads its source (1 s)
	KeepAlive    time.Duration // how often an idle stream sends a comment, which also finds gone clients (15 s)
	Buffer       int           // events a subscriber may have waiting before it is dropped (1024)
	Recheck      time.Duration // how often a stream checks that its caller may still see it (60 s)
}

func (c LiveConfig) withDefaults() LiveConfig {
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.Buffer <= 0 {
		c.Buffer = 1024
	}
	if c.Recheck <= 0 {
		c.Recheck = time.Minute
	}
	return c
}

// liveEvent is one event, rendered once and shared by every subscriber of its topic.
type liveEvent struct {
	id     string // "" sends no id: line
	name   string
	at     time.Time // when what it tells happened
	data   []byte
	action domain.Action // what a subscriber must be allowed to see it; "" = every subscriber
}

// pollFunc reads a topic's source once and returns the new events and the topic's resume point (the id a
// stream that has seen everything so far would resume from).
type pollFunc func(ctx context.Context) (events []liveEvent, cursor string)

type subscriber struct {
	ch         chan liveEvent // closed by the hub when the subscriber is dropped
	allowed    func(domain.Action) bool
	credential string // what the stream's caller signed in with (streamCredential); "" is never checked
}

type topic struct {
	key    string
	subs   map[*subscriber]bool
	cursor string
	stop   context.CancelFunc
}

// liveHub keeps the topics that have subscribers, each with its poller.
type liveHub struct {
	cfg     LiveConfig
	mu      sync.Mutex
	topics  map[string]*topic
	closing chan struct{} // closed by Shutdown: every stream ends
	closed  sync.Once

	// revoked, when set, is asked about the streams' credentials (livecredentials.go); sweeping tells whether its
	// loop runs, and wake asks it to run now.
	revoked  credentialCheck
	sweeping bool
	wake     chan struct{}
	held     map[*heldConnection]bool
}

func newLiveHub(cfg LiveConfig) *liveHub {
	return &liveHub{cfg: cfg.withDefaults(), topics: map[string]*topic{}, closing: make(chan struct{}), wake: make(chan struct{}, 1),
		held: map[*heldConnection]bool{}}
}

// subscribe joins the topic, starting its poller (built by start, with the topic's first cursor) when it is
// the first subscriber. It returns the subscriber and the topic's current cursor.
func (h *liveHub) subscribe(key, credential string, allowed func(domain.Action) bool, start func() (pollFunc, string)) (*subscriber, string) {
	sub := &subscriber{ch: make(chan liveEvent, h.cfg.Buffer), allowed: allowed, credential: credential}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.startSweeping()
	t := h.topics[key]
	if t == nil {
		poll, cursor := start()
		ctx, cancel := context.WithCancel(context.Background())
		t = &topic{key: key, subs: map[*subscriber]bool{}, cursor: cursor, stop: cancel}
		h.topics[key] = t
		go h.run(ctx, t, poll)
	}
	t.subs[sub] = true
	return sub, t.cursor
}

// unsubscribe leaves the topic; the last one out stops its poller.
func (h *liveHub) unsubscribe(key string, sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[key]; t != nil && t.subs[sub] {
		h.leave(t, sub)
	}
}

// leave removes a subscriber (the hub's lock held); the last one out stops the poller.
func (h *liveHub) leave(t *topic, sub *subscriber) {
	delete(t.subs, sub)
	if len(t.subs) == 0 {
		t.stop()
		if h.topics[t.key] == t {
			delete(h.topics, t.key)
		}
	}
}

// LivePollers counts the live topics (teams' events, instances' logs) this replica polls now.
func (s *Server) LivePollers() int { return s.live.pollers() }

// pollers counts the topics being polled now.
func (h *liveHub) pollers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.topics)
}

func (h *liveHub) run(ctx context.Context, t *topic, poll pollFunc) {
	tick := time.NewTicker(h.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.closing:
			return
		case <-tick.C:
		}
		events, cursor := poll(ctx)
		h.publish(t, events, cursor)
	}
}

// publish hands the events to every subscriber allowed to see them; a subscriber whose buffer is full is
// dropped and its channel closed, which ends its stream.
func (h *liveHub) publish(t *topic, events []liveEvent, cursor string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t.cursor = cursor
	for sub := range t.subs {
		for _, ev := range events {
			if !sub.allowed(ev.action) {
				continue
			}
			select {
			case sub.ch <- ev:
				continue
			default:
			}
			h.leave(t, sub)
			close(sub.ch)
			break
		}
	}
}

// shutdown ends every stream; the pollers stop as their subscribers leave.
func (h *liveHub) shutdown() { h.closed.Do(func() { close(h.closing) }) }

// sseWriter writes events to one stream. Before each flush it moves the connection's write deadline, so the
// server's WriteTimeout bounds each write (a stuck client is still cut) but not the stream's whole life.
type sseWriter struct {
	w            *bufio.Writer
	conn         net.Conn
	writeTimeout time.Duration
	allowed      func(domain.Action) bool
}

func (s *sseWriter) event(ev liveEvent) {
	if !s.allowed(ev.action) {
		return
	}
	if ev.id != "" {
		s.w.WriteString("id: " + ev.id + "\n")
	}
	s.w.WriteString("event: " + ev.name + "\ndata: ")
	s.w.Write(ev.data)
	s.w.WriteString("\n\n")
}

// resumeAt sets the client's Last-Event-ID without dispatching an event (an id: line with no data).
func (s *sseWriter) resumeAt(id string) {
	if id != "" {
		s.w.WriteString("id: " + id + "\n\n")
	}
}

func (s *sseWriter) flush() error {
	if s.writeTimeout > 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	return s.w.Flush()
}

// liveStream is what a streaming route asks for: the topic to follow, who may see which events, and what
// to send first (a replay since Last-Event-ID, recent log lines).
type liveStream struct {
	topic   string
	allowed func(domain.Action) bool
	start   func() (pollFunc, string)
	// begin writes the first events after the stream has subscribed (so nothing falls between the two), and
	// may return a filter for the events the poller sends next (to skip what begin already sent).
	begin func(ctx context.Context, w *sseWriter, cursor string) func(liveEvent) bool
	// stillAllowed is asked every Recheck: false ends the stream (role changed or gone), and the client's
	// reconnect meets the usual checks. A credential that stops letting its holder in (signed out, token revoked,
	// account suspended or deleted) ends the stream sooner, within a poll interval (livecredentials.go).
	stillAllowed func(ctx context.Context) bool
}

// serveStream answers with an event stream that runs until the client leaves, it is dropped for being slow,
// or the server shuts down. Everything it holds is released when it ends.
func (s *Server) serveStream(c *fiber.Ctx, ls liveStream) error {
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no") // proxies must pass events on as they come
	conn := c.Context().Conn()
	writeTimeout := s.app.Config().WriteTimeout
	credential := streamCredential(c)
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		w := &sseWriter{w: bw, conn: conn, writeTimeout: writeTimeout, allowed: ls.allowed}
		sub, cursor := s.live.subscribe(ls.topic, credential, ls.allowed, ls.start)
		defer s.live.unsubscribe(ls.topic, sub)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.live.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		w.w.WriteString("retry: 3000\n\n")
		keep := func(liveEvent) bool { return true }
		if ls.begin != nil {
			if f := ls.begin(ctx, w, cursor); f != nil {
				keep = f
			}
		}
		if w.flush() != nil {
			return
		}
		s.pump(ctx, w, sub, keep, ls.stillAllowed)
	})
	return nil
}

// pump writes the subscriber's events and keep-alives until the stream ends.
func (s *Server) pump(ctx context.Context, w *sseWriter, sub *subscriber, keep func(liveEvent) bool, stillAllowed func(context.Context) bool) {
	tick := time.NewTicker(s.live.cfg.KeepAlive)
	defer tick.Stop()
	recheck := time.NewTicker(s.live.cfg.Recheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-recheck.C:
			if stillAllowed != nil && !stillAllowed(ctx) {
				return
			}
			continue
		case ev, ok := <-sub.ch:
			if !ok {
				return // dropped: too slow
			}
			if keep(ev) {
				w.event(ev)
			}
		case <-tick.C:
			w.w.WriteString(": keep-alive\n\n")
		}
		if w.flush() != nil {
			return // the client has gone
		}
	}
}

// sameAccess returns a check that the request's credentials still hold and give the same role in the team
// (or platform admin rights) as when the stream opened. A store that cannot answer keeps the stream: the
// check is about revocation, and EventSource would not reconnect after a 5xx.
func (s *Server) sameAccess(c *fiber.Ctx, teamID string, role domain.Role) func(ctx context.Context) bool {
	cookie := c.Cookies(s.cookieName(sessionCookie))
	bearer, hasBearer := bearerToken(c)
	opened, _ := c.Locals("caller").(*caller)
	wasAdmin := opened != nil && opened.user != nil && opened.user.Admin
	return func(ctx context.Context) bool {
		var who *caller
		var err error
		if hasBearer {
			who, err = s.callerFromToken(ctx, bearer)
		} else {
			var u *storage.User
			u, err = s.store.GetSessionUser(ctx, domain.HashToken(cookie), time.Now())
			who = &caller{user: u}
		}
		if err == nil && who.user != nil {
			err = signInRefusal(who.user)
		}
		if err != nil {
			return !domain.IsClientError(err)
		}
		m, err := s.store.GetMembership(ctx, teamID, who.user.ID)
		switch {
		case err == nil:
			return m.Role == role && who.user.Admin == wasAdmin
		case domain.IsKind(err, domain.KindNotFound):
			return wasAdmin && who.user.Admin && role == domain.RoleNone
		}
		return true
	}
}

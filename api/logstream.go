package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
)

// An instance's log as Server-Sent Events: recent lines first, then new ones as the runtime writes them. One
// poller per instance and replica reads the driver through the LogReader, whatever number of people watch.

// logPollLimit bounds the lines one poll reads; a runtime that logs more between two polls loses the oldest.
const logPollLimit = 1000

// logStartOverlap is how far back a new log poller starts reading, so lines written while the first stream
// subscribes are not lost (the stream skips the ones it already sent).
const logStartOverlap = 2 * time.Second

type logEventJSON struct {
	TS    time.Time `json:"ts"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
}

func logEvent(l LogLineJSON) liveEvent {
	data, _ := json.Marshal(logEventJSON{TS: l.Time, Level: l.Level, Msg: l.Msg})
	return liveEvent{id: l.Time.UTC().Format(time.RFC3339Nano), name: "log", at: l.Time, data: data}
}

// logWindow reads the ?since= and ?limit= of the log routes.
func logWindow(c *fiber.Ctx) (since time.Time, limit int, err error) {
	if v := c.Query("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return since, 0, domain.InvalidField("since", "must be an RFC 3339 time")
		}
	}
	limit = c.QueryInt("limit", 200)
	if limit < 1 || limit > 1000 {
		return since, 0, domain.InvalidField("limit", "must be from 1 to 1000")
	}
	return since, limit, nil
}

func (s *Server) instanceLogStream(c *fiber.Ctx) error {
	in, err := s.store.GetInstance(c.UserContext(), c.Params("instanceId"))
	if err != nil {
		return err
	}
	_, role, err := s.teamAccess(c, in.TeamID, domain.ActionInstanceLog, "instance")
	if err != nil {
		return err
	}
	id := in.ID
	read := func(ctx context.Context, since time.Time, limit int) ([]liveEvent, error) {
		if s.logs == nil {
			return nil, nil
		}
		lines, err := s.logs(ctx, id, since, limit)
		events := make([]liveEvent, 0, len(lines))
		for _, l := range lines {
			events = append(events, logEvent(l))
		}
		return events, err
	}
	return s.serveLogStream(c, "logs:"+id, s.sameAccess(c, in.TeamID, role), read, nil)
}

// logRead reads the lines of one log from since (inclusive), up to limit, as events ordered by their at.
type logRead func(ctx context.Context, since time.Time, limit int) ([]liveEvent, error)

// serveLogStream streams a log: the recent lines (?since=, ?limit=, or after the Last-Event-ID of a reconnect),
// then new ones, one poller per log and replica. watch, if set, runs while the poller does (someone watches).
func (s *Server) serveLogStream(c *fiber.Ctx, topic string, stillAllowed func(context.Context) bool, read logRead, watch func() (stop func())) error {
	since, limit, err := logWindow(c)
	if err != nil {
		return err
	}
	if last, err := time.Parse(time.RFC3339Nano, c.Get("Last-Event-ID")); err == nil {
		since, limit = last.Add(time.Nanosecond), logPollLimit // a reconnect: everything after the last line seen
	}
	return s.serveStream(c, liveStream{
		topic:        topic,
		stillAllowed: stillAllowed,
		allowed:      func(domain.Action) bool { return true },
		start:        func() (pollFunc, string) { return newLogPoller(read, watch), "" },
		begin: func(ctx context.Context, w *sseWriter, _ string) func(liveEvent) bool {
			last := s.sendRecentLogs(ctx, w, topic, read, since, limit)
			return func(ev liveEvent) bool { return ev.at.After(last) }
		},
	})
}

// sendRecentLogs writes the lines the stream starts with and returns the time of the last one.
func (s *Server) sendRecentLogs(ctx context.Context, w *sseWriter, topic string, read logRead, since time.Time, limit int) time.Time {
	events, err := read(ctx, since, limit)
	if err != nil {
		s.log.Debug("read recent log lines", "log", topic, "err", err) // not running yet: new lines follow
	}
	last := since
	for _, ev := range events {
		w.event(ev)
		last = ev.at
	}
	return last
}

// logPoller follows one log. A read's since is inclusive, so it counts the lines already sent that carry
// exactly the latest time, and skips them on the next read.
type logPoller struct {
	read        logRead
	watch       func() (stop func())
	stopWatch   func()
	since       time.Time
	sentAtSince int
}

func newLogPoller(read logRead, watch func() (stop func())) pollFunc {
	p := &logPoller{read: read, watch: watch, since: time.Now().Add(-logStartOverlap)}
	return p.poll
}

func (p *logPoller) poll(ctx context.Context) ([]liveEvent, string) {
	if p.watch != nil && p.stopWatch == nil {
		p.stopWatch = p.watch()
		context.AfterFunc(ctx, p.stopWatch) // the poller's context ends when the last watcher leaves
	}
	events, err := p.read(ctx, p.since, logPollLimit)
	if err != nil {
		return nil, "" // stopped or not started: keep trying while someone watches
	}
	var out []liveEvent
	skip := p.sentAtSince
	for _, ev := range events {
		switch {
		case ev.at.Before(p.since):
			continue
		case ev.at.Equal(p.since) && skip > 0:
			skip--
			continue
		case ev.at.Equal(p.since):
			p.sentAtSince++
		default:
			p.since, p.sentAtSince = ev.at, 1
		}
		out = append(out, ev)
	}
	return out, ""
}

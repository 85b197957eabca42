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
	since, limit, err := logWindow(c)
	if err != nil {
		return err
	}
	if last, err := time.Parse(time.RFC3339Nano, c.Get("Last-Event-ID")); err == nil {
		since, limit = last.Add(time.Nanosecond), logPollLimit // a reconnect: everything after the last line seen
	}
	id := in.ID
	return s.serveStream(c, liveStream{
		topic:        "logs:" + id,
		stillAllowed: s.sameAccess(c, in.TeamID, role),
		allowed:      func(domain.Action) bool { return true },
		start:        func() (pollFunc, string) { return s.newLogPoller(id) },
		begin: func(ctx context.Context, w *sseWriter, _ string) func(liveEvent) bool {
			last := s.sendRecentLogs(ctx, w, id, since, limit)
			return func(ev liveEvent) bool { return ev.at.After(last) }
		},
	})
}

// sendRecentLogs writes the lines the stream starts with and returns the time of the last one.
func (s *Server) sendRecentLogs(ctx context.Context, w *sseWriter, id string, since time.Time, limit int) time.Time {
	if s.logs == nil {
		return since
	}
	lines, err := s.logs(ctx, id, since, limit)
	if err != nil {
		s.log.Debug("read recent log lines", "instance", id, "err", err) // not running yet: new lines follow
	}
	last := since
	for _, l := range lines {
		w.event(logEvent(l))
		last = l.Time
	}
	return last
}

// logPoller follows one instance's log. LogReader's since is inclusive, so it counts the lines already sent
// that carry exactly the latest time, and skips them on the next read.
type logPoller struct {
	s           *Server
	id          string
	since       time.Time
	sentAtSince int
}

func (s *Server) newLogPoller(id string) (pollFunc, string) {
	p := &logPoller{s: s, id: id, since: time.Now().Add(-logStartOverlap)}
	return p.poll, ""
}

func (p *logPoller) poll(ctx context.Context) ([]liveEvent, string) {
	if p.s.logs == nil {
		return nil, ""
	}
	lines, err := p.s.logs(ctx, p.id, p.since, logPollLimit)
	if err != nil {
		return nil, "" // stopped or not started: keep trying while someone watches
	}
	var out []liveEvent
	skip := p.sentAtSince
	for _, l := range lines {
		switch {
		case l.Time.Before(p.since):
			continue
		case l.Time.Equal(p.since) && skip > 0:
			skip--
			continue
		case l.Time.Equal(p.since):
			p.sentAtSince++
		default:
			p.since, p.sentAtSince = l.Time, 1
		}
		out = append(out, logEvent(l))
	}
	return out, ""
}

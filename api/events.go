package api

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// A team's live events: its instances, operations, devices and rollouts as they change, each event's data the
// same JSON as the object's GET route. The change source is the database (workers on any host write these
// rows), read by one poller per team and replica. An event's id is the change cursor (microseconds since the
// epoch): a client that reconnects with Last-Event-ID gets what changed since, or a resync event telling it to
// reload when that is too far back. Events are whole objects, so getting one twice is harmless.

const (
	// changeOverlap is how far behind its cursor a poll reads again: a row committed late, or stamped by a
	// writer whose clock is a little behind, still shows up; rows already sent are skipped.
	changeOverlap = 5 * time.Second
	// changeLimit bounds the rows of one kind a read takes; a bigger burst is answered with resync.
	changeLimit = 2000
	// maxResumeAge is the oldest Last-Event-ID that is replayed; older ones get resync (deletions are not
	// replayed, and a long absence is cheaper to reload).
	maxResumeAge = 15 * time.Minute
)

func (s *Server) registerEvents() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/events", Tag: "events", Stream: true,
		Summary: "Server-Sent Events of the team: instance, operation, device and rollout (data as their GET routes), resync; resumes from Last-Event-ID; a keep-alive comment every 15 s."}, s.teamEvents)
	s.route(routeDoc{Method: "GET", Path: "/api/v1/instances/:instanceId/logs/stream", Tag: "instances", Stream: true,
		Summary: "Server-Sent Events of the instance's runtime log: event log, data {ts, level, msg}; recent lines (?limit=, ?since=) first, then new ones."}, s.instanceLogStream)
}

func (s *Server) teamEvents(c *fiber.Ctx) error {
	// Subscribing needs what reading the team needs (any role); each event then needs its own read action.
	who, team, role, err := s.teamFor(c, domain.ActionTeamRead)
	if err != nil {
		return err
	}
	caller, teamID, lastID := who.domainCaller(), team.ID, c.Get("Last-Event-ID")
	return s.serveStream(c, liveStream{
		topic:        "team:" + teamID,
		stillAllowed: s.sameAccess(c, teamID, role),
		// Each event needs the action its GET route needs: a viewer sees no rollouts, a dashboard user only
		// keep-alives and resyncs.
		allowed: func(a domain.Action) bool { return a == "" || domain.Allowed(caller, role, a) },
		start:   func() (pollFunc, string) { return s.newTeamPoller(teamID) },
		begin: func(ctx context.Context, w *sseWriter, cursor string) func(liveEvent) bool {
			if lastID == "" {
				w.resumeAt(cursor)
			} else {
				s.replayTeam(ctx, w, teamID, lastID, cursor)
			}
			return nil
		},
	})
}

func cursorID(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func parseCursor(id string) (time.Time, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	return time.UnixMicro(n).UTC(), err == nil && n > 0
}

func resyncEvent(cursor, reason string) liveEvent {
	data, _ := json.Marshal(map[string]string{"reason": reason})
	return liveEvent{id: cursor, name: "resync", data: data}
}

// change is one changed row rendered as its event, with the key that identifies the object.
type change struct {
	key string
	ev  liveEvent
}

// teamChangeEvents renders changed rows with the views of their GET routes, oldest change first; only the
// ones fresh says are new (nil: all).
func (s *Server) teamChangeEvents(ctx context.Context, rows *storage.TeamChanges, fresh func(key string, at time.Time) bool) []change {
	var out []change
	add := func(kind, id string, at time.Time, action domain.Action, view func() (any, error)) {
		key := kind + ":" + id
		if fresh != nil && !fresh(key, at) {
			return
		}
		v, err := view()
		var data []byte
		if err == nil {
			data, err = json.Marshal(v)
		}
		if err != nil {
			s.log.Warn("render live event", "kind", kind, "id", id, "err", err)
			return
		}
		out = append(out, change{key: key, ev: liveEvent{name: kind, at: at, action: action, data: data}})
	}
	for i := range rows.Instances {
		in := &rows.Instances[i]
		add("instance", in.ID, in.UpdatedAt, domain.ActionInstanceRead, func() (any, error) { return s.instanceView(in), nil })
	}
	for i := range rows.Operations {
		op := &rows.Operations[i]
		add("operation", op.ID, op.UpdatedAt, domain.ActionOperationRead, func() (any, error) { return s.operationView(op), nil })
	}
	for i := range rows.Devices {
		d := &rows.Devices[i]
		add("device", d.ID, d.ChangedAt, domain.ActionDeviceRead, func() (any, error) { return s.deviceView(d), nil })
	}
	for i := range rows.Rollouts {
		r := &rows.Rollouts[i]
		add("rollout", r.ID, r.UpdatedAt, domain.ActionRolloutRead, func() (any, error) { return s.rolloutView(ctx, r) })
	}
	slices.SortStableFunc(out, func(a, b change) int { return a.ev.at.Compare(b.ev.at) })
	return out
}

// teamPoller follows one team's changes for every stream of this replica.
type teamPoller struct {
	s         *Server
	teamID    string
	cursor    time.Time            // the latest change sent
	seen      map[string]time.Time // objects sent within changeOverlap of the cursor, and the change sent
	quietUpTo time.Time            // devices last seen up to this time have been told offline
}

func (s *Server) newTeamPoller(teamID string) (pollFunc, string) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &teamPoller{s: s, teamID: teamID, cursor: now, seen: map[string]time.Time{}, quietUpTo: now.Add(-s.devices.OfflineWindow())}
	return p.poll, cursorID(p.cursor)
}

// fresh reports whether a row's change has not been sent yet.
func (p *teamPoller) fresh(key string, at time.Time) bool {
	prev, ok := p.seen[key]
	return !ok || at.After(prev)
}

func (p *teamPoller) poll(ctx context.Context) ([]liveEvent, string) {
	rows, err := p.s.store.TeamChangesSince(ctx, p.teamID, p.cursor.Add(-changeOverlap), changeLimit)
	if err != nil {
		if ctx.Err() == nil {
			p.s.log.Warn("poll team changes", "team", p.teamID, "err", err)
		}
		return nil, cursorID(p.cursor)
	}
	var out []liveEvent
	for _, ch := range p.s.teamChangeEvents(ctx, rows, p.fresh) {
		p.seen[ch.key] = ch.ev.at
		if ch.ev.at.After(p.cursor) {
			p.cursor = ch.ev.at
		}
		ch.ev.id = cursorID(p.cursor)
		out = append(out, ch.ev)
	}
	for key, at := range p.seen {
		if at.Before(p.cursor.Add(-changeOverlap)) {
			delete(p.seen, key)
		}
	}
	if rows.Truncated(changeLimit) {
		// More changed than one read holds: the cursor has skipped some. Clients reload instead.
		return []liveEvent{resyncEvent(cursorID(p.cursor), "burst")}, cursorID(p.cursor)
	}
	upTo := time.Now().Add(-p.s.devices.OfflineWindow())
	out = append(out, p.s.quietDeviceEvents(ctx, p.teamID, p.quietUpTo, upTo, cursorID(p.cursor))...)
	p.quietUpTo = upTo
	return out, cursorID(p.cursor)
}

// quietDeviceEvents tells of the devices that turned offline by time: last seen in (after, upTo], upTo being
// now minus the offline window. No row changes when that happens, so the change cursor cannot see it.
func (s *Server) quietDeviceEvents(ctx context.Context, teamID string, after, upTo time.Time, id string) []liveEvent {
	quiet, err := s.store.TeamDevicesGoneQuiet(ctx, teamID, after, upTo, changeLimit)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("poll devices gone quiet", "team", teamID, "err", err)
		}
		return nil
	}
	var out []liveEvent
	for i := range quiet {
		d := &quiet[i]
		if data, err := json.Marshal(s.deviceView(d)); err == nil {
			out = append(out, liveEvent{id: id, name: "device", at: *d.LastSeenAt, action: domain.ActionDeviceRead, data: data})
		}
	}
	return out
}

// replayTeam sends what changed since a reconnecting client's Last-Event-ID, or resync when that cannot be
// told: an id that is not ours, too old, or more changes than one read holds.
func (s *Server) replayTeam(ctx context.Context, w *sseWriter, teamID, lastID, cursor string) {
	since, ok := parseCursor(lastID)
	if !ok || time.Since(since) > maxResumeAge {
		w.event(resyncEvent(cursor, "too_old"))
		return
	}
	rows, err := s.store.TeamChangesSince(ctx, teamID, since.Add(-changeOverlap), changeLimit)
	if err != nil || rows.Truncated(changeLimit) {
		w.event(resyncEvent(cursor, "too_many"))
		return
	}
	at := since
	for _, ch := range s.teamChangeEvents(ctx, rows, nil) {
		if ch.ev.at.After(at) {
			at = ch.ev.at
		}
		ch.ev.id = cursorID(at)
		w.event(ch.ev)
	}
	window := s.devices.OfflineWindow()
	for _, ev := range s.quietDeviceEvents(ctx, teamID, since.Add(-window), time.Now().Add(-window), cursorID(at)) {
		w.event(ev)
	}
}

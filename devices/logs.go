package devices

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// A device's log, as its agent publishes it on its logs topic after `startLog` (docs/device-protocol.md §3.5): one
// JSON array of the agent's buffered entries first, then one entry per message.

// LogLine is one line of a device's log: when the platform received it (which orders the lines), when the
// device wrote it, its level and its text.
type LogLine struct {
	Received time.Time
	Time     time.Time
	Level    string
	Msg      string
}

// MaxLogMsg caps one line's text; a longer one is cut.
const MaxLogMsg = 4096

type logEntry struct {
	Level json.RawMessage `json:"level"`
	Msg   json.RawMessage `json:"msg"`
	TS    json.RawMessage `json:"ts"`
}

// ParseLogMessage reads a logs-topic message: an array of entries or a single entry. Entries that are not
// objects are skipped; a message that is neither is an error.
func ParseLogMessage(payload []byte, received time.Time) ([]LogLine, bool) {
	trimmed := bytes.TrimSpace(payload)
	var entries []logEntry
	if bytes.HasPrefix(trimmed, []byte("[")) {
		var raws []json.RawMessage
		if json.Unmarshal(trimmed, &raws) != nil {
			return nil, false
		}
		for _, r := range raws {
			var e logEntry
			if json.Unmarshal(r, &e) == nil {
				entries = append(entries, e)
			}
		}
	} else {
		var e logEntry
		if json.Unmarshal(trimmed, &e) != nil {
			return nil, false
		}
		entries = append(entries, e)
	}
	lines := make([]LogLine, 0, len(entries))
	for _, e := range entries {
		msg := textOf(e.Msg)
		if len(msg) > MaxLogMsg {
			msg = msg[:MaxLogMsg]
		}
		lines = append(lines, LogLine{Received: received, Time: logTime(e.TS, received), Level: textOf(e.Level), Msg: msg})
	}
	return lines, true
}

// textOf reads a string, or keeps any other JSON value as its text (Node-RED may log objects).
func textOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// logTime reads the agent's ts: epoch milliseconds followed by a 4-digit counter, as a string of 17 digits or a
// number (before it passes the agent's buffer); anything else is the time it was received.
func logTime(raw json.RawMessage, fallback time.Time) time.Time {
	s := string(bytes.Trim(bytes.TrimSpace(raw), `"`))
	if len(s) > 4 {
		if n, err := strconv.ParseInt(s[:len(s)-4], 10, 64); err == nil && len(s) == 17 {
			return time.UnixMilli(n)
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.UnixMilli(n)
	}
	return fallback
}

// LogRing keeps the recent lines of each device whose log arrives, a bounded number per device; a device's lines
// go when its log is no longer asked for (Forget).
type LogRing struct {
	mu    sync.Mutex
	size  int
	lines map[string][]LogLine
	last  map[string]time.Time // the last line's Received, so each line's is later than the one before
}

// NewLogRing keeps up to size lines per device.
func NewLogRing(size int) *LogRing {
	return &LogRing{size: size, lines: map[string][]LogLine{}, last: map[string]time.Time{}}
}

// Add appends lines, each received strictly after the one before (so a stream can resume after any line). A
// repeated burst (the agent sends its whole buffer again at each startLog) keeps only the lines newer than
// what is already there.
func (r *LogRing) Add(deviceID string, lines []LogLine) {
	r.add(deviceID, lines, true)
}

// Append appends lines as they are, each received strictly after the one before: lines another process
// received and already sorted out.
func (r *LogRing) Append(deviceID string, lines []LogLine) {
	r.add(deviceID, lines, false)
}

func (r *LogRing) add(deviceID string, lines []LogLine, dedupe bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.lines[deviceID]
	var newest time.Time
	if len(cur) > 0 {
		newest = cur[len(cur)-1].Time
	}
	last := r.last[deviceID]
	for _, l := range lines {
		if dedupe && len(lines) > 1 && !l.Time.After(newest) && len(cur) > 0 {
			continue // already held from an earlier burst
		}
		if !l.Received.After(last) {
			l.Received = last.Add(time.Microsecond)
		}
		last = l.Received
		cur = append(cur, l)
	}
	if over := len(cur) - r.size; over > 0 {
		cur = append([]LogLine(nil), cur[over:]...)
	}
	r.lines[deviceID], r.last[deviceID] = cur, last
}

// Since returns up to limit lines received after since (the newest ones when there are more).
func (r *LogRing) Since(deviceID string, since time.Time, limit int) []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LogLine
	for _, l := range r.lines[deviceID] {
		if l.Received.After(since) {
			out = append(out, l)
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return append([]LogLine(nil), out...)
}

// Forget drops a device's lines.
func (r *LogRing) Forget(deviceID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.lines, deviceID)
	delete(r.last, deviceID)
}

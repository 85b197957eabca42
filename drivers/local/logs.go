package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

const (
	logFileName     = "node-red.log"
	ringLines       = 1000
	maxLineBytes    = 64 << 10  // longer lines are cut, so one huge debug message cannot grow memory
	initialTailSize = 256 << 10 // how much of an existing log file is read back into the ring
	lastLinesInErr  = 20
)

// logBook follows one instance's log file. Node-RED writes its stdout and stderr straight into that file
// (the driver passes the open file, not a pipe, so the process survives the platform: a dead pipe reader
// would make its next write fail). The book reads what was appended, keeps the last lines in a ring,
// and rotates the file once it passes maxBytes (copy to .1, then truncate: the writer holds the file
// open with O_APPEND, so it carries on at the new end).
type logBook struct {
	path     string
	maxBytes int64

	mu      sync.Mutex
	ring    []drivers.LogLine
	next    int // ring index of the next line
	offset  int64
	partial []byte
	onLine  func(drivers.LogLine) // sees each new line (not those read back at open); called with mu held
}

func openLogBook(path string, maxBytes int64) *logBook {
	b := &logBook{path: path, maxBytes: maxBytes, ring: make([]drivers.LogLine, 0, ringLines)}
	b.readBack()
	return b
}

// readBack loads the end of an existing log file into the ring and starts following from its end.
func (b *logBook) readBack() {
	f, err := os.Open(b.path)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	start := max(0, fi.Size()-initialTailSize)
	data, err := io.ReadAll(io.NewSectionReader(f, start, fi.Size()-start))
	if err != nil {
		return
	}
	if start > 0 { // drop the line cut in half by the window
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	b.offset = fi.Size()
	for _, raw := range bytes.Split(data, []byte{'\n'}) {
		if line, ok := parseLogLine(raw, fi.ModTime()); ok {
			b.add(line)
		}
	}
}

// poll reads what was appended since the last call.
func (b *logBook) poll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fi, err := os.Stat(b.path); err != nil || fi.Size() == b.offset {
		return // nothing new: the common case, checked without opening the file
	}
	f, err := os.Open(b.path)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	if fi.Size() < b.offset { // truncated by someone (another driver rotating)
		b.offset, b.partial = 0, nil
	}
	if fi.Size() > b.offset {
		data, err := io.ReadAll(io.NewSectionReader(f, b.offset, fi.Size()-b.offset))
		if err != nil {
			return
		}
		b.offset += int64(len(data))
		b.consume(data)
	}
	if b.maxBytes > 0 && b.offset >= b.maxBytes {
		b.rotate()
	}
}

func (b *logBook) consume(data []byte) {
	now := time.Now()
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			b.partial = append(b.partial, data...)
			if len(b.partial) > maxLineBytes {
				b.emit(b.partial[:maxLineBytes], now)
				b.partial = nil
			}
			return
		}
		raw := data[:i]
		if len(b.partial) > 0 {
			raw = append(b.partial, raw...)
			b.partial = nil
		}
		b.emit(raw[:min(len(raw), maxLineBytes)], now)
		data = data[i+1:]
	}
}

func (b *logBook) emit(raw []byte, now time.Time) {
	line, ok := parseLogLine(raw, now)
	if !ok {
		return
	}
	b.add(line)
	if b.onLine != nil {
		b.onLine(line)
	}
}

func (b *logBook) add(line drivers.LogLine) {
	if len(b.ring) < ringLines {
		b.ring = append(b.ring, line)
		return
	}
	b.ring[b.next] = line
	b.next = (b.next + 1) % ringLines
}

// rotate keeps one previous file. Lines written between the copy and the truncate are lost from the
// file (not from the ring); that window is a few microseconds every 5 MB.
func (b *logBook) rotate() {
	data, err := os.ReadFile(b.path)
	if err != nil {
		return
	}
	if err := os.WriteFile(b.path+".1", data, 0o600); err != nil {
		return
	}
	if err := os.Truncate(b.path, 0); err != nil {
		return
	}
	b.offset, b.partial = 0, nil
}

// system appends one of the driver's own lines (start, stop, exit) to the log file.
func (b *logBook) system(format string, args ...any) {
	line, _ := json.Marshal(map[string]string{
		"ts": time.Now().UTC().Format(time.RFC3339Nano), "level": "system", "msg": fmt.Sprintf(format, args...),
	})
	f, err := os.OpenFile(b.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	f.Write(append(line, '\n'))
	f.Close()
	b.poll()
}

// setOnLine installs the hook that sees every new line.
func (b *logBook) setOnLine(fn func(drivers.LogLine)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onLine = fn
}

// ordered returns the ring's lines, oldest first. b.mu must be held.
func (b *logBook) ordered() []drivers.LogLine {
	out := make([]drivers.LogLine, 0, len(b.ring))
	out = append(out, b.ring[b.next:]...)
	return append(out, b.ring[:b.next]...)
}

// lines returns up to limit lines (the newest) logged at or after since; limit <= 0 means all.
func (b *logBook) lines(since time.Time, limit int) []drivers.LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	all := b.ordered()
	var out []drivers.LogLine
	for _, l := range all {
		if !l.Time.Before(since) {
			out = append(out, l)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// last returns the text of the last n lines.
func (b *logBook) last(n int) []string {
	lines := b.lines(time.Time{}, n)
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Msg
	}
	return out
}

// levelNames maps Node-RED's numeric levels, in case a line carries one.
var levelNames = map[float64]string{10: "fatal", 20: "error", 30: "warn", 40: "info", 50: "debug", 60: "trace", 98: "audit", 99: "metric"}

// parseLogLine turns one line of output into a LogLine. JSON lines from the settings.js log handler are
// parsed; anything else (stack traces, "[red] Uncaught Exception:", npm output) is kept with Level "raw".
// It reports false for lines that should not be kept: blank ones, and the "auth.invalid-token" audit
// entry Node-RED writes on every successful token request (passport tries its own bearer strategy first).
func parseLogLine(raw []byte, now time.Time) (drivers.LogLine, bool) {
	raw = bytes.TrimRight(raw, "\r")
	if len(bytes.TrimSpace(raw)) == 0 {
		return drivers.LogLine{}, false
	}
	var m map[string]any
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return drivers.LogLine{Time: now, Level: "raw", Msg: string(raw)}, true
	}
	line := drivers.LogLine{Time: now, Level: "info", Msg: text(m["msg"])}
	if ts, ok := m["ts"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			line.Time = t
		}
	}
	switch lv := m["level"].(type) {
	case string:
		line.Level = lv
	case float64:
		if name, ok := levelNames[lv]; ok {
			line.Level = name
		}
	}
	event := text(m["event"])
	if line.Level == "audit" {
		if event == "auth.invalid-token" {
			return drivers.LogLine{}, false
		}
		if line.Msg == "" {
			line.Msg = strings.TrimSpace(event + " " + text(m["path"]))
		}
	}
	if typ := text(m["type"]); typ != "" && line.Level != "audit" {
		who := text(m["name"])
		if who == "" {
			who = text(m["id"])
		}
		line.Msg = fmt.Sprintf("[%s:%s] %s", typ, who, line.Msg)
	}
	return line, true
}

func text(v any) string {
	switch s := v.(type) {
	case nil:
		return ""
	case string:
		return s
	default:
		b, _ := json.Marshal(s)
		return string(b)
	}
}

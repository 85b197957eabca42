package agent

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// logBuffer keeps Node-RED's recent output lines as the protocol's log entries (docs/device-protocol.md §3.5) and,
// between `startLog` and `stopLog`, hands each new one to the platform: first the whole buffer as one array, then
// every entry as it comes.
type logBuffer struct {
	mu      sync.Mutex
	size    int
	entries []logEntry
	partial []byte
	lastMS  int64
	counter int
	send    func(any) // set while streaming
}

type logEntry struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	TS    string `json:"ts"` // epoch ms and a 4-digit counter, as FlowFuse's agent writes it
}

func newLogBuffer(size int) *logBuffer { return &logBuffer{size: size} }

// nodeRedLevel finds the level in a Node-RED console line: "7 Dec 05:50:00 - [info] Started flows".
var nodeRedLevel = regexp.MustCompile(`^.{0,40}? - \[(\w+)\] ?`)

// Write takes Node-RED's output; complete lines become entries.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(b.partial[:i]), "\r")
		b.partial = b.partial[i+1:]
		if line != "" {
			b.addLocked(line)
		}
	}
	if len(b.partial) > 64<<10 { // a line without end: keep it as it is
		b.addLocked(string(b.partial))
		b.partial = nil
	}
	return len(p), nil
}

func (b *logBuffer) addLocked(line string) {
	level, msg := "info", line
	if m := nodeRedLevel.FindStringSubmatch(line); m != nil {
		level, msg = strings.ToLower(m[1]), line[len(m[0]):]
	}
	ms := time.Now().UnixMilli()
	if ms == b.lastMS {
		b.counter++
	} else {
		b.lastMS, b.counter = ms, 0
	}
	e := logEntry{Level: level, Msg: msg, TS: fmt.Sprintf("%d%04d", ms, b.counter%10000)}
	b.entries = append(b.entries, e)
	if over := len(b.entries) - b.size; over > 0 {
		b.entries = append([]logEntry(nil), b.entries[over:]...)
	}
	if b.send != nil {
		b.send(e)
	}
}

// start streams to send: the buffer at once, then each new entry.
func (b *logBuffer) start(send func(any)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.send = send
	send(append([]logEntry{}, b.entries...))
}

// stop ends the streaming.
func (b *logBuffer) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.send = nil
}

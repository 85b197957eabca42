package apitest

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Event is one server-sent event, with the id in force when it was dispatched.
type Event struct {
	ID, Name, Data string
}

// Stream is an open Server-Sent Events stream read as EventSource reads it.
type Stream struct {
	t      testing.TB
	Status int
	Header http.Header
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	lastID     string
	keepAlives int
}

func isEventStream(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
}

// Stream opens an event stream, sending Last-Event-ID when lastEventID is not empty, and fails the test
// unless it answers 200 with text/event-stream. It closes when the test ends, or by Close. Its connection is
// its own (no keep-alive), so closing it frees the server's side.
func (c *Client) Stream(path, lastEventID string) *Stream {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	hc := &http.Client{Jar: c.http.Jar, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || !isEventStream(resp) {
		resp.Body.Close()
		cancel()
		c.t.Fatalf("GET %s: status %d, content type %q: not an event stream", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &Stream{t: c.t, Status: resp.StatusCode, Header: resp.Header, events: make(chan Event, 10000), cancel: cancel, done: make(chan struct{}), lastID: lastEventID}
	go s.read(ctx, resp)
	c.t.Cleanup(s.Close)
	return s
}

// read parses the stream: fields end at a blank line, which dispatches an event when it has data (an id
// alone only moves the last event id); comments count as keep-alives.
func (s *Stream) read(ctx context.Context, resp *http.Response) {
	defer close(s.done)
	defer close(s.events)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		s.mu.Lock()
		var ev *Event
		switch {
		case line == "":
			if data != "" {
				ev = &Event{ID: s.lastID, Name: name, Data: data}
			}
			name, data = "", ""
		case field == "":
			s.keepAlives++
		case field == "id":
			s.lastID = value
		case field == "event":
			name = value
		case field == "data":
			data += value
		}
		s.mu.Unlock()
		if ev != nil {
			select {
			case s.events <- *ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Next returns the next event; false when the stream ended or nothing came within timeout.
func (s *Stream) Next(timeout time.Duration) (Event, bool) {
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(timeout):
		return Event{}, false
	}
}

// Until reads events until one matches, and fails the test when the stream ends or none matches within
// timeout.
func (s *Stream) Until(timeout time.Duration, what string, match func(Event) bool) Event {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev, ok := s.Next(time.Until(deadline))
		if !ok {
			s.t.Fatalf("no event %s within %s", what, timeout)
		}
		if match(ev) {
			return ev
		}
	}
}

// Ended waits up to timeout for the server to end the stream, reading what is left.
func (s *Stream) Ended(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// LastID is the last event id the stream set (what EventSource would send on reconnecting).
func (s *Stream) LastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

// KeepAlives counts the comments received.
func (s *Stream) KeepAlives() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keepAlives
}

// Close drops the connection and waits for the reader to stop.
func (s *Stream) Close() {
	s.cancel()
	<-s.done
}

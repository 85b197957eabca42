// Package alertstest runs a real HTTP webhook receiver on loopback for tests: it checks each request's signature
// as a team's receiver would (alerts.Verify), can fail the first requests to exercise retries, and keeps what it
// accepted.
package alertstest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/flowyard/flowyard/alerts"
)

// Delivery is one request the receiver got.
type Delivery struct {
	Event      string // X-Flowyard-Event
	DeliveryID string // X-Flowyard-Delivery
	Payload    alerts.Payload
	SignedOK   bool // the signature verified with the receiver's secret
	Answered   int  // the status the receiver answered
}

// Receiver is a running webhook receiver.
type Receiver struct {
	URL    string
	mu     sync.Mutex
	secret string
	failN  int
	got    []Delivery
	signal chan struct{}
}

// Start serves a receiver until the test ends; it answers 500 to the first failFirst requests, and 401 to a
// request whose signature does not verify.
func Start(t testing.TB, failFirst int) *Receiver {
	t.Helper()
	r := &Receiver{failN: failFirst, signal: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks/flowyard"
	return r
}

// SetSecret gives the receiver the webhook's secret (known once the webhook is created).
func (r *Receiver) SetSecret(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = secret
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	d := Delivery{Event: req.Header.Get(alerts.HeaderEvent), DeliveryID: req.Header.Get(alerts.HeaderDelivery)}
	_ = json.Unmarshal(body, &d.Payload)
	d.SignedOK = alerts.Verify(r.secret, req.Header.Get(alerts.HeaderSignature), body, time.Now(), 5*time.Minute) == nil
	switch {
	case !d.SignedOK:
		d.Answered = http.StatusUnauthorized
	case r.failN > 0:
		r.failN--
		d.Answered = http.StatusInternalServerError
	default:
		d.Answered = http.StatusNoContent
	}
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(d.Answered)
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// Requests returns every request so far.
func (r *Receiver) Requests() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Accepted returns the requests answered 2xx.
func (r *Receiver) Accepted() []Delivery {
	var out []Delivery
	for _, d := range r.Requests() {
		if d.Answered < 300 {
			out = append(out, d)
		}
	}
	return out
}

// WaitAccepted waits until n requests were accepted, failing the test after timeout.
func (r *Receiver) WaitAccepted(t testing.TB, n int, timeout time.Duration) []Delivery {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := r.Accepted(); len(got) >= n {
			return got
		}
		select {
		case <-r.signal:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the webhook receiver accepted %d requests, not %d, within %s (all: %+v)", len(r.Accepted()), n, timeout, r.Requests())
		}
	}
}

package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Limits are the API's abuse limits. Zero values take the defaults below; the counters live in memory, so each
// API replica limits on its own, which bounds an abuser to replicas × limit per window.
type Limits struct {
	MaxJSONDepth            int // nesting of request bodies
	LoginFailuresPerAccount int // failed sign-ins per account in loginWindow
	LoginFailuresPerIP      int // failed sign-ins per client address in loginWindow
	ProvisionsPerToken      int // device provisioning attempts per provisioning token in provisionWindow
	ProvisionsPerIP         int // device provisioning attempts per client address in provisionWindow
	MaxTeamOperations       int // a team's operations pending or running at once
}

// Default limits. A fleet is provisioned in bulk from behind one address (a factory's NAT), so provisioning
// allows far more than sign-in: 1,000 a minute lets 10,000 devices join in ten minutes.
const (
	DefaultMaxJSONDepth            = 32
	DefaultLoginFailuresPerAccount = 10
	DefaultLoginFailuresPerIP      = 50
	DefaultProvisionsPerToken      = 1000
	DefaultProvisionsPerIP         = 1000
	DefaultMaxTeamOperations       = 20

	loginWindow     = 15 * time.Minute
	provisionWindow = time.Minute
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxJSONDepth, DefaultMaxJSONDepth)
	def(&l.LoginFailuresPerAccount, DefaultLoginFailuresPerAccount)
	def(&l.LoginFailuresPerIP, DefaultLoginFailuresPerIP)
	def(&l.ProvisionsPerToken, DefaultProvisionsPerToken)
	def(&l.ProvisionsPerIP, DefaultProvisionsPerIP)
	def(&l.MaxTeamOperations, DefaultMaxTeamOperations)
	return l
}

// limiters holds the API's attempt counters.
type limiters struct {
	Limits
	logins     *window // failed sign-ins
	provisions *window // provisioning attempts, failed or not
}

func newLimiters(l Limits) *limiters {
	return &limiters{Limits: l.withDefaults(), logins: newWindow(loginWindow), provisions: newWindow(provisionWindow)}
}

// loginWait is how long a sign-in for this account from this address must wait; 0 when it may go ahead.
func (l *limiters) loginWait(account, ip string, at time.Time) time.Duration {
	return max(l.logins.wait("a:"+account, l.LoginFailuresPerAccount, at), l.logins.wait("i:"+ip, l.LoginFailuresPerIP, at))
}

func (l *limiters) loginFailed(account, ip string, at time.Time) {
	l.logins.add(at, "a:"+account, "i:"+ip)
}

func (l *limiters) loginSucceeded(account string) { l.logins.clear("a:" + account) }

// provisionAttempt counts one device provisioning attempt with a provisioning token (by its hash, never the
// token itself) from an address, and refuses it with 429 when either has used up its window.
func (l *limiters) provisionAttempt(tokenHash, ip string, at time.Time) error {
	if wait := l.provisions.wait("t:"+tokenHash, l.ProvisionsPerToken, at); wait > 0 {
		return domain.TooMany("too_many_provisioning_attempts",
			fmt.Sprintf("This provisioning token was used more than %d times in a minute; wait and try again.", l.ProvisionsPerToken), wait)
	}
	if wait := l.provisions.wait("i:"+ip, l.ProvisionsPerIP, at); wait > 0 {
		return domain.TooMany("too_many_provisioning_attempts",
			fmt.Sprintf("More than %d devices were provisioned from this address in a minute; wait and try again.", l.ProvisionsPerIP), wait)
	}
	l.provisions.add(at, "t:"+tokenHash, "i:"+ip)
	return nil
}

// window counts events per key in a sliding window.
type window struct {
	mu     sync.Mutex
	events map[string][]time.Time
	length time.Duration
}

// maxWindowKeys bounds the keys kept before expired ones are swept, so spraying addresses cannot grow memory
// without bound between sweeps.
const maxWindowKeys = 100_000

func newWindow(length time.Duration) *window {
	return &window{events: map[string][]time.Time{}, length: length}
}

// wait is how long until key may have another event when it may have at most limit in the window; 0 for now.
func (w *window) wait(key string, limit int, at time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	times := w.recent(key, at)
	if len(times) < limit {
		return 0
	}
	// The event that must leave the window before another fits.
	return w.length - at.Sub(times[len(times)-limit])
}

// add records an event for each key.
func (w *window) add(at time.Time, keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		w.events[k] = append(w.recent(k, at), at)
	}
	if len(w.events) > maxWindowKeys {
		for k := range w.events {
			w.recent(k, at)
		}
	}
}

// clear forgets a key's events.
func (w *window) clear(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.events, key)
}

// recent drops the key's events older than the window and returns the rest.
func (w *window) recent(key string, at time.Time) []time.Time {
	times := w.events[key]
	i := 0
	for i < len(times) && at.Sub(times[i]) >= w.length {
		i++
	}
	if i == len(times) {
		delete(w.events, key)
		return nil
	}
	return times[i:]
}

// operationRetryAfter is what a client refused for too many operations is told to wait: operations take
// seconds to minutes.
const operationRetryAfter = 30 * time.Second

// insertOperation records a new operation inside tx, unless its team already has MaxTeamOperations pending or
// running. The count and the insert share the transaction (and the team's lock), so the limit holds across
// API replicas.
func (s *Server) insertOperation(ctx context.Context, tx *storage.Store, op *storage.Operation) error {
	if op.TeamID != nil {
		n, err := tx.CountTeamOperationsInFlight(ctx, *op.TeamID)
		if err != nil {
			return err
		}
		if n >= s.limiter.MaxTeamOperations {
			return domain.TooMany("too_many_operations", fmt.Sprintf(
				"The team has %d operations in progress, the most it may run at once; try again when one has finished.", n), operationRetryAfter)
		}
	}
	_, _, err := tx.InsertOperation(ctx, op)
	return err
}

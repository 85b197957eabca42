package api

import (
	"sync"
	"time"
)

// loginLimiter counts failed sign-ins per account and per client address in a sliding window. It lives in
// memory, so each API replica limits on its own; that bounds guessing to replicas × limit per window.
type loginLimiter struct {
	mu         sync.Mutex
	failures   map[string][]time.Time
	window     time.Duration
	perAccount int
	perIP      int
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{failures: map[string][]time.Time{}, window: 15 * time.Minute, perAccount: 10, perIP: 50}
}

// blocked reports whether another attempt for this account or address must wait.
func (l *loginLimiter) blocked(account, ip string, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent("a:"+account, at)) >= l.perAccount || len(l.recent("i:"+ip, at)) >= l.perIP
}

// fail records a failed attempt.
func (l *loginLimiter) fail(account, ip string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{"a:" + account, "i:" + ip} {
		l.failures[k] = append(l.recent(k, at), at)
	}
	if len(l.failures) > 100_000 {
		l.prune(at)
	}
}

// succeed clears an account's failures.
func (l *loginLimiter) succeed(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, "a:"+account)
}

func (l *loginLimiter) recent(key string, at time.Time) []time.Time {
	times := l.failures[key]
	i := 0
	for i < len(times) && at.Sub(times[i]) > l.window {
		i++
	}
	if i == len(times) {
		delete(l.failures, key)
		return nil
	}
	return times[i:]
}

func (l *loginLimiter) prune(at time.Time) {
	for k := range l.failures {
		l.recent(k, at)
	}
}

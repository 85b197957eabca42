package api

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// An account's delays start after its free attempts, double with each attempt, stop growing at the cap, and a
// refused attempt neither counts nor lengthens them.
func TestAccountDelaysGrowFromTheFreeAttempts(t *testing.T) {
	b := newBackoff(3, time.Second, 10*time.Second, time.Hour)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 3 {
		assert.Zero(t, b.take("a", at), "the free attempts go ahead at once")
	}
	assert.Equal(t, time.Second, b.take("a", at))
	assert.Equal(t, 500*time.Millisecond, b.take("a", at.Add(500*time.Millisecond)), "a refused attempt is not counted")
	var waits []time.Duration
	for range 6 {
		at = at.Add(b.take("a", at))
		assert.Zero(t, b.take("a", at), "once the delay has run the attempt goes ahead")
		waits = append(waits, b.take("a", at))
	}
	assert.Equal(t, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}, waits)
	assert.Zero(t, b.take("b", at), "another account is not held back")
	for range 3 {
		b.take("d", at)
	}
	b.restart("d", at.Add(3*time.Second)) // the third attempt's check ended three seconds after it began
	assert.Equal(t, time.Second, b.take("d", at.Add(3*time.Second)), "the delay runs from the end of the latest failure")
	b.clear("a")
	assert.Zero(t, b.take("a", at), "a success clears the account")
	for range 3 {
		b.take("c", at)
	}
	assert.Zero(t, b.take("c", at.Add(time.Hour)), "failures are forgotten after a quiet while")
}

// Behind a trusted proxy the client is the right-most address of X-Forwarded-For that is not a trusted proxy;
// from any other peer the header is ignored.
func TestForwardedClientIsTheRightMostUntrustedAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	lb, stranger := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("198.51.100.1")
	for _, tc := range []struct {
		name    string
		peer    netip.Addr
		headers []string
		want    string
	}{
		{"no proxy trusted: the header is the client's say", stranger, []string{"203.0.113.9"}, "198.51.100.1"},
		{"a trusted proxy without the header sent it itself", lb, nil, "10.0.0.5"},
		{"one proxy", lb, []string{"203.0.113.9"}, "203.0.113.9"},
		{"the client's own entries are passed over", lb, []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, "203.0.113.9"},
		{"through two of our proxies", lb, []string{"1.1.1.1, 203.0.113.9, 10.0.0.7"}, "203.0.113.9"},
		{"several header lines read as one list", lb, []string{"1.1.1.1", "203.0.113.9, 10.1.1.1"}, "203.0.113.9"},
		{"ports and IPv6", lb, []string{"[2001:db8::7]:4711, fd00::1"}, "2001:db8::7"},
		{"IPv4 written as IPv6", lb, []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"every hop ours: the left-most sent it", lb, []string{"10.2.2.2, 10.3.3.3"}, "10.2.2.2"},
		{"garbage stops at the last address vouched for", lb, []string{"203.0.113.9, unknown, 10.3.3.3"}, "10.3.3.3"},
	} {
		var headers [][]byte
		for _, h := range tc.headers {
			headers = append(headers, []byte(h))
		}
		assert.Equal(t, tc.want, forwardedClient(trusted, tc.peer, headers).String(), tc.name)
	}
	assert.Equal(t, "10.0.0.5", forwardedClient(nil, lb, [][]byte{[]byte("203.0.113.9")}).String(), "no trusted proxies: the peer")
}

package api

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
)

// Limits are the API's abuse limits. Zero values take the defaults below; the counters live in memory, so each
// API replica limits on its own, which bounds an abuser to replicas × limit per window.
//
// The sign-in limits protect against two different guessers. One guessing the password of one account, from any
// number of addresses, meets the account's growing delays: after LoginFailuresPerAccount failures each further
// attempt waits a delay that doubles with every failure (LoginDelay up to loginDelayMost), so guessing slows
// to a few tries an hour, while the account's owner, who knows the password, signs in as soon as the delay has
// run: someone failing on purpose can make the owner wait, but not have the right password refused after it. One
// address trying many accounts (a password sprayed across them, or stolen e-mail and password pairs) meets
// LoginFailuresPerIP, which refuses every sign-in from the address for the rest of its window.
type Limits struct {
	MaxJSONDepth            int // nesting of request bodies
	LoginFailuresPerAccount int // failed sign-ins of an account before each further attempt waits a growing delay
	LoginFailuresPerIP      int // failed sign-ins per client address in loginWindow
	ProvisionsPerToken      int // device provisioning attempts per provisioning token in provisionWindow
	ProvisionsPerIP         int // device provisioning attempts per client address in provisionWindow
	MaxTeamOperations       int // a team's operations pending or running at once

	// LoginDelay is the first of an account's delays, from its latest failure; each failure doubles it. Not a
	// setting: tests lengthen it so that their timing does not matter.
	LoginDelay time.Duration
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
	DefaultLoginDelay              = time.Second

	loginWindow     = 15 * time.Minute
	resetWindow     = time.Hour
	resetsPerEmail  = 3  // reset (or sign-up) e-mails one address can be sent in resetWindow
	resetsPerIP     = 20 // reset (or sign-up) requests one client address may send in resetWindow
	provisionWindow = time.Minute

	loginDelayMost = 15 * time.Minute // the longest delay of an account
	loginForget    = 24 * time.Hour   // an account's failures are forgotten after this long without one
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
	if l.LoginDelay <= 0 {
		l.LoginDelay = DefaultLoginDelay
	}
	return l
}

// limiters holds the API's attempt counters.
type limiters struct {
	Limits
	accounts   *backoff // sign-in attempts per account
	addresses  *window  // failed sign-ins per client address
	provisions *window  // provisioning attempts, failed or not
	resets     *window  // password-reset requests per address asked about and per client address
	signups    *window  // sign-ups and confirmation resends per address asked about and per client address
}

func newLimiters(l Limits) *limiters {
	l = l.withDefaults()
	return &limiters{Limits: l, accounts: newBackoff(l.LoginFailuresPerAccount, l.LoginDelay, loginDelayMost, loginForget),
		addresses: newWindow(loginWindow), provisions: newWindow(provisionWindow), resets: newWindow(resetWindow),
		signups: newWindow(resetWindow)}
}

// loginAttempt lets a sign-in for this account from this address go ahead (0), or says how long it must wait. An
// attempt that goes ahead is counted against the account at once, as failed until loginSucceeded clears it, so
// that attempts sent together the moment a delay ends are not all checked.
func (l *limiters) loginAttempt(account, ip string, at time.Time) time.Duration {
	if wait := l.addresses.wait(ip, l.LoginFailuresPerIP, at); wait > 0 {
		return wait
	}
	return l.accounts.take(account, at)
}

// loginFailed counts a failed sign-in against the address it came from; the account's attempt was counted when
// it began, and its delay now runs from the failure, however long the password check took.
func (l *limiters) loginFailed(account, ip string, at time.Time) {
	l.addresses.add(at, ip)
	l.accounts.restart(account, at)
}

// loginSucceeded forgets the account's failures.
func (l *limiters) loginSucceeded(account string) { l.accounts.clear(account) }

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

// resetRequest counts one password-reset request for an e-mail address from a client address, and refuses it with
// 429 when either has used up its window. The address is counted whether or not an account has it, so the
// limit's answer tells nothing either.
func (l *limiters) resetRequest(email, ip string, at time.Time) error {
	return mailedLinkRequest(l.resets, email, ip, at, "too_many_password_resets", "Too many password resets were asked for; wait as long as Retry-After says.")
}

// signUpRequest counts one sign-up or confirmation resend, which mails an address, as resetRequest counts a
// reset: per address asked about, whether or not an account has it, and per client address.
func (l *limiters) signUpRequest(email, ip string, at time.Time) error {
	return mailedLinkRequest(l.signups, email, ip, at, "too_many_sign_ups", "Too many sign-ups or confirmation links were asked for; wait as long as Retry-After says.")
}

// mailedLinkRequest counts a request that mails a link to an address in w, and refuses it with 429 (code,
// message) when the address or the client address has used up its window.
func mailedLinkRequest(w *window, email, ip string, at time.Time, code, message string) error {
	if wait := max(w.wait("e:"+email, resetsPerEmail, at), w.wait("i:"+ip, resetsPerIP, at)); wait > 0 {
		return domain.TooMany(code, message, wait)
	}
	w.add(at, "e:"+email, "i:"+ip)
	return nil
}

// backoff slows attempts at one key (an account) without locking it: the first free attempts go ahead at once;
// after them each attempt must wait, from the one before, a delay that doubles with every attempt, from base up
// to most. An attempt refused because its delay runs is not counted, so hammering does not lengthen the delay.
// A key's attempts are forgotten when it is cleared or after forget without one.
type backoff struct {
	mu                 sync.Mutex
	keys               map[string]attempts
	free               int
	base, most, forget time.Duration
}

type attempts struct {
	n    int       // counted attempts
	last time.Time // of the latest
}

func newBackoff(free int, base, most, forget time.Duration) *backoff {
	return &backoff{keys: map[string]attempts{}, free: free, base: base, most: most, forget: forget}
}

// take counts an attempt at key and answers 0, or, while key's delay runs, counts nothing and answers how long
// is left.
func (b *backoff) take(key string, at time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.keys[key]
	if at.Sub(a.last) >= b.forget {
		a = attempts{}
	}
	if wait := a.last.Add(b.delay(a.n)).Sub(at); a.n > 0 && wait > 0 {
		return wait
	}
	b.keys[key] = attempts{n: a.n + 1, last: at}
	b.sweep(at)
	return 0
}

// restart moves the start of key's delay to at, when its latest attempt has ended later than it began.
func (b *backoff) restart(key string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a, ok := b.keys[key]; ok && at.After(a.last) {
		a.last = at
		b.keys[key] = a
	}
}

// delay is how long the attempt after n counted ones waits after the latest.
func (b *backoff) delay(n int) time.Duration {
	past := n - b.free // attempts past the free ones, 0 for the first that waits
	if past < 0 {
		return 0
	}
	if past >= 32 || b.base<<past > b.most {
		return b.most
	}
	return b.base << past
}

func (b *backoff) clear(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.keys, key)
}

// sweep bounds memory when many keys pile up (e-mails sprayed at the sign-in route): first the forgotten keys
// go, then those still within their free attempts, which delay no one.
func (b *backoff) sweep(at time.Time) {
	if len(b.keys) <= maxWindowKeys {
		return
	}
	for k, a := range b.keys {
		if at.Sub(a.last) >= b.forget || a.n < b.free {
			delete(b.keys, k)
		}
	}
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

// clientAddress is the address of the client that sent a request: the key of every per-address limit. It is
// the connecting peer's, unless the peer is one of the trusted proxies (Config.TrustedProxies): then it is the
// right-most address in X-Forwarded-For that is not a trusted proxy. Each proxy appends the address it got the
// request from, so reading from the right, past our own proxies, the first other address is the one our
// outermost proxy saw; what lies further left the client may have written itself.
func (s *Server) clientAddress(c *fiber.Ctx) string {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return forwardedClient(s.cfg.TrustedProxies, peer.Unmap(), c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)).String()
}

// forwardedClient finds the client behind a peer in the X-Forwarded-For headers (in the order received).
func forwardedClient(trusted []netip.Prefix, peer netip.Addr, headers [][]byte) netip.Addr {
	if !inRanges(trusted, peer) {
		return peer
	}
	client := peer
	for i := len(headers) - 1; i >= 0; i-- {
		hops := strings.Split(string(headers[i]), ",")
		for j := len(hops) - 1; j >= 0; j-- {
			addr, ok := parseHop(hops[j])
			if !ok {
				return client // not an address: the last one a trusted proxy vouched for
			}
			if client = addr; !inRanges(trusted, addr) {
				return addr
			}
		}
	}
	return client // every hop is a trusted proxy: the left-most sent the request itself
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with a port.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if addr, err := netip.ParseAddr(s); err == nil {
		return addr.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func inRanges(ranges []netip.Prefix, addr netip.Addr) bool {
	for _, p := range ranges {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

package api

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
)

// A live stream, like an editor's websocket, outlives the request that opened it, so the credential it was
// opened with is checked again while it runs. Each replica asks the store about the credentials of all its open streams together, once a
// poll interval (two or three queries, however many streams), and ends every stream whose credential no
// longer lets its holder in: the session signed out or ended (a password change, a forced reset), the token
// revoked or expired, the account suspended or deleted. A change made on this replica wakes the check at once;
// one made on another is seen at the next interval. The store being down keeps the streams: the check is about
// revocation, and EventSource does not reconnect after a 5xx.

// heldConnection is a long-lived connection other than a stream (an editor's websocket, piped to Node-RED),
// ended like a stream when its credential is revoked.
type heldConnection struct {
	credential string
	end        func()
}

// hold registers a connection opened with credential ("" is never checked) until release is called; end is
// called, at most once, when the credential is revoked first.
func (h *liveHub) hold(credential string, end func()) (release func()) {
	c := &heldConnection{credential: credential, end: end}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held[c] = true
	h.startSweeping()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.held, c)
	}
}

// credentialCheck answers which of the credentials asked about no longer let their holder in; ok is false
// when that cannot be told now.
type credentialCheck func(ctx context.Context, credentials []string) (revoked map[string]bool, ok bool)

// Credential kinds of streamCredential.
const (
	credentialSession = "session:"
	credentialToken   = "token:"
)

// streamCredential names what the request's caller signed in with: the session's or the bearer token's digest.
func streamCredential(c *fiber.Ctx) string {
	who, _ := c.Locals("caller").(*caller)
	switch {
	case who == nil:
		return ""
	case who.sessionHash != "":
		return credentialSession + who.sessionHash
	}
	if bearer, ok := bearerToken(c); ok {
		return credentialToken + domain.HashToken(bearer)
	}
	return ""
}

// revokedCredentials is the hub's credentialCheck: a credential is revoked when the store no longer has it
// unexpired for a user, or its user may not sign in now (signInRefusal).
func (s *Server) revokedCredentials(ctx context.Context, credentials []string) (map[string]bool, bool) {
	var sessions, tokens []string
	for _, cred := range credentials {
		if hash, ok := strings.CutPrefix(cred, credentialSession); ok {
			sessions = append(sessions, hash)
		} else if hash, ok := strings.CutPrefix(cred, credentialToken); ok {
			tokens = append(tokens, hash)
		}
	}
	users, err := s.store.CredentialUsers(ctx, sessions, tokens, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("check the live streams' credentials", "err", err)
		}
		return nil, false
	}
	revoked := map[string]bool{}
	for _, cred := range credentials {
		_, hash, _ := strings.Cut(cred, ":")
		if u, ok := users[hash]; !ok || signInRefusal(u) != nil {
			revoked[cred] = true
		}
	}
	return revoked, true
}

// startSweeping starts the credential check's loop unless it runs (the hub's lock held).
func (h *liveHub) startSweeping() {
	if h.revoked == nil || h.sweeping {
		return
	}
	h.sweeping = true
	go h.sweepLoop()
}

// sweepNow asks the credential check to run at once (after a change that may have revoked some).
func (h *liveHub) sweepNow() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// sweepLoop checks the open streams' credentials every poll interval, or when woken, and stops once no stream
// is open.
func (h *liveHub) sweepLoop() {
	tick := time.NewTicker(h.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-h.closing:
			h.stopSweeping()
			return
		case <-tick.C:
		case <-h.wake:
		}
		credentials, open := h.openCredentials()
		if !open {
			return
		}
		if len(credentials) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.KeepAlive)
		revoked, ok := h.revoked(ctx, credentials)
		cancel()
		if ok {
			h.endStreams(revoked)
		}
	}
}

func (h *liveHub) stopSweeping() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweeping = false
}

// openCredentials lists the distinct credentials of the open streams and held connections; open is false (and
// the loop marked stopped) when there are none.
func (h *liveHub) openCredentials() (credentials []string, open bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.topics) == 0 && len(h.held) == 0 {
		h.sweeping = false
		return nil, false
	}
	seen := map[string]bool{"": true}
	add := func(credential string) {
		if !seen[credential] {
			seen[credential] = true
			credentials = append(credentials, credential)
		}
	}
	for _, t := range h.topics {
		for sub := range t.subs {
			add(sub.credential)
		}
	}
	for c := range h.held {
		add(c.credential)
	}
	return credentials, true
}

// endStreams drops every subscriber holding a revoked credential (its channel closes, which ends its stream)
// and ends every held connection holding one.
func (h *liveHub) endStreams(revoked map[string]bool) {
	if len(revoked) == 0 {
		return
	}
	var ends []func()
	h.mu.Lock()
	for _, t := range h.topics {
		for sub := range t.subs {
			if revoked[sub.credential] {
				h.leave(t, sub)
				close(sub.ch)
			}
		}
	}
	for c := range h.held {
		if revoked[c.credential] {
			delete(h.held, c)
			ends = append(ends, c.end)
		}
	}
	h.mu.Unlock()
	for _, end := range ends {
		end()
	}
}

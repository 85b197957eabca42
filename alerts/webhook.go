package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/domain"
)

// Webhook requests carry these headers. The signature is Stripe's scheme: t=<unix seconds>,v1=<hex HMAC-SHA256
// of "<t>.<body>" with the webhook's secret>, so a receiver checks both who sent the body and that it is recent.
const (
	HeaderSignature = "X-Flowyard-Signature"
	HeaderEvent     = "X-Flowyard-Event"
	HeaderDelivery  = "X-Flowyard-Delivery"
	SecretPrefix    = "whsec_"
)

// Sign returns the signature header's value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a signature header against body, as a receiver does: the MAC must match and the timestamp be
// within tolerance of now. It is what the README's receiver example does, and the tests' receiver runs it.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("malformed signature header")
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return errors.New("signature timestamp outside the tolerance")
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(secret, ts, body)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// NewSecret makes a webhook's signing secret.
func NewSecret() string { return SecretPrefix + domain.NewSecret(32) }

// ValidateURL checks a webhook URL as written: http or https, a host, no user information. With allowPrivate
// false, a host that is an address of this machine's or a private network (loopback, RFC 1918, unique local,
// link-local, CGNAT, unspecified, multicast), or a name that resolves to one, is refused: the platform would
// otherwise POST into its own network for a tenant. The same rule is enforced again on the address each
// delivery connects to (SafeClient), so a name that later resolves elsewhere gains nothing.
func ValidateURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return domain.InvalidField("url", "must be an http:// or https:// URL with a host")
	}
	if u.User != nil {
		return domain.InvalidField("url", "must not hold a user name or password")
	}
	if len(raw) > 2000 {
		return domain.InvalidField("url", "must be at most 2000 characters")
	}
	if allowPrivate {
		return nil
	}
	addrs, err := resolve(ctx, u.Hostname())
	if err != nil {
		return nil // not resolvable now: each delivery checks the address it connects to
	}
	for _, a := range addrs {
		if PrivateAddress(a) {
			return domain.Unprocessable("webhook_destination_private",
				"Webhooks may not point at this platform's own or private networks ("+a.String()+"); a platform admin can allow them with --webhooks-allow-private.",
				domain.FieldError{Field: "url", Detail: "resolves to a loopback, private or link-local address"})
		}
	}
	return nil
}

func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	return ips, err
}

// specialRanges are ranges PrivateAddress refuses beyond what netip classifies: "this network", shared address
// space (CGNAT), benchmarking, and the IPv4/IPv6 translation prefixes that can reach them.
var specialRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// PrivateAddress reports whether a webhook may not connect to a (unless private destinations are allowed).
func PrivateAddress(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return true
	}
	for _, p := range specialRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ErrPrivateDestination is what a delivery to a refused address fails with.
var ErrPrivateDestination = errors.New("destination is a loopback, private or link-local address (refused; see --webhooks-allow-private)")

// SafeClient is the HTTP client deliveries use: no proxy from the environment (it would hide the destination),
// no redirects (a redirect could lead anywhere), a 10 s bound per attempt, and, unless allowPrivate, a refusal of
// any connection to a private address, checked on the address actually dialled after DNS resolution.
func SafeClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || PrivateAddress(ap.Addr()) {
				return ErrPrivateDestination
			}
			return nil
		}
	}
	transport := &http.Transport{Proxy: nil, DialContext: dialer.DialContext, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 10 * time.Second, MaxIdleConns: 10, IdleConnTimeout: 30 * time.Second}
	return &http.Client{Transport: transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// statusError is a receiver's answer other than 2xx.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("the receiver answered %d", e.code) }

package apitest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Each instance's editor has an origin of its own, <instanceId>.<editor domain>, served by the API's own listener,
// which tells it by the Host header. A browser resolves every *.localhost name to loopback; a test client
// reaches any editor origin by dialing the API's address, whatever host the URL names, and sends that host.

// DialTo returns a dialer that connects to addr (host:port) whatever address it is asked for.
func DialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}

// NewHostClient is an HTTP client with a cookie jar of its own that reaches every host at addr (the API's) and
// does not follow redirects.
func NewHostClient(addr string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: DialTo(addr)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// OpenEditor opens an instance's editor as a browser signed in with c does: it asks for an editor link, follows it
// on the editor origin and returns a client of that origin holding the editor's session cookie (paths are the
// editor's: "/flows" is Node-RED's admin API). It fails the test when the editor does not open.
func (c *Client) OpenEditor(instanceID string) *Client {
	c.t.Helper()
	return c.openEditorLink("/api/v1/instances/" + instanceID + "/editor-link")
}

// OpenDeviceEditor opens the editor of a device in developer mode as OpenEditor opens an instance's.
func (c *Client) OpenDeviceEditor(deviceID string) *Client {
	c.t.Helper()
	return c.openEditorLink("/api/v1/devices/" + deviceID + "/editor-link")
}

func (c *Client) openEditorLink(linkPath string) *Client {
	c.t.Helper()
	link := c.Must(http.StatusCreated, "POST", linkPath, nil).String("url")
	u, err := url.Parse(link)
	if err != nil {
		c.t.Fatalf("editor link %q: %v", link, err)
	}
	base, err := url.Parse(c.base)
	if err != nil {
		c.t.Fatalf("base %q: %v", c.base, err)
	}
	editor := &Client{t: c.t, base: u.Scheme + "://" + u.Host, http: NewHostClient(base.Host)}
	resp, err := editor.http.Get(link)
	if err != nil {
		c.t.Fatalf("GET %s: %v", link, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(editor.http.Jar.Cookies(u)) == 0 {
		c.t.Fatalf("the editor link answered %d with cookies %v, want 303 and the editor's session", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	return editor
}

// Base is the origin the client sends its requests to.
func (c *Client) Base() string { return c.base }

// LocalhostTransport dials every name under localhost (an instance's address in `flowyard dev`,
// <name>.apps.localhost) on the loopback address, as browsers and curl resolve them; other names as usual.
func LocalhostTransport() *http.Transport {
	var d net.Dialer
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(strings.ToLower(host), ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}}
}

// SignInToEndpoints signs in to an instance's protected address as a browser signed in with c does: a link from
// the platform, followed on the address, which sets its cookie and sends the browser on to next. It returns a
// client of the address (its own cookie jar, *.localhost dialed on loopback, redirects not followed) holding
// that cookie, and fails the test when the sign-in does not complete.
func (c *Client) SignInToEndpoints(instanceID, next string) *http.Client {
	c.t.Helper()
	link := c.Must(http.StatusCreated, "POST", "/api/v1/instances/"+instanceID+"/endpoints-link", map[string]string{"next": next}).String("url")
	u, err := url.Parse(link)
	if err != nil {
		c.t.Fatalf("endpoints link %q: %v", link, err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: LocalhostTransport(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, want := range []string{appSignedInPrefix, next} {
		res, err := client.Get(link)
		if err != nil {
			c.t.Fatalf("GET %s: %v", link, err)
		}
		res.Body.Close()
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, want) {
			c.t.Fatalf("GET %s: %d to %q, want a redirect to %s", link, res.StatusCode, loc, want)
		}
		link = u.Scheme + "://" + u.Host + loc
	}
	return client
}

// appSignedInPrefix is where an address's sign-in sends the browser, to see that it kept the cookie.
const appSignedInPrefix = "/_flowyard/signed-in?next="

// WaitForComms reads the editor's comms websocket (Node-RED's frames: arrays of {topic, data}) until a frame has
// the topic and data containing want, for 20 s at most.
func WaitForComms(t testing.TB, conn *websocket.Conn, topic, want string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatalf("comms: %v", err)
	}
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s %q on comms: %v", topic, want, err)
		}
		var frames []struct {
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		if json.Unmarshal(raw, &frames) != nil {
			continue
		}
		for _, f := range frames {
			if f.Topic == topic && strings.Contains(string(f.Data), want) {
				return
			}
		}
	}
}

package local

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestInstanceGetsNoPlatformCookie is the cookie theft a member could try: send a signed-in user a link to
// their instance, whose http-in flow reads the request's cookies. Cookies ignore ports, so a Node-RED on
// 127.0.0.1 got the host-only session cookie of a platform served on 127.0.0.1 or localhost. A real cookie
// jar signed in at both (the platform's Set-Cookie: host-only, HttpOnly) must send nothing to the URL the
// driver gives, and nothing may answer on 127.0.0.1:<port> for a hand-written link.
func TestInstanceGetsNoPlatformCookie(t *testing.T) {
	port := freePort(t)
	d := newTestDriver(t, "", func(c *Config) { c.PortMin, c.PortMax = port, port })
	spec := testSpec("cookies")
	flows, _ := json.Marshal([]map[string]any{
		{"id": "tab1", "type": "tab", "label": "Main"},
		{"id": "in1", "type": "http in", "z": "tab1", "url": "/cookies", "method": "get", "wires": [][]string{{"fn1"}}},
		{"id": "fn1", "type": "function", "z": "tab1", "outputs": 1, "wires": [][]string{{"out1"}},
			"func": `msg.payload = msg.req.headers.cookie || "none"; return msg;`},
		{"id": "out1", "type": "http response", "z": "tab1", "wires": [][]string{}},
	})
	writeFlows(t, d, spec.InstanceID, string(flows))
	st := startReady(t, d, spec)

	shown, err := url.Parse(st.URL)
	if err != nil || shown.Port() != strconv.Itoa(port) || shown.Hostname() == "127.0.0.1" || !net.ParseIP(shown.Hostname()).IsLoopback() {
		t.Fatalf("instance URL %q: want a loopback address of its own on port %d (%v)", st.URL, port, err)
	}

	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "flowyard_session", Value: "stolen-" + r.Host, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteLaxMode})
	}))
	defer platform.Close()
	_, platformPort, _ := net.SplitHostPort(platform.Listener.Addr().String())
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		signIn := "http://" + net.JoinHostPort(host, platformPort) + "/"
		resp, err := browser.Get(signIn)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if u, _ := url.Parse(signIn); len(jar.Cookies(u)) == 0 {
			t.Fatalf("the jar holds no session for %s", host)
		}
	}

	resp, err := browser.Get(st.URL + "/cookies")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "none" {
		t.Fatalf("the flow behind %s got %d %q, want 200 \"none\"", st.URL, resp.StatusCode, got)
	}

	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("something answers on 127.0.0.1:%d, where browsers send the platform's cookie", port)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial 127.0.0.1:%d: %v, want connection refused", port, err)
	}
}

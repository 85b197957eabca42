package apitest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// DialLocalhost dials like a net.Dialer, except that names under .localhost go to 127.0.0.1. Browsers and curl
// send every such name to loopback themselves; Go's resolver asks DNS, which does not know them. The instance
// URLs the API shows for local runtimes are http://<name>.localhost:<port>/api/.
func DialLocalhost(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(strings.ToLower(host), ".localhost") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
}

// InstanceTransport is an HTTP transport that reaches the instance URLs the API shows, as a browser does.
func InstanceTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = DialLocalhost
	return t
}

// InstanceClient is an HTTP client without cookies that reaches the instance URLs the API shows.
func InstanceClient() *http.Client {
	return &http.Client{Transport: InstanceTransport(), Timeout: 30 * time.Second}
}

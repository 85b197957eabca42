package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Proxying a browser's websocket to a runtime (an instance's editor, its flows' websockets at its address): the
// upgrade request goes to the runtime first, and only once it has switched protocols does the proxy take over
// the browser's connection and pipe bytes both ways, for as long as the caller's credential holds.

// runtimeWebsocket is a websocket to proxy to a runtime.
type runtimeWebsocket struct {
	log        string // names the proxy in the log ("editor proxy")
	instanceID string
	target     *url.URL
	path       string                  // the runtime's path; the browser's query string is kept
	headers    func(b *bytes.Buffer)   // writes the upgrade request's header lines (Connection and Upgrade among them)
	stillValid func() bool             // asked every LiveConfig.Recheck: false ends the websocket
	hold       func(end func()) func() // nil, or registers end to be called when the credential is revoked; returns its release
}

// proxyWebsocket dials the runtime, sends the upgrade request and reads the answer: a refusal (no websocket
// there: 404) is passed on to the browser; a switch of protocols takes over the browser's connection and pipes
// it until either side closes or the credential stops holding.
func (s *Server) proxyWebsocket(c *fiber.Ctx, w runtimeWebsocket) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), editorHandshakeTimeout)
	defer cancel()
	backend, err := dialRuntime(ctx, w.target)
	if err != nil {
		s.log.Warn(w.log+": dial node-red for websocket", "instance", w.instanceID, "err", err)
		return errRuntimeUnreachable
	}
	deadline, _ := ctx.Deadline()
	_ = backend.SetDeadline(deadline)
	reader := bufio.NewReader(backend)
	res, err := websocketHandshake(c, backend, reader, w.path, w.headers)
	if err != nil {
		backend.Close()
		s.log.Warn(w.log+": websocket handshake with node-red", "instance", w.instanceID, "err", err)
		return errRuntimeUnreachable
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		defer backend.Close()
		return relayRefusedUpgrade(c, res)
	}
	_ = backend.SetDeadline(time.Time{})
	head := switchingProtocolsHead(res)
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(client net.Conn) {
		if w.hold != nil {
			release := w.hold(func() { endWebsocket(client, backend) })
			defer release()
		}
		pipeWebsocket(client, backend, reader, head, w.stillValid, s.live.cfg.Recheck)
	})
	return nil
}

// websocketHandshake sends the upgrade request for path (with the browser's query string) and the header lines
// headers writes, and reads the runtime's answer.
func websocketHandshake(c *fiber.Ctx, backend net.Conn, reader *bufio.Reader, path string, headers func(b *bytes.Buffer)) (*http.Response, error) {
	requestURI := path
	if query := c.Request().URI().QueryString(); len(query) > 0 {
		requestURI += "?" + string(query)
	}
	var b bytes.Buffer
	b.WriteString("GET " + requestURI + " HTTP/1.1\r\n")
	headers(&b)
	b.WriteString("\r\n")
	if _, err := backend.Write(b.Bytes()); err != nil {
		return nil, err
	}
	return http.ReadResponse(reader, &http.Request{Method: http.MethodGet})
}

func dialRuntime(ctx context.Context, target *url.URL) (net.Conn, error) {
	addr := target.Host
	if target.Port() == "" {
		port := "80"
		if target.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(target.Hostname(), port)
	}
	if target.Scheme == "https" {
		d := &tls.Dialer{Config: &tls.Config{ServerName: target.Hostname(), MinVersion: tls.VersionTLS12}}
		return d.DialContext(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// relayRefusedUpgrade passes Node-RED's answer on when it did not switch protocols (e.g. a path without a
// websocket: 404).
func relayRefusedUpgrade(c *fiber.Ctx, res *http.Response) error {
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return errRuntimeUnreachable
	}
	if ct := res.Header.Get(fiber.HeaderContentType); ct != "" {
		c.Set(fiber.HeaderContentType, ct)
	}
	return c.Status(res.StatusCode).Send(body)
}

// switchingProtocolsHead is the 101 answer the browser gets: Node-RED's, without cookies.
func switchingProtocolsHead(res *http.Response) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	res.Header.Del(fiber.HeaderSetCookie)
	_ = res.Header.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes()
}

// pipeWebsocket copies frames both ways until either side closes, or stillValid, asked every recheck, says no;
// then it ends both sides. The client connection (fasthttp's hijacked connection) is closed by fasthttp when
// this returns.
func pipeWebsocket(client, backend net.Conn, backendReader *bufio.Reader, head []byte, stillValid func() bool, recheck time.Duration) {
	defer backend.Close()
	if _, err := client.Write(head); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(backend, client)
		endWebsocket(client, backend)
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(client, backendReader)
		endWebsocket(client, backend)
	}()
	ended := make(chan struct{})
	go recheckUntil(ended, recheck, stillValid, func() { endWebsocket(client, backend) })
	wg.Wait()
	close(ended)
}

// recheckUntil asks stillValid every interval until ended closes, and stops the connection the first time it
// says no.
func recheckUntil(ended <-chan struct{}, interval time.Duration, stillValid func() bool, stop func()) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ended:
			return
		case <-ticker.C:
			if !stillValid() {
				stop()
				return
			}
		}
	}
}

// endWebsocket ends a piped websocket. Closing a hijacked fasthttp connection is a no-op until the handler
// returns; an expired deadline ends a blocked read on either side instead.
func endWebsocket(client, backend net.Conn) {
	_ = client.SetDeadline(time.Unix(1, 0))
	_ = backend.SetDeadline(time.Unix(1, 0))
}

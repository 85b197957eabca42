package broker

import (
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// doors are the broker's listeners and every connection they let in, so that Close can shut all of them at once
// itself. mochi-mqtt 2.7.9 closes a listener's clients through Clients.GetByListener, which holds the clients'
// read lock and takes it again (Clients.Len): when a disconnecting client asks for the write lock in between
// (Clients.Delete), the second read lock waits for the writer and the writer for the first read lock, forever.
// With hundreds of devices dropping while the broker stops, that happens. So the broker's listeners never hand
// their clients to mochi-mqtt to close (see tcpListener and wsListener); Close closes every connection here and
// mochi-mqtt only waits for the clients' goroutines to end. Closing at the connection also ends the
// connections that never signed in, which mochi-mqtt does not know as clients and would wait for.
type doors struct {
	// signIn is how long a new connection has to send its CONNECT: the deadline set on it here is replaced by the
	// keepalive's once mochi-mqtt has read the CONNECT.
	signIn time.Duration

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	closed    bool
}

// listen binds address; the listener's connections are the doors' to close.
func (d *doors) listen(address string) (net.Listener, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		d.conns = map[net.Conn]struct{}{}
	}
	d.listeners = append(d.listeners, ln)
	return &door{Listener: ln, doors: d}, nil
}

// close stops every listener and closes every connection they let in; connections accepted afterwards are
// closed at once.
func (d *doors) close() {
	d.mu.Lock()
	d.closed = true
	listeners := d.listeners
	open := make([]net.Conn, 0, len(d.conns))
	for c := range d.conns {
		open = append(open, c)
	}
	d.mu.Unlock()
	for _, ln := range listeners {
		_ = ln.Close()
	}
	for _, c := range open {
		_ = c.Close()
	}
}

// admit records a new connection, or closes it when the doors are closed.
func (d *doors) admit(c net.Conn) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, doors: d}
	d.conns[tc] = struct{}{}
	_ = c.SetDeadline(time.Now().Add(d.signIn))
	return tc, nil
}

func (d *doors) forget(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.conns, c)
}

// door is one listener of the doors.
type door struct {
	net.Listener
	doors *doors
}

func (l *door) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.doors.admit(c)
}

// trackedConn leaves the doors' records when it closes.
type trackedConn struct {
	net.Conn
	doors *doors
}

func (c *trackedConn) Close() error {
	c.doors.forget(c)
	return c.Conn.Close()
}

// tcpListener is mochi-mqtt's TCP listener, except that closing it leaves the clients to Broker.Close (see
// doors) and that the handover learns when each of its connections is done.
type tcpListener struct {
	*listeners.Net
	handover *handover
}

func (l tcpListener) Serve(establish listeners.EstablishFn) { l.Net.Serve(l.handover.serve(establish)) }

func (l tcpListener) Close(listeners.CloseFn) { l.Net.Close(func(string) {}) }

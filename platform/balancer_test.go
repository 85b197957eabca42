package platform_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// balancer is a TCP load balancer in front of the replicas' brokers, as a Kubernetes Service is: each new
// connection goes to the next backend in turn, or to the one after when a backend refuses it (a replica that is
// gone), and ends when either side ends.
type balancer struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []string
	next     int
	open     map[string]int // connections open per backend
}

func startBalancer(t testing.TB) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &balancer{ln: ln, open: map[string]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

// url is the address devices are handed.
func (b *balancer) url() string { return "mqtt://" + b.ln.Addr().String() }

// add puts a backend (host:port) behind the balancer.
func (b *balancer) add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, addr)
}

// connections is how many connections to addr are open.
func (b *balancer) connections(addr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open[addr]
}

func (b *balancer) serve(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	order := make([]string, 0, len(b.backends))
	for i := range b.backends {
		order = append(order, b.backends[(b.next+i)%len(b.backends)])
	}
	b.next++
	b.mu.Unlock()
	for _, addr := range order {
		up, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			continue
		}
		b.mu.Lock()
		b.open[addr]++
		b.mu.Unlock()
		pipe(c, up)
		b.mu.Lock()
		b.open[addr]--
		b.mu.Unlock()
		return
	}
}

// pipe copies both ways until either side ends, then closes both.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
	_ = a.Close()
	_ = b.Close()
	<-done
}

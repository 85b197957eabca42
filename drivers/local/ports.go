package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/flowyard/flowyard/drivers"
)

// An instance owns its port from its first start until Remove, recorded in <instance dir>/port. Other
// instances never pick an owned port, even a stopped instance's, so two instances cannot meet on one port
// whatever order they restart in. A port is also bind-tested, because a foreign process may hold it.

// allocatePort returns the port instance dir should listen on and records it. It reuses the recorded
// port when it is still free. Allocation is serialised across drivers by a lock file in the data dir.
func (d *Driver) allocatePort(ctx context.Context, dir string) (int, error) {
	unlock, err := lockFile(ctx, filepath.Join(d.cfg.DataDir, "ports.lock"))
	if err != nil {
		return 0, fmt.Errorf("lock ports: %w", err)
	}
	defer unlock()
	owned, err := d.ownedPorts(dir)
	if err != nil {
		return 0, err
	}
	if own, ok := readPort(dir); ok && d.inRange(own) && !owned[own] && portFree(own) {
		return own, nil
	}
	for p := d.cfg.PortMin; p <= d.cfg.PortMax; p++ {
		if owned[p] || !portFree(p) {
			continue
		}
		if err := writeFileAtomic(filepath.Join(dir, portFileName), []byte(strconv.Itoa(p)+"\n"), 0o644); err != nil {
			return 0, fmt.Errorf("record port: %w", err)
		}
		return p, nil
	}
	return 0, fmt.Errorf("%w in %d-%d", drivers.ErrNoFreePort, d.cfg.PortMin, d.cfg.PortMax)
}

// ownedPorts reads the ports recorded by every instance but the one in dir.
func (d *Driver) ownedPorts(dir string) (map[int]bool, error) {
	root := filepath.Join(d.cfg.DataDir, "instances")
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	owned := map[int]bool{}
	for _, e := range entries {
		other := filepath.Join(root, e.Name())
		if !e.IsDir() || other == dir {
			continue
		}
		if p, ok := readPort(other); ok {
			owned[p] = true
		}
	}
	return owned, nil
}

func (d *Driver) inRange(p int) bool { return p >= d.cfg.PortMin && p <= d.cfg.PortMax }

func readPort(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, portFileName))
	if err != nil {
		return 0, false
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return p, err == nil && p > 0
}

// listenAddress is the loopback address of the instance on port, the only one its Node-RED listens on:
// 127.1.<port/256>.<port%256>, one address per port (Linux routes all of 127.0.0.0/8 to loopback without
// configuration). Cookies ignore ports, so on 127.0.0.1 (or localhost, which browsers send there) any flow
// would get the platform's host-only session cookie from whoever opens a link to it; no platform URL and no
// other instance uses this address, so no browser sends it another site's cookie.
func listenAddress(port int) string {
	return netip.AddrFrom4([4]byte{127, 1, byte(port >> 8), byte(port)}).String()
}

// runtimeURL is where the platform, and browsers, reach the instance on port.
func runtimeURL(port int) string {
	return "http://" + net.JoinHostPort(listenAddress(port), strconv.Itoa(port))
}

// portFree bind-tests a port on the address Node-RED would listen on (a process on the wildcard address
// holds it there too).
func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(listenAddress(p), strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
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

// portFree bind-tests a port on the loopback address Node-RED listens on.
func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

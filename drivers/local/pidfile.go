package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// pidFile records a running Node-RED so that a later driver (after the platform restarts) can re-adopt
// it instead of starting a second one. It is removed on Stop; a pidfile whose process is gone therefore
// means the runtime exited while nobody was watching.
type pidFile struct {
	PID        int       `json:"pid"`
	Port       int       `json:"port"`
	Host       string    `json:"host,omitempty"` // the address it listens on; "" before instances had their own
	StartTicks uint64    `json:"startTicks"`     // /proc start time, guards against PID reuse
	StartedAt  time.Time `json:"startedAt"`
	ReadyAt    time.Time `json:"readyAt,omitzero"`
	SpecHash   string    `json:"specHash"`
	SafeMode   bool      `json:"safeMode,omitempty"`
	Limited    bool      `json:"memoryLimitEnforced,omitempty"`
	// The run's entry in the network filter and the local endpoints it may reach, for a later driver to
	// filter it (again); "" when it runs as the platform's uid, or was started before the filter existed.
	NetRun     string           `json:"netRun,omitempty"`
	NetAllowed []netip.AddrPort `json:"netAllowed,omitempty"`
}

// pidFile is what a later driver needs to re-adopt p.
func (p *process) pidFile() pidFile {
	pf := pidFile{PID: p.pid, Port: p.port, Host: listenAddress(p.port), StartTicks: p.startTicks, StartedAt: p.startedAt,
		SpecHash: p.specHash, SafeMode: p.safe, Limited: p.limited}
	if p.net != nil {
		pf.NetRun, pf.NetAllowed = p.net.run, p.net.allowed
	}
	return pf
}

const (
	pidFileName  = "node-red.pid.json"
	portFileName = "port"
)

func readPidFile(dir string) (pidFile, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return pidFile{}, false, nil
	}
	if err != nil {
		return pidFile{}, false, fmt.Errorf("read pidfile: %w", err)
	}
	var pf pidFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return pidFile{}, false, fmt.Errorf("parse pidfile: %w", err)
	}
	return pf, true, nil
}

func writePidFile(dir string, pf pidFile) error {
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pidfile: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, pidFileName), b, 0o600)
}

func removePidFile(dir string) error {
	err := os.Remove(filepath.Join(dir, pidFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileAtomic writes through a temporary file and a rename, so a reader (or a platform killed
// mid-write) never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	os.Remove(tmp) // a leftover of a crash may be read-only
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", filepath.Base(path), err)
	}
	return nil
}

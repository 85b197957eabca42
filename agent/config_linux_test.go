package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProvisioningReplacesTheConfigInOneStep watches the device's folder while the agent provisions itself:
// device.yml is only ever replaced whole, by a rename onto it, and never renamed away, deleted or written in
// place. An agent killed at any moment restarts with the provisioning config or with the device config, never
// with no config while the platform has registered the device, and never with half of one.
func TestProvisioningReplacesTheConfigInOneStep(t *testing.T) {
	p := &platform{}
	srv := httptest.NewServer(p.provisioningHandler(t))
	defer srv.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "device.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("provisioningToken: fyp_x\nforgeURL: "+srv.URL+"\nport: 1881\nhttpStatic: /data\n"), 0o600))
	events := watchFolder(t, dir)

	_, err := newAgent(context.Background(), Options{ConfigPath: cfgPath, Dir: dir, Runner: &fakeRunner{}})
	require.NoError(t, err)

	replaced := false
	for _, e := range events() {
		if e.name != "device.yml" {
			continue
		}
		if e.mask&syscall.IN_MOVED_TO != 0 {
			replaced = true
		}
		assert.Zero(t, e.mask&(syscall.IN_MOVED_FROM|syscall.IN_DELETE|syscall.IN_CREATE|syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE),
			"device.yml was moved away, deleted or written in place while the agent provisioned (inotify mask %#x)", e.mask)
	}
	assert.True(t, replaced, "device.yml was replaced by a rename")
	cfg, err := LoadConfig(cfgPath)
	require.NoError(t, err)
	assert.Equal(t, "d1", cfg.DeviceID)
	assert.Equal(t, 1881, cfg.Port)
	assert.Equal(t, "/data", cfg.Extras["httpStatic"], "the provisioning file's extras are kept")
	info, err := os.Stat(cfgPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the credentials are readable by the agent's user only")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing is left beside device.yml: no backup, no temporary file")
}

// folderEvent is one inotify event in a watched folder.
type folderEvent struct {
	name string
	mask uint32
}

// watchFolder watches dir with inotify; the returned function reads the events so far.
func watchFolder(t *testing.T, dir string) func() []folderEvent {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	_, err = syscall.InotifyAddWatch(fd, dir, syscall.IN_ALL_EVENTS)
	require.NoError(t, err)
	return func() []folderEvent {
		var events []folderEvent
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(fd, buf)
			if errors.Is(err, syscall.EAGAIN) {
				return events
			}
			require.NoError(t, err)
			parsed, err := parseInotify(buf[:n])
			require.NoError(t, err)
			events = append(events, parsed...)
		}
	}
}

func parseInotify(b []byte) ([]folderEvent, error) {
	var events []folderEvent
	for len(b) >= syscall.SizeofInotifyEvent {
		var raw syscall.InotifyEvent
		if err := binary.Read(bytes.NewReader(b[:syscall.SizeofInotifyEvent]), binary.NativeEndian, &raw); err != nil {
			return nil, err
		}
		end := syscall.SizeofInotifyEvent + int(raw.Len)
		if end > len(b) {
			return nil, fmt.Errorf("truncated inotify event")
		}
		name := string(bytes.TrimRight(b[syscall.SizeofInotifyEvent:end], "\x00"))
		events = append(events, folderEvent{name: name, mask: raw.Mask})
		b = b[end:]
	}
	return events, nil
}

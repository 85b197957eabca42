package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// envInstanceDir marks a Node-RED process as belonging to an instance directory. It is checked in
// /proc/<pid>/environ because Node-RED sets process.title, which overwrites /proc/<pid>/cmdline once it
// listens (measured: cmdline becomes "node-red" followed by NULs); the environment block is left alone.
const envInstanceDir = "FLOWYARD_INSTANCE_DIR"

// procStat holds the fields of /proc/<pid>/stat the driver needs.
type procStat struct {
	state      byte   // R, S, D, Z (zombie), X (dead), ...
	pgid       int    // process group
	startTicks uint64 // start time in clock ticks after boot: with the PID, it identifies one process
}

// readProcStat parses /proc/<pid>/stat. The command name may hold spaces and parentheses, so fields are
// counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: no command end", pid)
	}
	fields := strings.Fields(string(b[i+2:]))
	// fields[0] is field 3 of proc(5): state; pgrp is field 5, starttime field 22.
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	pgid, err := strconv.Atoi(fields[2])
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat pgrp: %w", pid, err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	return procStat{state: fields[0][0], pgid: pgid, startTicks: start}, nil
}

// processAlive reports whether pid is still the process that started at startTicks and has not exited
// (a zombie counts as exited: its parent may be gone and nobody reaps it).
func processAlive(pid int, startTicks uint64) bool {
	st, err := readProcStat(pid)
	if err != nil {
		return false
	}
	return st.startTicks == startTicks && st.state != 'Z' && st.state != 'X'
}

// belongsTo reports whether process pid was started by a driver for instance directory dir.
func belongsTo(pid int, dir string) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	want := []byte(envInstanceDir + "=" + dir)
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.Equal(kv, want) {
			return true
		}
	}
	return false
}

// findInstanceProcesses lists live processes (not zombies) started for instance directory dir. It covers
// the window in which a platform was killed after starting Node-RED but before writing the pidfile.
// Only process-group leaders count: Node-RED leads its own group, while what its flows or palette
// installs spawn inherits the marker but stays in Node-RED's group (and goes with it).
func findInstanceProcesses(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if st, err := readProcStat(pid); err != nil || st.state == 'Z' || st.state == 'X' || st.pgid != pid {
			continue
		}
		if belongsTo(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalGroup sends sig to the process group led by pid (every Node-RED runs in its own group, so this
// also reaches npm or other children it spawned), falling back to the process alone.
func signalGroup(pid int, sig syscall.Signal) error {
	if st, err := readProcStat(pid); err == nil && st.pgid == pid {
		if err := syscall.Kill(-pid, sig); err == nil || !errors.Is(err, syscall.ESRCH) {
			return err
		}
	}
	err := syscall.Kill(pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// processRSS returns the resident set size of pid in bytes (VmRSS in /proc/<pid>/status).
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmRSS line")
}

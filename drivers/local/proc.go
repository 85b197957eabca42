package local

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// envInstanceDir marks a Node-RED process as belonging to an instance directory. It is checked in
// /proc/<pid>/environ because Node-RED sets process.title, which overwrites /proc/<pid>/cmdline once it
// listens (measured: cmdline becomes "node-red" followed by NULs); the environment block is left alone.
const envInstanceDir = "FLOWYARD_INSTANCE_DIR"

// procStat holds the fields of /proc/<pid>/stat the driver needs.
type procStat struct {
	state      byte   // R, S, D, Z (zombie), X (dead), ...
	ppid       int    // parent
	pgid       int    // process group
	startTicks uint64 // start time in clock ticks after boot: with the PID, it identifies one process
	cpuTicks   uint64 // user and system CPU time used, in clock ticks
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
	// fields[0] is field 3 of proc(5): state; ppid is field 4, pgrp field 5, starttime field 22.
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	ppid, err1 := strconv.Atoi(fields[1])
	pgid, err2 := strconv.Atoi(fields[2])
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat ppid, pgrp: %w", pid, err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	// utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat utime, stime: %w", pid, err)
	}
	return procStat{state: fields[0][0], ppid: ppid, pgid: pgid, startTicks: start, cpuTicks: utime + stime}, nil
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

// InstanceProcesses returns the PIDs of the Node-RED processes running for instance directory
// instanceDir (<data dir>/instances/<id>), sandboxed or not, whichever driver started them: for tests and
// tools that watch instances from outside the driver.
func InstanceProcesses(instanceDir string) []int { return findInstanceProcesses(instanceDir) }

// findInstanceProcesses lists live processes (not zombies) started for instance directory dir. It covers
// the window in which a platform was killed after starting Node-RED but before writing the pidfile.
// Only Node-REDs count (see runtimeGroup): what their flows or palette installs spawn inherits the marker
// but is neither.
func findInstanceProcesses(dir string) []int {
	self := os.Getpid()
	var pids []int
	for pid, st := range liveProcesses() {
		if _, ok := runtimeGroup(pid, st); ok && pid != self && belongsTo(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// liveProcesses yields every process of /proc that has not exited (no zombies), with its stat.
func liveProcesses() iter.Seq2[int, procStat] {
	return func(yield func(int, procStat) bool) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			st, err := readProcStat(pid)
			if err != nil || st.state == 'Z' || st.state == 'X' {
				continue
			}
			if !yield(pid, st) {
				return
			}
		}
	}
}

// childOf returns a live child of pid, or 0 (bwrap's processes have one child each).
func childOf(pid int) int {
	for child, st := range liveProcesses() {
		if st.ppid == pid {
			return child
		}
	}
	return 0
}

// nsPids are pid's numbers in each PID namespace from this process's own down to pid's (NSpid in
// /proc/<pid>/status); nil when unknown.
func nsPids(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return strings.Fields(rest)
		}
	}
	return nil
}

// sandboxInit returns the init (pid 1) of the sandbox that pid runs in, and its start time: pid's parent,
// when that is the first process of a PID namespace below this process's. It returns 0 for a process
// that runs unsandboxed, whose parent is the platform or the host's init.
func sandboxInit(pid int) (int, uint64) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, 0
	}
	parent := nsPids(st.ppid)
	if len(parent) <= ownNSDepth() || parent[len(parent)-1] != "1" {
		return 0, 0
	}
	parentStat, err := readProcStat(st.ppid)
	if err != nil {
		return 0, 0
	}
	return st.ppid, parentStat.startTicks
}

// runtimeGroup returns the process group of Node-RED pid, and whether pid is a Node-RED as the driver
// starts them: the leader of its own group (unsandboxed), or pid 2 of a sandbox, whose group bwrap's init
// (pid 1 there, its parent) leads. Signalled from outside, that init ignores SIGTERM (it has no handler)
// and dies of SIGKILL, which ends the whole sandbox.
func runtimeGroup(pid int, st procStat) (int, bool) {
	if st.pgid == pid {
		return pid, true
	}
	if ns := nsPids(pid); st.pgid == st.ppid && len(ns) > ownNSDepth() && ns[len(ns)-1] == "2" {
		return st.pgid, true
	}
	return 0, false
}

// ownNSDepth is how many PID namespaces this process sees itself in.
var ownNSDepth = sync.OnceValue(func() int { return len(nsPids(os.Getpid())) })

// signalGroup sends sig to the process group of Node-RED pid (see runtimeGroup), so that it also reaches
// npm or other children it spawned, falling back to the process alone.
func signalGroup(pid int, sig syscall.Signal) error {
	if st, err := readProcStat(pid); err == nil {
		if group, ok := runtimeGroup(pid, st); ok {
			if err := syscall.Kill(-group, sig); err == nil || !errors.Is(err, syscall.ESRCH) {
				return err
			}
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

package temporalenv

import (
	"os"
	"syscall"
)

// childProcAttr makes the kernel SIGKILL the dev server when its parent dies, however it dies, and puts
// it in its own process group so a terminal's ^C reaches only Flowyard, which then stops it in order.
//
// Pdeathsig fires when the thread that forked the child exits. The Go runtime keeps its threads for the
// life of the process, except a thread locked with runtime.LockOSThread whose goroutine returns; do not
// start a dev server from such a goroutine.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// terminate asks the dev server's process group to shut down.
func terminate(p *os.Process) error { return syscall.Kill(-p.Pid, syscall.SIGTERM) }

// forceKill kills the dev server's process group.
func forceKill(p *os.Process) error { return syscall.Kill(-p.Pid, syscall.SIGKILL) }

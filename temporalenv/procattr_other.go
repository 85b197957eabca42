//go:build !linux

package temporalenv

import (
	"os"
	"syscall"
)

// childProcAttr is empty outside Linux: there is no parent-death signal, so only Stop ends the child.
func childProcAttr() *syscall.SysProcAttr { return nil }

// terminate asks the dev server to shut down, falling back to a kill where signals are not supported.
func terminate(p *os.Process) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return p.Kill()
	}
	return nil
}

// forceKill kills the dev server.
func forceKill(p *os.Process) error { return p.Kill() }

package fake

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flowyard/flowyard/drivers"
)

func spec(id string) drivers.InstanceSpec {
	return drivers.InstanceSpec{InstanceID: id, Name: id, NodeRedVersion: "4.1.15", AdminToken: "t"}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	d := New(nil)
	st, err := d.Start(ctx, spec("a"))
	if err != nil || st.State != drivers.StateStarting || st.Port == 0 {
		t.Fatalf("start: %+v %v", st, err)
	}
	again, err := d.Start(ctx, spec("a"))
	if err != nil || again.PID != st.PID {
		t.Fatalf("idempotent start gave %+v %v, want pid %d", again, err, st.PID)
	}
	if st, err = d.WaitReady(ctx, "a"); err != nil || st.State != drivers.StateRunning {
		t.Fatalf("wait ready: %+v %v", st, err)
	}
	if ids, _ := d.Running(ctx); len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("running = %v", ids)
	}
	changed := spec("a")
	changed.SafeMode = true
	restarted, _ := d.Start(ctx, changed)
	if restarted.PID == st.PID || restarted.Port != st.Port {
		t.Fatalf("changed spec should restart on the same port: %+v vs %+v", restarted, st)
	}
	if err := d.Stop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Status(ctx, "a"); st.State != drivers.StateStopped {
		t.Fatalf("after stop: %s", st.State)
	}
	if err := d.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Status(ctx, "a"); st.State != drivers.StateMissing {
		t.Fatalf("after remove: %s", st.State)
	}
	if err := d.Stop(ctx, "a"); err != nil {
		t.Fatalf("stop of a removed instance: %v", err)
	}
	if lines, err := d.Logs(ctx, "a", time.Time{}, 10); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("logs of removed: %v %v", lines, err)
	}
	if got := d.CallCount(OpStart, "a"); got != 3 {
		t.Fatalf("start calls = %d", got)
	}
}

func TestScriptedFailures(t *testing.T) {
	ctx := context.Background()
	d := New(nil)
	d.Fail(OpStart, "a", 2, drivers.ErrNoFreePort)
	for i := 0; i < 2; i++ {
		if _, err := d.Start(ctx, spec("a")); !errors.Is(err, drivers.ErrNoFreePort) {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	if _, err := d.Start(ctx, spec("b")); err != nil {
		t.Fatalf("other instance should not fail: %v", err)
	}
	if _, err := d.Start(ctx, spec("a")); err != nil {
		t.Fatalf("third start: %v", err)
	}

	d.NeverReady("b")
	_, err := d.WaitReady(ctx, "b")
	var re *drivers.RuntimeError
	if !errors.Is(err, drivers.ErrNeverReady) || !errors.As(err, &re) {
		t.Fatalf("never ready: %v", err)
	}
	d.Ready("b")
	if _, err := d.WaitReady(ctx, "b"); err != nil {
		t.Fatal(err)
	}
}

func TestCrashes(t *testing.T) {
	ctx := context.Background()
	var exits []drivers.Status
	d := New(func(id string, st drivers.Status) { exits = append(exits, st) })

	d.CrashOnStart("a", 1, 1)
	d.Start(ctx, spec("a"))
	if _, err := d.WaitReady(ctx, "a"); !errors.Is(err, drivers.ErrExited) {
		t.Fatalf("crash on start: %v", err)
	}
	if len(exits) != 1 || exits[0].State != drivers.StateCrashed || exits[0].ExitCode != 1 {
		t.Fatalf("exits = %+v", exits)
	}
	d.Start(ctx, spec("a"))
	if _, err := d.WaitReady(ctx, "a"); err != nil {
		t.Fatalf("second start should come up: %v", err)
	}
	if err := d.Crash("a", 137, "boom"); err != nil {
		t.Fatal(err)
	}
	st, _ := d.Status(ctx, "a")
	if st.State != drivers.StateCrashed || st.ExitCode != 137 || len(exits) != 2 || st.LastLines[len(st.LastLines)-2] != "boom" {
		t.Fatalf("after crash: %+v, exits %d", st, len(exits))
	}
	if ids, _ := d.Running(ctx); len(ids) != 0 {
		t.Fatalf("crashed instance listed as running: %v", ids)
	}
	if err := d.Crash("a", 1); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("crash of a dead instance: %v", err)
	}
}

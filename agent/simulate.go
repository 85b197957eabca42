package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"
)

// SimulateOptions configure a fleet of simulated agents in one process.
type SimulateOptions struct {
	ForgeURL          string
	ProvisioningToken string
	Team              string // optional: the platform reads the team from the token
	Count             int
	FailureRate       float64       // fraction of installs that fail (state error)
	Delay             time.Duration // how long a simulated install takes
	Dir               string        // one sub-directory per device: device.yml and the agent's state
	Interval          time.Duration // check-in interval; default 60 s
	Log               *slog.Logger
	// Ready, when set, is called once every device has provisioned and started.
	Ready func()
}

// Simulate runs Count agents that do everything but run Node-RED: they provision on first start (kept in
// Dir), check in over HTTP and MQTT, download their snapshot and settings, and report success after Delay, or
// an error for FailureRate of the installs.
func Simulate(ctx context.Context, o SimulateOptions) error {
	if o.Count < 1 {
		return errors.New("simulate: --count must be at least 1")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	transport := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	hc := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	var wg sync.WaitGroup
	var started atomic.Int64
	errs := make(chan error, o.Count)
	for i := 0; i < o.Count; i++ {
		dir := filepath.Join(o.Dir, fmt.Sprintf("device-%05d", i))
		if err := writeSimConfig(dir, o, i); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the starts, 4 ms per device (40 s for 10,000), so the fleet provisions at a pace a platform on
			// SQLite keeps up with; faster, provisioning requests time out and their retries register extra devices.
			time.Sleep(time.Duration(rand.Int64N(4*int64(o.Count)+1)) * time.Millisecond)
			runner := &simRunner{delay: o.Delay, failureRate: o.FailureRate}
			opts := Options{ConfigPath: filepath.Join(dir, "device.yml"), Dir: dir, HTTP: hc, Interval: o.Interval,
				Log: o.Log.With("device", filepath.Base(dir)), ProvisionRetry: 5 * time.Second, Runner: runner}
			a, err := newAgent(ctx, opts)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", filepath.Base(dir), err)
				return
			}
			runner.out = a.logs
			if started.Add(1) == int64(o.Count) && o.Ready != nil {
				o.Ready()
			}
			_ = a.run(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// writeSimConfig writes a provisioning device.yml for a simulated device, unless it already provisioned.
func writeSimConfig(dir string, o SimulateOptions, i int) error {
	path := filepath.Join(dir, "device.yml")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	cfg := DeviceConfig{ForgeURL: o.ForgeURL, ProvisioningToken: o.ProvisioningToken, ProvisioningTeam: o.Team,
		DeviceName: fmt.Sprintf("sim-%05d", i)}
	b, err := yaml.Marshal(&cfg)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}

// simRunner pretends to install and run Node-RED.
type simRunner struct {
	delay       time.Duration
	failureRate float64
	out         io.Writer // the agent's live log: a simulated Node-RED says when it starts and stops
}

// say writes a line as Node-RED would.
func (r *simRunner) say(level, msg string) {
	if r.out != nil {
		fmt.Fprintf(r.out, "%s - [%s] %s\n", time.Now().Format("2 Jan 15:04:05"), level, msg)
	}
}

func (r *simRunner) Prepare(ctx context.Context, snap *Snapshot, _ *Settings, install bool) error {
	if install {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.delay):
		}
		if rand.Float64() < r.failureRate {
			return fmt.Errorf("simulated install failure of snapshot %s", snap.ID)
		}
	}
	return nil
}

func (r *simRunner) Start(context.Context) error {
	r.say("info", "Started flows (simulated)")
	return nil
}
func (r *simRunner) Stop(context.Context) error {
	r.say("info", "Stopped flows (simulated)")
	return nil
}
func (r *simRunner) Clean() error           { return nil }
func (r *simRunner) Prepared() bool         { return true } // nothing is installed, so nothing can be missing
func (r *simRunner) NodeRedVersion() string { return "simulated" }

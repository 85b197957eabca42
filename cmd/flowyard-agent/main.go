// Command flowyard-agent runs a device for Flowyard (or FlowFuse): `flowyard-agent --config device.yml
// [--dir DIR]`; sets one up with a one-time code first: `flowyard-agent --otc CODE --ff-url URL [--otc-no-start]
// [--otc-import-flows FLOWS.json]`; or runs a fleet of simulated devices: `flowyard-agent simulate --forge-url URL
// --provisioning-token TOKEN --count N [--failure-rate F] [--delay D] [--dir DIR]`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flowyard/flowyard/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "simulate" {
		err = simulate(ctx, os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowyard-agent:", err)
		os.Exit(1)
	}
}

func logger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flowyard-agent", flag.ContinueOnError)
	dir := fs.String("dir", "/opt/flowyard-device", "working directory (agent state and the Node-RED user dir)")
	config := fs.String("config", "device.yml", "device.yml (looked up in --dir when not found as given)")
	port := fs.Int("port", 0, "Node-RED port (default: the config's, else 1880)")
	interval := fs.Duration("interval", 60*time.Second, "check-in interval")
	npmCache := fs.String("npm-cache", "", "npm cache dir to install from (default: npm's)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Var(versionFlag{}, "version", "print the version and exit")
	var setup agent.SetupOptions
	fs.StringVar(&setup.Code, "otc", "", "set the device up with this one-time code first (with --ff-url)")
	fs.StringVar(&setup.Code, "o", "", "short for --otc")
	fs.StringVar(&setup.ForgeURL, "ff-url", "", "the platform's URL, for --otc")
	fs.StringVar(&setup.ForgeURL, "u", "", "short for --ff-url")
	fs.StringVar(&setup.ImportFlows, "otc-import-flows", "", "with --otc: a Node-RED flows file to import as the device's first target")
	noStart := fs.Bool("otc-no-start", false, "with --otc: only write device.yml, do not start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *config
	if _, err := os.Stat(path); err != nil && !filepath.IsAbs(path) {
		path = filepath.Join(*dir, path)
	}
	if setup.Code != "" || setup.ForgeURL != "" {
		if setup.ForgeURL == "" {
			return fmt.Errorf("--otc needs --ff-url")
		}
		if !filepath.IsAbs(*config) {
			path = filepath.Join(*dir, *config) // a new device.yml goes in the working dir, as FlowFuse's does
		}
		setup.ConfigPath, setup.Dir = path, *dir
		msg, err := agent.Setup(ctx, setup)
		if err != nil {
			return err
		}
		fmt.Println(msg)
		if *noStart {
			return nil
		}
	}
	return agent.Run(ctx, agent.Options{ConfigPath: path, Dir: *dir, Port: *port, Interval: *interval, NpmCache: *npmCache, Log: logger(*level)})
}

func simulate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flowyard-agent simulate", flag.ContinueOnError)
	var o agent.SimulateOptions
	fs.StringVar(&o.ForgeURL, "forge-url", "", "the platform's URL")
	fs.StringVar(&o.ProvisioningToken, "provisioning-token", "", "a provisioning token of the team")
	fs.StringVar(&o.Team, "team", "", "the team ID (default: the token's)")
	fs.IntVar(&o.Count, "count", 1, "how many devices")
	fs.Float64Var(&o.FailureRate, "failure-rate", 0, "fraction of installs that fail, 0 to 1")
	fs.DurationVar(&o.Delay, "delay", time.Second, "how long a simulated install takes")
	fs.StringVar(&o.Dir, "dir", "./simulated-devices", "where the devices keep their config and state")
	fs.DurationVar(&o.Interval, "interval", 60*time.Second, "check-in interval")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.ForgeURL == "" || o.ProvisioningToken == "" {
		return fmt.Errorf("simulate needs --forge-url and --provisioning-token")
	}
	o.Log = logger(*level)
	return agent.Simulate(ctx, o)
}

// versionFlag prints the version when given.
type versionFlag struct{}

func (versionFlag) String() string   { return "" }
func (versionFlag) IsBoolFlag() bool { return true }
func (versionFlag) Set(string) error {
	fmt.Println("flowyard-agent", agent.Version)
	os.Exit(0)
	return nil
}

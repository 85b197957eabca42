// Command flowyard runs the Flowyard platform. Subcommands: dev, serve, migrate, admin.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/platform"
)

const usage = `usage: flowyard <command> [flags]

commands:
  dev       everything embedded: SQLite, Temporal dev server, worker, broker, API
  serve     the API against an existing database and Temporal (production)
  worker    a Temporal worker alone (production)
  migrate   apply database migrations
  admin create-user --email E --password P [--name N] [--admin]

Run "flowyard <command> --help" for its flags.`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "flowyard:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command given\n\n%s", usage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	if cmd == "admin" {
		return runAdmin(ctx, rest)
	}
	cfg, err := config.Load(cmd, rest, os.Getenv)
	if err != nil {
		return err
	}
	log := cfg.Logger(os.Stderr)
	log.Info("starting", "command", cmd, "version", platform.Version, "config", cfg)
	platform.WatchShutdown(ctx, log, platform.ShutdownGrace, os.Exit)
	switch cmd {
	case "dev":
		return platform.RunDev(ctx, cfg, log)
	case "serve":
		return platform.RunServe(ctx, cfg, log)
	case "worker":
		return platform.RunWorker(ctx, cfg, log)
	case "migrate":
		return platform.Migrate(ctx, cfg, log)
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}

func runAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create-user" {
		return fmt.Errorf("unknown admin command\n\n%s", usage)
	}
	fs := flag.NewFlagSet("create-user", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	email := fs.String("email", "", "e-mail address")
	password := fs.String("password", "", "password (8 to 128 characters)")
	name := fs.String("name", "", "display name (default: the e-mail)")
	admin := fs.Bool("admin", false, "make the user a platform admin")
	dataDir := fs.String("data-dir", "", "data directory (FLOWYARD_DATA_DIR)")
	dbURL := fs.String("database-url", "", "database (FLOWYARD_DATABASE_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var cfgArgs []string
	if *dataDir != "" {
		cfgArgs = append(cfgArgs, "--data-dir", *dataDir)
	}
	if *dbURL != "" {
		cfgArgs = append(cfgArgs, "--database-url", *dbURL)
	}
	cfg, err := config.Load("admin", cfgArgs, os.Getenv)
	if err != nil {
		return err
	}
	if err := platform.CreateUser(ctx, cfg, *email, *name, *password, *admin); err != nil {
		return err
	}
	fmt.Println("created user", *email)
	return nil
}

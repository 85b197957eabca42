// Package platform assembles Flowyard's parts (store, API, Temporal, worker, broker) for each subcommand of
// the flowyard binary, so that cmd/ holds only flag parsing.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/relay"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/temporalenv"
)

// Version is set at build time.
var Version = "dev"

// shutdownGrace bounds how long in-flight requests may finish after SIGTERM (within ShutdownGrace).
const shutdownGrace = 10 * time.Second

// Migrate applies pending migrations, seeds the default platform objects, and creates the configured admin
// (FLOWYARD_ADMIN_EMAIL/PASSWORD) when it does not exist yet. It is safe to run on every deploy.
func Migrate(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	st, err := storage.Open(ctx, cfg.StoreURL())
	if err != nil {
		return err
	}
	defer st.Close()
	applied, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	log.Info("migrations applied", "count", len(applied), "names", applied)
	// A fresh production database gets the same defaults as `flowyard dev`; the admin only when configured,
	// so that a migration job never prints a generated password into its log.
	if cfg.AdminEmail != "" {
		return bootstrap(ctx, cfg, st, log)
	}
	if err := st.SeedDefaults(ctx); err != nil {
		return fmt.Errorf("seed defaults: %w", err)
	}
	return nil
}

// CreateUser adds a user from the command line.
func CreateUser(ctx context.Context, cfg config.Config, email, name, password string, admin bool) error {
	st, err := storage.Open(ctx, cfg.StoreURL())
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = (&services.Users{Store: st}).Create(ctx, services.Account{Email: email, Name: name, Password: password, Admin: admin})
	return describe(err)
}

// describe turns a domain error into one line for a terminal.
func describe(err error) error {
	if de, ok := domain.AsError(err); ok {
		msg := de.Message
		for _, v := range de.Validations {
			msg += fmt.Sprintf(" %s %s.", v.Field, v.Detail)
		}
		return errors.New(msg)
	}
	return err
}

// bootstrap seeds the default platform objects and the first admin.
func bootstrap(ctx context.Context, cfg config.Config, st *storage.Store, log *slog.Logger) error {
	if err := st.SeedDefaults(ctx); err != nil {
		return fmt.Errorf("seed defaults: %w", err)
	}
	email, password, generated := cfg.AdminEmail, cfg.AdminPassword, false
	if email == "" {
		email, password, generated = "admin@localhost", domain.NewSecret(12), true
	}
	if _, err := st.GetUserByEmail(ctx, email); err == nil {
		return nil
	} else if !domain.IsKind(err, domain.KindNotFound) {
		return err
	}
	// A generated password has been in a log: its holder must choose their own before doing anything else.
	if _, err := (&services.Users{Store: st}).Create(ctx, services.Account{Email: email, Name: "Administrator", Password: password,
		Admin: true, PasswordChangeRequired: generated}); err != nil {
		return describe(err)
	}
	if generated {
		// Printed once: the password is not stored anywhere but as a hash.
		log.Warn("created the platform admin with a generated password, shown only this once: sign in and change it",
			"signIn", cfg.PublicURL+"/", "email", email, "password", password)
	} else {
		log.Info("created the platform admin", "email", email)
	}
	return nil
}

// serveAPI runs the API until ctx ends, then drains it.
func serveAPI(ctx context.Context, cfg config.Config, log *slog.Logger, deps api.Deps) error {
	tuneGC(log)
	deps.Log = log
	deps.Config = api.Config{BodyLimit: cfg.BodyLimitMB << 20, SecureCookies: cfg.SecureCookies, TrustedProxies: cfg.TrustedProxies,
		Version: Version, PublicURL: cfg.PublicURL, EditorDomain: cfg.EditorDomain, AppsDomain: cfg.AppsDomain, InternalURL: cfg.InternalURL, WebhooksAllowPrivate: cfg.WebhooksAllowPrivate,
		BrokerURL: cfg.MQTTPublicURL, Limits: api.Limits{MaxJSONDepth: cfg.Limits.MaxJSONDepth,
			LoginFailuresPerAccount: cfg.Limits.LoginFailuresPerAccount, LoginFailuresPerIP: cfg.Limits.LoginFailuresPerIP,
			ProvisionsPerToken: cfg.Limits.ProvisionsPerToken, ProvisionsPerIP: cfg.Limits.ProvisionsPerIP,
			MaxTeamOperations: cfg.Limits.MaxTeamOperations}}
	srv := api.New(deps)
	errc := make(chan error, 1)
	go func() { errc <- srv.Listen(cfg.Listen) }()
	log.Info("API listening", "address", cfg.Listen, "url", cfg.PublicURL)
	// Start-up (migrations, scheme registration of the Kubernetes client, Temporal dial) leaves garbage the
	// heap would keep mapped for minutes; hand it back now, so an idle platform holds only what it uses.
	runtime.GC()
	debug.FreeOSMemory()
	select {
	case err := <-errc:
		return fmt.Errorf("serve API: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down the API")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	stopping.run("the API", func() {
		if err := srv.Shutdown(sctx); err != nil {
			// Requests in flight had their grace period; idle keep-alive connections (browsers, agents) do not
			// hold the process: the sockets close as it exits.
			log.Warn("the API did not drain within the grace period; closing the remaining connections", "grace", shutdownGrace)
		}
	})
	return nil
}

// RunServe runs the API against an already-migrated database (production).
func RunServe(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	st, err := storage.Open(ctx, cfg.StoreURL())
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := cfg.EnsureSecretKey()
	if err != nil {
		return err
	}
	sealer, err := domain.NewSealer(key)
	if err != nil {
		return err
	}
	tcfg, err := loadTemporalConfig(cfg, false)
	if err != nil {
		return err
	}
	reg := serveMetrics(ctx, cfg, log)
	c, err := dialTemporal(ctx, tcfg, log, reg)
	if err != nil {
		return err
	}
	defer c.Close()
	// Every workflow facade: rollouts and promotions started on any replica run on the workers.
	f := newFacades(c, tcfg)
	deps := f.apiDeps(api.Deps{Store: st, Sealer: sealer, WorkflowURL: tcfg.WorkflowURL,
		Ready: []api.Checker{{Name: "temporal", Check: func(ctx context.Context) error { return temporalenv.Healthy(ctx, c) }}}})
	deps.HTTPMetrics = apiMetrics(reg, st)
	deps.Billing, _ = newBilling(cfg, st, c, tcfg, log, nil)
	if deps.Mail, err = startMail(ctx, cfg, st, sealer, log); err != nil {
		return err
	}
	broker, stopRelay, err := startBroker(ctx, cfg, st, sealer, log, &deps, reg, relay.New(st, log))
	if err != nil {
		return err
	}
	defer stopping.run("the MQTT broker", func() { _ = broker.Close() })
	defer stopping.run("the device relay", stopRelay)
	if cfg.Driver == "kubernetes" {
		// Pods' logs are readable from any replica; local processes' only from the worker beside them.
		drv, err := newDriver(cfg, log, nil)
		if err != nil {
			return err
		}
		defer stopping.run("the instance driver", func() { _ = drv.Close() })
		deps.Logs = driverLogs(drv)
	}
	return serveAPI(ctx, cfg, log, deps)
}

// RunDev runs everything in one process with embedded defaults: migrations, seeds, the first admin, the
// Temporal dev server as a child process, the worker and the API.
func RunDev(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	key, err := cfg.EnsureSecretKey()
	if err != nil {
		return err
	}
	sealer, err := domain.NewSealer(key)
	if err != nil {
		return err
	}
	st, err := storage.Open(ctx, cfg.StoreURL())
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return err
	}
	if err := bootstrap(ctx, cfg, st, log); err != nil {
		return err
	}
	tcfg, err := loadTemporalConfig(cfg, true)
	if err != nil {
		return err
	}
	opts, err := tcfg.DevServerOptions(cfg.TemporalBin, filepath.Join(cfg.DataDir, "temporal"), log.With("component", "temporal"))
	if err != nil {
		return err
	}
	srv, err := temporalenv.StartDevServer(ctx, opts)
	if err != nil {
		return err
	}
	defer stopping.run("the Temporal dev server", func() { _ = srv.Stop(context.Background()) })
	log.Info("Temporal dev server running", "address", srv.Address(), "ui", srv.UIURL())
	reg := serveMetrics(ctx, cfg, log)
	e, err := startEngine(ctx, cfg, tcfg, st, log, reg)
	if err != nil {
		return err
	}
	defer stopping.run("the worker", e.stop)
	go e.reconcile(ctx)
	deps := e.apiDeps(api.Deps{Store: st, Sealer: sealer, HTTPMetrics: apiMetrics(reg, st)})
	if deps.Mail, err = startMail(ctx, cfg, st, sealer, log); err != nil {
		return err
	}
	broker, stopRelay, err := startBroker(ctx, cfg, st, sealer, log, &deps, reg, e.relay)
	if err != nil {
		return err
	}
	defer stopping.run("the MQTT broker", func() { _ = broker.Close() })
	defer stopping.run("the device relay", stopRelay)
	return serveAPI(ctx, cfg, log, deps)
}

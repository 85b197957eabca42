package platform

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/flowyard/flowyard/activities"
	"github.com/flowyard/flowyard/alerts"
	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/health"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/relay"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/temporalenv"
	"github.com/flowyard/flowyard/worker"
	"github.com/flowyard/flowyard/workflows/alert"
)

// The engine: a running Temporal worker with its driver, facades and alerts dispatcher, as `flowyard dev` and
// `flowyard worker` run it.

// engine is a running worker with what it needs.
type engine struct {
	client      client.Client
	tcfg        temporalenv.Config
	driver      drivers.Driver
	closeDriver func() error
	facades
	workers []sdkworker.Worker
	relay   *relay.Relay     // tells devices their target changed, through the broker holding each one
	billing *billing.Service // nil when billing is off
	store   *storage.Store
	log     *slog.Logger
}

// startEngine dials Temporal (recording the SDK's metrics into reg when it is not nil), builds the
// configured driver and runs the worker.
func startEngine(ctx context.Context, cfg config.Config, tcfg temporalenv.Config, st *storage.Store, log *slog.Logger, reg *prometheus.Registry) (*engine, error) {
	key, err := cfg.EnsureSecretKey()
	if err != nil {
		return nil, err
	}
	sealer, err := domain.NewSealer(key)
	if err != nil {
		return nil, err
	}
	c, err := dialTemporal(ctx, tcfg, log, reg)
	if err != nil {
		return nil, err
	}
	e := &engine{client: c, tcfg: tcfg, store: st, log: log, facades: newFacades(c, tcfg), relay: relay.New(st, log)}
	drv, err := newDriver(cfg, log, e.onRuntimeExit)
	if err != nil {
		c.Close()
		return nil, err
	}
	e.driver, e.closeDriver = drv, drv.Close
	// Expired sessions, codes, links and unread device answers are deleted by the workers (one per period).
	go (&storage.Sweeper{Store: st, Log: log.With("component", "sweep")}).Run(ctx)
	if reader, ok := drv.(drivers.UsageReader); ok {
		go (&health.Sampler{Store: st, Driver: reader, Log: log.With("component", "health")}).Run(ctx)
	}
	instanceActs := &activities.Instances{Store: st, Driver: drv, Sealer: sealer, ForgeURL: cfg.RuntimeAPIURL, Schedules: e.schedules,
		Devices: &devices.Service{Store: st, Sealer: sealer}, Notifier: e.relay}
	e.workers = []sdkworker.Worker{
		worker.New(c, e.instances.TaskQueue, worker.Activities{
			Instances: instanceActs,
			Snapshots: &activities.Snapshots{Service: &snapshots.Service{Store: st, Sealer: sealer}},
		}),
		worker.NewRollouts(c, e.rollouts.TaskQueue, &activities.Rollouts{Store: st, Devices: &devices.Service{Store: st, Sealer: sealer}, Notifier: e.relay}, &activities.StackMoves{Store: st}),
		worker.NewPipelines(c, e.pipelines.TaskQueue, &activities.Pipelines{Store: st, Snapshots: &snapshots.Service{Store: st, Sealer: sealer},
			Devices: &devices.Service{Store: st, Sealer: sealer}, Notifier: e.relay, Rollouts: &services.Rollouts{Operations: &services.Operations{Store: st, Log: log}},
			Targets: &services.DeviceTargets{Store: st, Devices: &devices.Service{Store: st, Sealer: sealer}, Notifier: e.relay, Log: log}}),
	}
	alertWorker, err := startAlerts(ctx, cfg, tcfg, st, sealer, c, log)
	if err != nil {
		_ = drv.Close()
		c.Close()
		return nil, err
	}
	e.workers = append(e.workers, alertWorker)
	svc, billingClient := newBilling(cfg, st, c, tcfg, log, e.instances)
	if svc != nil {
		e.billing, instanceActs.Usage = svc, svc
		e.workers = append(e.workers, worker.NewBilling(c, billingClient.TaskQueue, &activities.Billing{Service: svc, Teams: billingClient}))
	}
	for _, w := range e.workers {
		if err := w.Start(); err != nil {
			e.stop()
			return nil, fmt.Errorf("start worker: %w", err)
		}
	}
	if billingClient != nil {
		if err := billingClient.EnsureSchedule(ctx, cfg.Stripe.Reconcile); err != nil {
			e.stop()
			return nil, err
		}
		log.Info("billing on: Stripe reconciled on a schedule", "every", cfg.Stripe.Reconcile, "stripe", cfg.Stripe.APIURL)
	}
	return e, nil
}

func (e *engine) stop() {
	for _, w := range e.workers {
		w.Stop()
	}
	_ = e.closeDriver()
	e.client.Close()
}

// startAlerts builds the alerts worker (delivery workflows and their activities) and runs the dispatcher,
// which starts a delivery for each event and watches for devices offline too long, until ctx ends.
func startAlerts(ctx context.Context, cfg config.Config, tcfg temporalenv.Config, st *storage.Store, sealer *domain.Sealer, c client.Client, log *slog.Logger) (sdkworker.Worker, error) {
	d := &alerts.Deliverer{Store: st, Sealer: sealer, HTTP: alerts.SafeClient(cfg.WebhooksAllowPrivate), PublicURL: cfg.PublicURL}
	if cfg.MailEnabled() {
		sender, err := mail.NewSMTP(cfg.Mail.SMTPURL, cfg.Mail.From)
		if err != nil {
			return nil, err
		}
		d.Mail = sender
	}
	deliveries := &alert.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueAlerts)}
	dispatcher := &alerts.Dispatcher{Store: st, Start: deliveries.Start, Log: log.With("component", "alerts")}
	go dispatcher.Run(ctx)
	return worker.NewAlerts(c, deliveries.TaskQueue, &activities.Alerts{Deliverer: d}), nil
}

// apiDeps gives the API its view of the engine.
func (e *engine) apiDeps(d api.Deps) api.Deps {
	d = e.facades.apiDeps(d)
	d.Billing = e.billing
	d.WorkflowURL = e.tcfg.WorkflowURL
	d.Logs = driverLogs(e.driver)
	d.Ready = append(d.Ready, api.Checker{Name: "temporal", Check: func(ctx context.Context) error { return temporalenv.Healthy(ctx, e.client) }})
	if iso, ok := e.driver.(interface{ Isolated() (bool, string) }); ok {
		d.Ready = append(d.Ready, api.Checker{Name: "instances", Check: func(context.Context) error {
			if isolated, why := iso.Isolated(); !isolated {
				return api.Degraded("not isolated: " + why)
			}
			return nil
		}})
	}
	return d
}

// RunWorker runs a Temporal worker alone against the configured Temporal address (production).
func RunWorker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	tcfg, err := loadTemporalConfig(cfg, false)
	if err != nil {
		return err
	}
	st, err := storage.Open(ctx, cfg.StoreURL())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := ensureTemporalSetup(ctx, tcfg, log); err != nil {
		return err
	}
	reg := serveMetrics(ctx, cfg, log)
	e, err := startEngine(ctx, cfg, tcfg, st, log, reg)
	if err != nil {
		return err
	}
	defer stopping.run("the worker", e.stop)
	e.reconcile(ctx)
	if cfg.MQTTBroker == config.BrokerExternal {
		// Every process reaches every device through the external broker: the worker tells devices of the
		// targets its rollouts and promotions set at once.
		b, err := startExternalBroker(ctx, cfg, &devices.Service{Store: st}, log, false)
		if err != nil {
			return err
		}
		defer stopping.run("the MQTT broker connection", func() { _ = b.Close() })
		e.relay.Attach(b)
	}
	log.Info("worker running", "temporal", tcfg.Address, "namespace", tcfg.Namespace)
	<-ctx.Done()
	return nil
}

package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

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
	"github.com/flowyard/flowyard/drivers/kubernetes"
	"github.com/flowyard/flowyard/drivers/local"
	"github.com/flowyard/flowyard/health"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/metrics"
	"github.com/flowyard/flowyard/relay"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/temporalenv"
	"github.com/flowyard/flowyard/worker"
	"github.com/flowyard/flowyard/workflows/alert"
	"github.com/flowyard/flowyard/workflows/instance"
	"github.com/flowyard/flowyard/workflows/pipeline"
	"github.com/flowyard/flowyard/workflows/rollout"
	"github.com/flowyard/flowyard/workflows/snapshotschedule"
	"github.com/flowyard/flowyard/workflows/stackmove"
)

// loadTemporalConfig reads temporal.yaml (defaults when it is absent) and, in dev, points it at the embedded
// dev server's port.
func loadTemporalConfig(cfg config.Config, dev bool) (temporalenv.Config, error) {
	path := cfg.TemporalFile
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		path = ""
	}
	tcfg, err := temporalenv.LoadConfig(path)
	if err != nil {
		return tcfg, err
	}
	if dev {
		tcfg.Address = "127.0.0.1:" + strconv.Itoa(cfg.TemporalPort)
		tcfg.UIURL = "http://127.0.0.1:" + strconv.Itoa(cfg.TemporalPort+tcfg.DevServer.UIPortOffset)
	}
	return tcfg, nil
}

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

// facades are the workflow clients the API and the worker start and signal workflows with.
type facades struct {
	instances  *instance.Client
	rollouts   *rollout.Client
	pipelines  *pipeline.Client
	schedules  *snapshotschedule.Client
	stackMoves *stackmove.Client
}

func newFacades(c client.Client, tcfg temporalenv.Config) facades {
	return facades{
		instances: &instance.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueInstances)},
		rollouts:  &rollout.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueRollouts)},
		pipelines: &pipeline.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueuePipelines),
			InstanceQueue: tcfg.TaskQueue(domain.QueueInstances), RolloutQueue: tcfg.TaskQueue(domain.QueueRollouts)},
		schedules:  &snapshotschedule.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueInstances)},
		stackMoves: newStackMoves(c, tcfg),
	}
}

// apiDeps gives the API the facades.
func (f facades) apiDeps(d api.Deps) api.Deps {
	d.Instances, d.Rollouts, d.Pipelines, d.SnapshotSchedules = f.instances, f.rollouts, f.pipelines, f.schedules
	d.StackMoves = f.stackMoves
	return d
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
			Devices: &devices.Service{Store: st, Sealer: sealer}, Notifier: e.relay, Rollouts: &services.Rollouts{Operations: &services.Operations{Store: st, Log: log}}}),
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

// dialTemporal is temporalenv.Dial with the SDK's metrics recorded into reg (when not nil).
func dialTemporal(ctx context.Context, tcfg temporalenv.Config, log *slog.Logger, reg *prometheus.Registry) (client.Client, error) {
	opts, err := temporalenv.ClientOptions(tcfg, log)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		opts.MetricsHandler = metrics.NewTemporalHandler(reg)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", tcfg.Address, err)
	}
	return c, nil
}

// closableDriver is a driver with background work to stop.
type closableDriver interface {
	drivers.Driver
	Close() error
}

// newDriver builds the configured driver: local child processes, or pods through the Kubernetes API.
// onExit may be nil (the API reads logs and status only).
func newDriver(cfg config.Config, log *slog.Logger, onExit drivers.ExitFunc) (closableDriver, error) {
	log = log.With("component", "driver")
	if cfg.Driver != "kubernetes" {
		min, max, _ := cfg.PortRange() // validated with the config
		return local.New(local.Config{DataDir: cfg.DataDir, StacksDir: cfg.StacksDir, Logger: log, OnExit: onExit, PortMin: min, PortMax: max,
			Sandbox: local.SandboxMode(cfg.InstanceSandbox), DenyNetworks: cfg.InstanceDenyNetworks})
	}
	k := cfg.Kubernetes
	cs, err := kubernetes.NewClient(k.Kubeconfig)
	if err != nil {
		return nil, err
	}
	mc, err := kubernetes.NewMetricsClient(k.Kubeconfig)
	if err != nil {
		return nil, err
	}
	ns := k.Namespace
	if ns == "" {
		ns = kubernetes.InClusterNamespace()
	}
	if ns == "" {
		return nil, errors.New("kubernetes driver: set FLOWYARD_K8S_NAMESPACE (not running in a cluster)")
	}
	return kubernetes.New(kubernetes.Config{Client: cs, Metrics: mc, Namespace: ns, Image: k.Image, ImagePullSecrets: k.ImagePullSecrets,
		StorageClassName: k.StorageClass,
		DataSizeMB:       k.DataSizeMB, Logger: log, OnExit: onExit})
}

// newStackMoves is the facade that starts moves of a stack's instances, for the API.
func newStackMoves(c client.Client, tcfg temporalenv.Config) *stackmove.Client {
	return &stackmove.Client{Temporal: c, TaskQueue: tcfg.TaskQueue(domain.QueueRollouts), InstanceQueue: tcfg.TaskQueue(domain.QueueInstances)}
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

// onRuntimeExit starts a recovery for an instance whose Node-RED exited unasked, if it should be running.
func (e *engine) onRuntimeExit(instanceID string, st drivers.Status) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.log.Warn("instance runtime exited", "instance", instanceID, "reason", st.Reason)
	e.recover(ctx, instanceID)
}

// recover records a recover operation and starts it, unless another action already runs on the instance.
func (e *engine) recover(ctx context.Context, instanceID string) {
	flows := &services.Instances{Operations: &services.Operations{Store: e.store, Log: e.log}, Runner: e.instances}
	if err := flows.Recover(ctx, instanceID, e.instances); err != nil && !domain.IsKind(err, domain.KindNotFound) {
		e.log.Warn("recover instance", "instance", instanceID, "err", err)
	}
}

// reconcile, at start, restarts instances that should run but whose runtime is gone (after a host reboot,
// say) and that no workflow is already handling. Runtimes that survived a platform restart are re-adopted by
// the driver instead.
func (e *engine) reconcile(ctx context.Context) {
	list, err := e.store.ListInstancesByDesiredState(ctx, domain.InstanceRunning)
	if err != nil {
		e.log.Error("reconcile instances", "err", err)
		return
	}
	for _, in := range list {
		st, err := e.driver.Status(ctx, in.ID)
		if err != nil || st.State == drivers.StateRunning || st.State == drivers.StateStarting {
			continue
		}
		e.log.Info("restarting an instance whose runtime is gone", "instance", in.ID, "state", st.State)
		e.recover(ctx, in.ID)
	}
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

// ensureTemporalSetup registers the namespace and search attributes on any cluster.
func ensureTemporalSetup(ctx context.Context, tcfg temporalenv.Config, log *slog.Logger) error {
	c, err := temporalenv.Dial(ctx, tcfg, log)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", tcfg.Address, err)
	}
	defer c.Close()
	if err := temporalenv.EnsureNamespace(ctx, c, tcfg); err != nil {
		return err
	}
	return temporalenv.EnsureSearchAttributes(ctx, c, tcfg)
}

package platform

import (
	"errors"
	"log/slog"

	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/drivers/kubernetes"
	"github.com/flowyard/flowyard/drivers/local"
)

// The runtime driver the configuration names.

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

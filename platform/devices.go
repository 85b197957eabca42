package platform

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/comms"
	"github.com/flowyard/flowyard/comms/mosquitto"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/metrics"
	"github.com/flowyard/flowyard/storage"
)

// deviceBroker is how a process reaches devices: the embedded broker, or its connection to an external one.
type deviceBroker interface {
	api.DeviceBroker
	Check(ctx context.Context) error
	Close() error
}

// startBroker runs the devices' broker of an API process (the embedded one, or the connection to the external
// one, which consumes status messages) and gives the API its view of it: the broker to notify, the URL handed
// to devices, and a readiness check.
func startBroker(ctx context.Context, cfg config.Config, st *storage.Store, sealer *domain.Sealer, log *slog.Logger, deps *api.Deps, reg prometheus.Registerer) (deviceBroker, error) {
	svc := &devices.Service{Store: st, Sealer: sealer, ForgeURL: cfg.PublicURL, BrokerURL: cfg.MQTTPublicURL}
	if cfg.MQTTBroker == config.BrokerExternal {
		b, err := startExternalBroker(ctx, cfg, svc, log, true)
		if err != nil {
			return nil, err
		}
		deps.Broker, deps.DeviceAccounts = b, b
		deps.Ready = append(deps.Ready, api.Checker{Name: "broker", Check: b.Check})
		return b, nil
	}
	b, err := comms.Start(ctx, comms.Config{Listen: cfg.MQTTListen, WSListen: cfg.MQTTWSListen, Devices: svc, Log: log,
		TLSCertFile: cfg.MQTTTLSCert, TLSKeyFile: cfg.MQTTTLSKey,
		MaxPacketBytes: cfg.Limits.MQTTMaxPacketKB << 10, MessagesPerSecond: cfg.Limits.MQTTMessagesPerSecond, Burst: cfg.Limits.MQTTBurst})
	if err != nil {
		return nil, err
	}
	deps.Broker = b
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "mqtt", Name: "dropped_messages_total",
		Help: "MQTT messages devices published over their rate, acknowledged but dropped."}, func() float64 { return float64(b.Dropped()) }))
	deps.Ready = append(deps.Ready, api.Checker{Name: "broker", Check: b.Check})
	return b, nil
}

// startExternalBroker connects to the external broker as its dynamic-security admin. consume: this process
// records the devices' status messages (API processes); a worker only sends commands.
func startExternalBroker(ctx context.Context, cfg config.Config, svc *devices.Service, log *slog.Logger, consume bool) (*mosquitto.Broker, error) {
	return mosquitto.Start(ctx, mosquitto.Config{URL: cfg.External.URL, Username: cfg.External.Username, Password: cfg.External.Password,
		Devices: svc, Log: log, Consume: consume})
}

// lateNotifier tells devices their target changed through the broker once it runs (the worker starts
// first); until then, and in a worker without a broker, devices learn it on their next check-in.
type lateNotifier struct{ broker atomic.Pointer[notifyTarget] }

type notifyTarget struct{ api.DeviceBroker }

func (n *lateNotifier) set(b api.DeviceBroker) { n.broker.Store(&notifyTarget{b}) }

// NotifyDevices implements activities.DeviceNotifier.
func (n *lateNotifier) NotifyDevices(ctx context.Context, ids []string) error {
	b := n.broker.Load()
	if b == nil {
		return nil
	}
	for _, id := range ids {
		b.NotifyDevice(ctx, id)
	}
	return nil
}

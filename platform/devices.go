package platform

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/broker"
	"github.com/flowyard/flowyard/broker/mosquitto"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/metrics"
	"github.com/flowyard/flowyard/relay"
	"github.com/flowyard/flowyard/storage"
)

// deviceBroker is how a process reaches the devices it can reach itself: the embedded broker (the devices
// connected to it) or its connection to an external broker (every device). The relay hands it what is for those
// devices and, with the embedded broker, sends the rest to the other processes.
type deviceBroker interface {
	relay.Connections
	Check(ctx context.Context) error
	Close() error
}

// startBroker runs the devices' broker of an API process (the embedded one, or the connection to the external
// one, which consumes status messages), attaches it to the relay and gives the API its view of them: the relay
// to reach devices (connected here or to another replica), the URL handed to devices, and readiness checks. On
// Postgres the relay listens for the other processes' notifications until the returned stop is called.
func startBroker(ctx context.Context, cfg config.Config, st *storage.Store, sealer *domain.Sealer, log *slog.Logger, deps *api.Deps, reg prometheus.Registerer, rel *relay.Relay) (deviceBroker, func(), error) {
	svc := &devices.Service{Store: st, Sealer: sealer, ForgeURL: cfg.PublicURL, BrokerURL: cfg.MQTTPublicURL}
	b, err := startDeviceBroker(ctx, cfg, svc, log, deps, reg)
	if err != nil {
		return nil, nil, err
	}
	rel.Attach(b)
	deps.Broker = rel
	if _, ok := b.(relay.Live); ok {
		deps.DeviceLive = rel // live logs and actions reach the device on whichever replica holds it
	}
	if _, ok := b.(relay.Editor); ok {
		deps.DeviceEditor = rel // and so does startEditor
	}
	deps.Ready = append(deps.Ready, api.Checker{Name: "broker", Check: b.Check},
		api.Checker{Name: "relay", Check: func(ctx context.Context) error {
			if err := rel.Check(ctx); err != nil {
				return api.Degraded(err.Error())
			}
			return nil
		}})
	lctx, cancel := context.WithCancel(ctx)
	listened := make(chan struct{})
	go func() { defer close(listened); rel.Listen(lctx) }()
	return b, func() { cancel(); <-listened }, nil
}

// startDeviceBroker starts the broker the settings choose.
func startDeviceBroker(ctx context.Context, cfg config.Config, svc *devices.Service, log *slog.Logger, deps *api.Deps, reg prometheus.Registerer) (deviceBroker, error) {
	if cfg.MQTTBroker == config.BrokerExternal {
		b, err := startExternalBroker(ctx, cfg, svc, log, true)
		if err != nil {
			return nil, err
		}
		deps.DeviceAccounts = b
		return b, nil
	}
	b, err := broker.Start(ctx, broker.Config{Listen: cfg.MQTTListen, WSListen: cfg.MQTTWSListen, Devices: svc, Log: log,
		TLSCertFile: cfg.MQTTTLSCert, TLSKeyFile: cfg.MQTTTLSKey,
		MaxPacketBytes: cfg.Limits.MQTTMaxPacketKB << 10, MessagesPerSecond: cfg.Limits.MQTTMessagesPerSecond, Burst: cfg.Limits.MQTTBurst})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "mqtt", Name: "dropped_messages_total",
		Help: "MQTT messages devices published over their rate, acknowledged but dropped."}, func() float64 { return float64(b.Dropped()) }))
	return b, nil
}

// startExternalBroker connects to the external broker as its dynamic-security admin. consume: this process
// records the devices' status messages (API processes); a worker only sends commands.
func startExternalBroker(ctx context.Context, cfg config.Config, svc *devices.Service, log *slog.Logger, consume bool) (*mosquitto.Broker, error) {
	return mosquitto.Start(ctx, mosquitto.Config{URL: cfg.External.URL, Username: cfg.External.Username, Password: cfg.External.Password,
		Devices: svc, Log: log, Consume: consume})
}

package platform

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/comms"
	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/metrics"
	"github.com/flowyard/flowyard/relay"
	"github.com/flowyard/flowyard/storage"
)

// startBroker runs the embedded MQTT broker for devices, attaches it to the relay and gives the API its view of
// them: the relay to reach devices (connected here or to another replica), the URL handed to devices, and
// readiness checks. On Postgres the relay listens for the other processes' notifications until the returned
// stop is called.
func startBroker(ctx context.Context, cfg config.Config, st *storage.Store, sealer *domain.Sealer, log *slog.Logger, deps *api.Deps, reg prometheus.Registerer, rel *relay.Relay) (*comms.Broker, func(), error) {
	svc := &devices.Service{Store: st, Sealer: sealer, ForgeURL: cfg.PublicURL, BrokerURL: cfg.MQTTPublicURL}
	b, err := comms.Start(ctx, comms.Config{Listen: cfg.MQTTListen, WSListen: cfg.MQTTWSListen, Devices: svc, Log: log,
		TLSCertFile: cfg.MQTTTLSCert, TLSKeyFile: cfg.MQTTTLSKey,
		MaxPacketBytes: cfg.Limits.MQTTMaxPacketKB << 10, MessagesPerSecond: cfg.Limits.MQTTMessagesPerSecond, Burst: cfg.Limits.MQTTBurst})
	if err != nil {
		return nil, nil, err
	}
	rel.Attach(b)
	deps.Broker = rel
	deps.DeviceLive = b // devices connected to this process only (docs/ARCHITECTURE.md §6)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "mqtt", Name: "dropped_messages_total",
		Help: "MQTT messages devices published over their rate, acknowledged but dropped."}, func() float64 { return float64(b.Dropped()) }))
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

package broker

import (
	"context"
	"time"
)

// Several `flowyard serve` replicas share one store, each with its own broker: a device's connection flag names
// the broker that holds it (its platformID), and each broker records in the store that it is alive. A broker
// that starts, and each broker every aliveEvery, marks disconnected only the devices of brokers not seen for
// aliveFor (a replica that was killed), never those connected to a replica that runs; one that closes marks its
// own devices disconnected.
const (
	aliveEvery = 10 * time.Second
	aliveFor   = 3 * aliveEvery
)

// alive records the broker alive and sweeps the connections of the brokers that are gone.
func (b *Broker) alive(ctx context.Context) error {
	at := time.Now()
	if err := b.store.BrokerAlive(ctx, b.platformID, at); err != nil {
		return err
	}
	n, err := b.store.SweepDeviceConnections(ctx, at, at.Add(-aliveFor))
	if n > 0 {
		b.log.Info("marked disconnected the devices of brokers that are gone", "devices", n)
	}
	return err
}

// keepAlive runs alive every aliveEvery until Close.
func (b *Broker) keepAlive() {
	tick := time.NewTicker(aliveEvery)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), aliveEvery)
			if err := b.alive(ctx); err != nil {
				b.log.Warn("record the broker alive", "err", err)
			}
			cancel()
		}
	}
}

// forget marks the devices connected here disconnected (their connections are closed) and the broker gone.
func (b *Broker) forget() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.store.ForgetBroker(ctx, b.platformID, time.Now()); err != nil {
		b.log.Warn("record the broker's devices disconnected", "err", err)
	}
}

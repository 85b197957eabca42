package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Default publish rate of one device. An agent publishes a status every heartbeat and, while its logs are
// watched, a few log batches a second; 20 a second with bursts of 100 leaves it ample room.
const (
	DefaultMessagesPerSecond = 20
	DefaultBurst             = 100
)

// rate is the publish rate allowed to each device: a token bucket of burst tokens refilled at perSecond.
type rate struct {
	perSecond float64
	burst     float64
}

func newRate(perSecond, burst int) rate {
	if perSecond <= 0 {
		perSecond = DefaultMessagesPerSecond
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	return rate{perSecond: float64(perSecond), burst: float64(burst)}
}

func (r rate) bucket(at time.Time) *bucket {
	return &bucket{rate: r, tokens: r.burst, at: at}
}

// bucket is one connection's allowance. A device that keeps publishing once it is empty has its messages
// dropped; once it has had a burst's worth dropped without pausing long enough to refill, it is flooding, and
// is disconnected.
type bucket struct {
	rate
	mu      sync.Mutex
	tokens  float64
	at      time.Time
	dropped int // dropped since the bucket last had a whole token
}

// verdict is what happens to one publish.
type verdict int

const (
	accept verdict = iota
	drop
	disconnect
)

func (b *bucket) take(at time.Time) verdict {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+at.Sub(b.at).Seconds()*b.perSecond)
	b.at = at
	if b.tokens >= 1 {
		b.tokens--
		b.dropped = 0
		return accept
	}
	b.dropped++
	if float64(b.dropped) > b.burst {
		return disconnect
	}
	return drop
}

// Dropped counts the messages devices published over their rate since the broker started.
func (b *Broker) Dropped() uint64 { return b.dropped.Load() }

// OnPublish holds each device to its publish rate. A message over the rate is acknowledged (so the device does
// not send it again) but not delivered; a device that floods is disconnected.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the platform's own commands
	}
	conn := h.connectionOf(cl)
	if conn == nil {
		return pk, nil // not signed in: the ACL refuses it
	}
	switch conn.flow.take(time.Now()) {
	case accept:
		return pk, nil
	case drop:
		if h.b.dropped.Add(1)%100 == 1 {
			h.b.log.Warn("dropping messages of a device that publishes over its rate", "device", conn.grant.deviceID,
				"topic", pk.TopicName, "droppedSinceStart", h.b.dropped.Load())
		}
		return pk, packets.CodeSuccessIgnore
	default:
		h.b.dropped.Add(1)
		h.b.log.Warn("disconnecting a device that floods the broker", "device", conn.grant.deviceID, "topic", pk.TopicName)
		_ = h.b.srv.DisconnectClient(cl, packets.ErrQuotaExceeded)
		return pk, packets.ErrRejectPacket
	}
}

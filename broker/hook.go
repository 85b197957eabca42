package broker

import (
	"bytes"
	"context"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// hook authenticates devices, enforces the topic ACLs and keeps the connected flag of each device.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "flowyard-devices" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPublish}, []byte{b})
}

// OnConnectAuthenticate accepts device:<team>:<device> with the device's broker password, and only with the
// client ID equal to the username, so no device can take over another's session.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	username := string(pk.Connect.Username)
	teamID, deviceID, ok := devices.ParseBrokerUsername(username)
	if !ok {
		h.b.log.Warn("refused an MQTT client that is not a device", "username", username, "remote", cl.Net.Remote)
		return false
	}
	if cl.ID != username {
		h.b.log.Warn("refused a device whose client ID is not its username", "device", deviceID, "clientId", cl.ID)
		return false
	}
	if h.b.signingIn.Add(1) > h.b.maxSigningIn {
		h.b.signingIn.Add(-1)
		h.b.refusedBusy.Add(1)
		return false // too many sign-ins wait for the store: this one comes back later (not logged: the broker is busy)
	}
	defer h.b.signingIn.Add(-1)
	var d *storage.Device
	var err error
	if !h.b.work.Wait(deviceID, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err = h.b.devices.DeviceByBrokerPassword(ctx, string(pk.Connect.Password))
	}) {
		return false // the broker is closing
	}
	if err != nil && !domain.IsKind(err, domain.KindUnauthorized) {
		// The store could not check the password (busy or down): the device is refused this time and reconnects.
		h.b.log.Error("could not check a device's broker credentials", "device", deviceID, "remote", cl.Net.Remote, "err", err)
		return false
	}
	if err != nil || d.ID != deviceID || d.TeamID != teamID {
		h.b.log.Warn("refused a device with bad broker credentials", "device", deviceID, "remote", cl.Net.Remote, "err", err)
		return false
	}
	g := grantOf(d)
	if !h.willAllowed(cl, g, pk) {
		return false
	}
	if !h.b.handover.takeOver(h.b.srv, cl, deviceID, h.b.doors.signIn) {
		h.b.log.Warn("refused a device whose earlier connection did not end, or that connected again meanwhile", "device", deviceID, "remote", cl.Net.Remote)
		return false
	}
	h.b.mu.Lock()
	if old := h.b.clients[deviceID]; old != nil && old.client != cl {
		h.b.log.Info("a second connection of the device takes over its session", "device", deviceID, "remote", cl.Net.Remote)
	}
	h.b.clients[deviceID] = &connection{client: cl, grant: g, flow: h.b.rate.bucket(time.Now())}
	h.b.mu.Unlock()
	return true
}

// willAllowed holds a Last Will to the rule of publishes: the broker publishes a will on the client's behalf
// when its connection drops, and mochi-mqtt does so without asking OnACLCheck. A device with a will on a topic
// it may not publish on is refused at CONNECT (MQTT 3.1.1 return code 5, not authorized; MQTT 5 clients get
// 0x86, the only refusal this hook can send) rather than having the will quietly dropped, so a misconfigured
// client learns of it. A retained will never reaches this check: the broker does not offer retain (see Start)
// and refuses it at CONNECT.
func (h *hook) willAllowed(cl *mqtt.Client, g grant, pk packets.Packet) bool {
	if !pk.Connect.WillFlag || g.canPublish(pk.Connect.WillTopic) {
		return true
	}
	h.b.log.Warn("refused a device whose Last Will is on a topic outside its ACL", "device", g.deviceID, "topic", pk.Connect.WillTopic,
		"remote", cl.Net.Remote)
	return false
}

func (h *hook) grantOf(cl *mqtt.Client) (grant, bool) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	conn := h.connectionLocked(cl)
	if conn == nil {
		return grant{}, false
	}
	return conn.grant, true
}

// connectionOf is the signed-in connection of the client; nil when it is not (or no longer) the device's.
func (h *hook) connectionOf(cl *mqtt.Client) *connection {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return h.connectionLocked(cl)
}

func (h *hook) connectionLocked(cl *mqtt.Client) *connection {
	_, deviceID, ok := devices.ParseBrokerUsername(string(cl.Properties.Username))
	if !ok {
		return nil
	}
	conn := h.b.clients[deviceID]
	if conn == nil || conn.client != cl {
		return nil
	}
	return conn
}

// OnACLCheck applies docs/device-protocol.md §3.7. A refused subscription gets a failure code in its SUBACK; a refused
// publish is dropped. Both are logged.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	g, ok := h.grantOf(cl)
	allowed := ok && ((write && g.canPublish(topic)) || (!write && g.canSubscribe(topic)))
	if !allowed {
		verb := "subscribe to"
		if write {
			verb = "publish on"
		}
		h.b.log.Warn("refused a device to "+verb+" a topic outside its ACL", "client", cl.ID, "topic", topic)
	}
	return allowed
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	_, deviceID, _ := devices.ParseBrokerUsername(string(cl.Properties.Username))
	h.b.setConnected(deviceID, true)
}

// OnDisconnect marks the device disconnected, unless a newer connection of it took over.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	_, deviceID, ok := devices.ParseBrokerUsername(string(cl.Properties.Username))
	if !ok {
		return
	}
	h.b.mu.Lock()
	conn := h.b.clients[deviceID]
	current := conn != nil && conn.client == cl
	if current {
		delete(h.b.clients, deviceID)
	}
	h.b.mu.Unlock()
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.log.Warn("disconnected a device that sent an oversized packet", "device", deviceID)
	}
	if !current || cl.IsTakenOver() || h.b.closed.Load() {
		return
	}
	h.b.setConnected(deviceID, false)
}

// setConnected records a connection opening or closing, in order with the device's status messages.
func (b *Broker) setConnected(deviceID string, connected bool) {
	b.statuses.Seal(deviceID)
	b.work.Later(deviceID, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Stamped when recorded, after the statuses queued before it: a disconnection is never older than
		// the last status recorded.
		if err := b.store.SetDeviceConnectedTo(ctx, deviceID, b.platformID, connected, time.Now()); err != nil {
			b.log.Warn("record device connection", "device", deviceID, "connected", connected, "err", err)
		}
	})
}

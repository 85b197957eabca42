package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker"
	"github.com/flowyard/flowyard/internal/certtest"
)

// withTLS serves the fixture's TCP listener over TLS with the certificate in dir.
func withTLS(cert certtest.SelfSigned) func(*broker.Config) {
	return func(c *broker.Config) { c.TLSCertFile, c.TLSKeyFile = cert.CertFile, cert.KeyFile }
}

// trusting makes a paho client verify the broker against roots.
func trusting(roots *x509.CertPool) func(*paho.ClientOptions) {
	return func(o *paho.ClientOptions) { o.SetTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}) }
}

// TestTLSListenerServesDevices: with a certificate, the TCP listener speaks MQTT over TLS and nothing else: a
// device that trusts the certificate signs in and gets its commands; a plain MQTT client and one that does not
// trust the certificate get no session.
func TestTLSListenerServesDevices(t *testing.T) {
	cert := certtest.WriteSelfSigned(t, t.TempDir(), "127.0.0.1")
	f := newFixture(t, withTLS(cert))
	d := f.register(t, &f.apps[0])

	c, err := connect(t, "ssl://"+f.broker.Addr(), d.username, d.username, d.password, trusting(cert.Pool))
	require.NoError(t, err)
	require.EqualValues(t, 0, c.subscribe(t, topic(f.team, d.id, "command")))
	waitFor(t, "the device to show connected", func() bool { return f.get(t, d.id).Connected })
	c.publish(t, topic(f.team, d.id, "status"), map[string]any{"state": "unknown", "snapshot": nil, "application": nil, "project": nil, "agentVersion": "4.2.1"})
	assert.Equal(t, "update", c.next(t)["command"], "the platform answers over the TLS connection")

	_, err = connect(t, "tcp://"+f.broker.Addr(), d.username, d.username, d.password)
	assert.Error(t, err, "plain MQTT on the TLS port")
	_, err = connect(t, "ssl://"+f.broker.Addr(), d.username, d.username, d.password, trusting(x509.NewCertPool()))
	assert.Error(t, err, "a client that does not trust the certificate")
	assert.Equal(t, 1, f.broker.Connected())
}

// TestTLSCertificateRenewedOnDiskIsServedWithoutARestart: a certificate replaced in its files (as cert-manager
// renews a mounted Secret) is served from the next connection on; files that stop loading keep the last good
// certificate serving.
func TestTLSCertificateRenewedOnDiskIsServedWithoutARestart(t *testing.T) {
	dir := t.TempDir()
	first := certtest.WriteSelfSigned(t, dir, "127.0.0.1")
	f := newFixture(t, withTLS(first))
	d := f.register(t, nil)
	url := "ssl://" + f.broker.Addr()
	dial := func(roots *x509.CertPool) error {
		c, err := connect(t, url, d.username, d.username, d.password, trusting(roots))
		if err == nil {
			c.cl.Disconnect(0)
		}
		return err
	}
	require.NoError(t, dial(first.Pool))

	renewed := certtest.WriteSelfSigned(t, dir, "127.0.0.1") // the same files, a new key and certificate
	assert.NoError(t, dial(renewed.Pool), "the renewed certificate")
	assert.Error(t, dial(first.Pool), "the old certificate is no longer served")

	require.NoError(t, os.WriteFile(renewed.KeyFile, []byte("half-written"), 0o600))
	assert.NoError(t, dial(renewed.Pool), "a key that does not load keeps the last good pair")
}

func TestTLSListenerNeedsAUsableCertificateToStart(t *testing.T) {
	cert := certtest.WriteSelfSigned(t, t.TempDir(), "127.0.0.1")
	f := newFixture(t)
	for name, files := range map[string][2]string{
		"missing key":      {cert.CertFile, filepath.Join(t.TempDir(), "missing.pem")},
		"key for the cert": {cert.CertFile, cert.CertFile},
	} {
		_, err := broker.Start(context.Background(), broker.Config{Listen: "127.0.0.1:0", Devices: f.svc, Log: slog.New(slog.DiscardHandler),
			TLSCertFile: files[0], TLSKeyFile: files[1]})
		assert.ErrorContains(t, err, "MQTT TLS certificate", name)
	}
}

package broker

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// certFiles serves the TLS listener's certificate from a PEM certificate (chain) and key file, read again when
// their content changes: a certificate renewed on disk (cert-manager writing a Kubernetes Secret, which the
// kubelet swaps into the mounted volume) is served from the next handshake on, without a restart. Reading two
// small files costs far less than the handshake it precedes.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu              sync.Mutex
	certPEM, keyPEM []byte
	current         *tls.Certificate
}

// newCertFiles loads the pair once, so that a missing or broken file fails the broker's start.
func newCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.certificate(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// certificate is tls.Config.GetCertificate. A pair that no longer loads (caught between the two files' writes,
// or broken) keeps the last good one serving, with a warning.
func (c *certFiles) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	certPEM, err1 := os.ReadFile(c.certFile)
	keyPEM, err2 := os.ReadFile(c.keyFile)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err1 == nil && err2 == nil && bytes.Equal(certPEM, c.certPEM) && bytes.Equal(keyPEM, c.keyPEM) {
		return c.current, nil
	}
	err := err1
	if err == nil {
		err = err2
	}
	var pair tls.Certificate
	if err == nil {
		pair, err = tls.X509KeyPair(certPEM, keyPEM)
	}
	if err != nil {
		err = fmt.Errorf("MQTT TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
		if c.current == nil {
			return nil, err
		}
		c.log.Warn("keeping the previous MQTT TLS certificate", "err", err)
		return c.current, nil
	}
	if c.current != nil {
		c.log.Info("MQTT TLS certificate reloaded", "cert", c.certFile)
	}
	c.certPEM, c.keyPEM, c.current = certPEM, keyPEM, &pair
	return c.current, nil
}

// tlsConfig is the listener's: TLS 1.2 or newer, Go's default cipher suites.
func (c *certFiles) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.certificate}
}

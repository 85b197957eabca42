package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	metrics "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/flowyard/flowyard/drivers"
)

// DefaultImage is the image template used when Config.Image is empty: the official Node-RED image, with the
// Node.js major version as a tag suffix when the stack names one (e.g. nodered/node-red:4.1.15-22).
const DefaultImage = "nodered/node-red:{{.NodeRedVersion}}{{with .NodeMajor}}-{{.}}{{end}}"

// DefaultRedJS is where the official image keeps Node-RED's entry point.
const DefaultRedJS = "/usr/src/node-red/node_modules/node-red/red.js"

// Config configures a Kubernetes driver. Client and Namespace are required.
type Config struct {
	Client    k8s.Interface
	Namespace string // where every instance's objects live
	// Metrics reads the metrics API (metrics.k8s.io) for Usage; nil: instances are not measured.
	Metrics metrics.Interface
	// Image is a text/template for the container image, with the fields NodeRedVersion, NodeVersion and
	// NodeMajor of the instance's stack. Default DefaultImage.
	Image            string
	ImagePullPolicy  corev1.PullPolicy // default IfNotPresent
	ImagePullSecrets []string
	RedJS            string // path of red.js in the image; default DefaultRedJS
	// CPURequestPercent is the share of the CPU limit that a pod requests. Node-RED idles near zero and
	// bursts on deploys, so requesting the whole limit would waste the cluster. Default 25.
	CPURequestPercent int
	// DataSizeMB is the size each instance's PersistentVolumeClaim requests for its user directory (palette
	// modules, files flows write); default 1024. A claim keeps the size it was made with.
	DataSizeMB int
	// StorageClassName is the storage class of those claims; empty: the cluster's default class.
	StorageClassName string
	Logger           *slog.Logger
	OnExit           drivers.ExitFunc // called when a runtime's container exits unasked; may be nil
	ReadyTimeout     time.Duration    // how long WaitReady waits (image pulls included); default 5m
	PollInterval     time.Duration    // WaitReady's polling period; default 1s
	// HTTPClient calls Node-RED's admin API (flows/state) through the instance's Service. Default: 2s timeout.
	HTTPClient   *http.Client
	FieldManager string // server-side apply field manager; default "flowyard"
}

func (c *Config) setDefaults() error {
	if c.Client == nil {
		return errors.New("kubernetes driver: Client is required")
	}
	if c.Namespace == "" {
		return errors.New("kubernetes driver: Namespace is required")
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if c.RedJS == "" {
		c.RedJS = DefaultRedJS
	}
	if c.CPURequestPercent <= 0 || c.CPURequestPercent > 100 {
		c.CPURequestPercent = 25
	}
	if c.DataSizeMB <= 0 {
		c.DataSizeMB = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 5 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 2 * time.Second}
	}
	if c.FieldManager == "" {
		c.FieldManager = "flowyard"
	}
	_, err := template.New("image").Parse(c.Image)
	if err != nil {
		return fmt.Errorf("kubernetes driver: image template: %w", err)
	}
	return nil
}

// imageFor renders the image template for a stack.
func (c *Config) imageFor(nodeRedVersion, nodeVersion string) (string, error) {
	tpl, err := template.New("image").Option("missingkey=error").Parse(c.Image)
	if err != nil {
		return "", err
	}
	major, _, _ := strings.Cut(nodeVersion, ".")
	var b bytes.Buffer
	err = tpl.Execute(&b, struct{ NodeRedVersion, NodeVersion, NodeMajor string }{nodeRedVersion, nodeVersion, major})
	if err != nil {
		return "", fmt.Errorf("image template: %w", err)
	}
	return b.String(), nil
}

// NewClient connects to the cluster: with the kubeconfig file when one is named, else with the pod's service
// account (in-cluster).
func NewClient(kubeconfig string) (k8s.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}

// restConfig reads a kubeconfig file, or the in-cluster service account when kubeconfig is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return cfg, nil
}

// serviceAccountNamespaceFile is where Kubernetes tells a pod its namespace.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// InClusterNamespace returns the namespace this pod runs in, or "" outside a cluster.
func InClusterNamespace() string {
	b, err := os.ReadFile(serviceAccountNamespaceFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

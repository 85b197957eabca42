package kubernetes

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metrics "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/flowyard/flowyard/drivers"
)

var _ drivers.UsageReader = (*Driver)(nil)

// Usage implements drivers.UsageReader from the cluster's metrics API (metrics.k8s.io, served by
// metrics-server): each instance pod's CPU (a rate the API averages over its window, in percent of one core)
// and working-set memory, summed over its containers. Without a metrics client, or on a cluster that does not
// serve the API, it measures nothing and says so in no error: instances then have no health chart.
func (d *Driver) Usage(ctx context.Context) (map[string]drivers.Usage, error) {
	out := map[string]drivers.Usage{}
	if d.cfg.Metrics == nil {
		return out, nil
	}
	list, err := d.cfg.Metrics.MetricsV1beta1().PodMetricses(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelInstanceID})
	if apierrors.IsNotFound(err) || apierrors.IsServiceUnavailable(err) {
		return out, nil // no metrics-server in this cluster (or not ready yet)
	}
	if err != nil {
		return nil, fmt.Errorf("read pod metrics: %w", err)
	}
	for _, pm := range list.Items {
		id := pm.Labels[LabelInstanceID]
		if id == "" {
			continue
		}
		u := out[id]
		for _, c := range pm.Containers {
			u.CPUPercent += float64(c.Usage.Cpu().MilliValue()) / 10
			u.MemoryBytes += c.Usage.Memory().Value()
		}
		out[id] = u
	}
	return out, nil
}

// NewMetricsClient builds a client of the metrics API from the same configuration as NewClient.
func NewMetricsClient(kubeconfig string) (metrics.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return metrics.NewForConfig(cfg)
}

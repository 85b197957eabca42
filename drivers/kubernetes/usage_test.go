package kubernetes

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func podMetrics(name, instanceID, namespace string, containers map[string][2]string) *metricsv1beta1.PodMetrics {
	pm := &metricsv1beta1.PodMetrics{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{}}}
	if instanceID != "" {
		pm.Labels[LabelInstanceID] = instanceID
	}
	for cname, u := range containers {
		pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: cname, Usage: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(u[0]), corev1.ResourceMemory: resource.MustParse(u[1])}})
	}
	return pm
}

// TestUsageFromTheMetricsAPI reads the instances' pods from the metrics API (the metrics clientset's fake):
// CPU in percent of a core and working-set bytes, summed over containers; pods of other namespaces and pods
// that are no instance are left out; a cluster without metrics-server measures nothing and is no error.
func TestUsageFromTheMetricsAPI(t *testing.T) {
	mc := metricsfake.NewSimpleClientset()
	// The fake's tracker files PodMetrics under the resource its kind guesses (podmetricses), while the
	// client lists "pods" of metrics.k8s.io, so the objects go in under the resource the API serves them as.
	gvr := metricsv1beta1.SchemeGroupVersion.WithResource("pods")
	for _, pm := range []*metricsv1beta1.PodMetrics{
		podMetrics("line-1-abc", "inst-1", testNamespace, map[string][2]string{"node-red": {"250m", "120Mi"}, "sidecar": {"50m", "8Mi"}}),
		podMetrics("line-2-abc", "inst-2", testNamespace, map[string][2]string{"node-red": {"1500m", "300Mi"}}),
		podMetrics("elsewhere", "inst-3", "other-namespace", map[string][2]string{"node-red": {"1", "1Gi"}}),
		podMetrics("flowyard-api", "", testNamespace, map[string][2]string{"api": {"1", "1Gi"}}),
	} {
		require.NoError(t, mc.Tracker().Create(gvr, pm, pm.Namespace))
	}
	d := newCluster(t).driver(func(c *Config) { c.Metrics = mc })
	got, err := d.Usage(context.Background())
	require.NoError(t, err)
	assert.Len(t, got, 2)
	assert.InDelta(t, 30.0, got["inst-1"].CPUPercent, 0.001)
	assert.Equal(t, int64(128<<20), got["inst-1"].MemoryBytes)
	assert.InDelta(t, 150.0, got["inst-2"].CPUPercent, 0.001)

	missing := metricsfake.NewSimpleClientset()
	missing.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "")
	})
	none, err := newCluster(t).driver(func(c *Config) { c.Metrics = missing }).Usage(context.Background())
	require.NoError(t, err)
	assert.Empty(t, none)
	none, err = newCluster(t).driver().Usage(context.Background())
	require.NoError(t, err)
	assert.Empty(t, none)
}

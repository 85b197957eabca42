package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/nodered"
)

var ctx = context.Background()

func getDeployment(t *testing.T, c *cluster, id string) *appsv1.Deployment {
	t.Helper()
	dep, err := c.cs.AppsV1().Deployments(testNamespace).Get(ctx, objectName(id), metav1.GetOptions{})
	require.NoError(t, err)
	return dep
}

func TestStartCreatesDeploymentSecretConfigMapAndService(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	st, err := d.Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	assert.Equal(t, drivers.StateStarting, st.State, "no pod yet")
	assert.Equal(t, "http://nr-inst1.flowyard-instances.svc:1880", st.URL)
	assert.True(t, st.MemoryLimitEnforced)

	dep := getDeployment(t, c, "inst1")
	assert.Equal(t, int32(1), *dep.Spec.Replicas)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, dep.Spec.Strategy.Type, "never two Node-REDs of one instance")
	assert.Equal(t, map[string]string{LabelInstanceID: "inst1"}, dep.Spec.Selector.MatchLabels)
	assert.Equal(t, "flowyard", dep.Labels["app.kubernetes.io/managed-by"])
	pod := dep.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	ctr := pod.Containers[0]
	assert.Equal(t, "nodered/node-red:4.1.15", ctr.Image)
	assert.Equal(t, []string{"node", "--max-old-space-size=192", DefaultRedJS, "--userDir", "/data", "--settings", "/etc/flowyard/settings.js"}, ctr.Command)
	assert.Equal(t, "256Mi", ctr.Resources.Limits.Memory().String())
	assert.Equal(t, "256Mi", ctr.Resources.Requests.Memory().String())
	assert.Equal(t, "500m", ctr.Resources.Limits.Cpu().String())
	assert.Equal(t, "125m", ctr.Resources.Requests.Cpu().String())
	for _, p := range []*corev1.Probe{ctr.LivenessProbe, ctr.ReadinessProbe, ctr.StartupProbe} {
		require.NotNil(t, p)
		assert.Equal(t, "/admin/auth/login", p.HTTPGet.Path)
		assert.Equal(t, "http", p.HTTPGet.Port.String())
	}
	require.NotNil(t, ctr.SecurityContext)
	assert.True(t, *ctr.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *ctr.SecurityContext.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, ctr.SecurityContext.Capabilities.Drop)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.Equal(t, int64(1000), *pod.SecurityContext.RunAsUser)
	assert.False(t, *pod.AutomountServiceAccountToken)
	assert.Empty(t, pod.InitContainers, "no modules, no install step")

	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	assert.Equal(t, "hello", env["GREETING"].Value)
	assert.NotContains(t, env, "FLOWYARD_SECRET_KEY", "FLOWYARD_* belongs to the platform")
	assert.Equal(t, "inst1", env[nodered.EnvInstanceID].Value)
	assert.Equal(t, "http://flowyard-api.flowyard.svc:8080", env[nodered.EnvForgeURL].Value)
	require.NotNil(t, env[nodered.EnvInstanceToken].ValueFrom)
	assert.Equal(t, "nr-inst1", env[nodered.EnvInstanceToken].ValueFrom.SecretKeyRef.Name)
	depJSON, _ := json.Marshal(dep)
	for _, secret := range []string{"admin-token-value", "read-token-value", "fyi_instance-token-value", "cred-secret-value"} {
		assert.NotContains(t, string(depJSON), secret, "secrets stay out of the Deployment")
	}

	sec, err := c.cs.CoreV1().Secrets(testNamespace).Get(ctx, "nr-inst1", metav1.GetOptions{})
	require.NoError(t, err)
	settings := string(sec.Data["settings.js"])
	assert.Contains(t, settings, nodered.TokenDigest("admin-token-value"))
	assert.NotContains(t, settings, "admin-token-value", "settings.js holds only token digests")
	assert.Contains(t, settings, `"uiHost": "0.0.0.0"`)
	assert.Contains(t, settings, `/etc/flowyard/flowyard-storage.js`)
	assert.Equal(t, "fyi_instance-token-value", string(sec.Data["instance-token"]))
	assert.Equal(t, "admin-token-value", string(sec.Data["admin-token"]))
	assert.Equal(t, "cred-secret-value", string(sec.Data["credential-secret"]))

	cm, err := c.cs.CoreV1().ConfigMaps(testNamespace).Get(ctx, "nr-inst1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Contains(t, cm.Data[nodered.StoragePluginFile], "module.exports")

	svc, err := c.cs.CoreV1().Services(testNamespace).Get(ctx, "nr-inst1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{LabelInstanceID: "inst1"}, svc.Spec.Selector)
	assert.Equal(t, int32(1880), svc.Spec.Ports[0].Port)

	assert.Contains(t, settings, `"httpNodeRoot": "/"`, "a flow's endpoints at the root of the instance's address")
	assert.Contains(t, settings, `settings.httpNodeMiddleware`, "http-in routes refuse what falls through from the admin root")
	_, err = c.cs.NetworkingV1().Ingresses(testNamespace).Get(ctx, "nr-inst1", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "no Ingress to the pod: the API's app proxy serves <name>.<apps domain>, got %v", err)

	pvc, err := c.cs.CoreV1().PersistentVolumeClaims(testNamespace).Get(ctx, "nr-inst1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, pvc.Spec.AccessModes)
	assert.Equal(t, "1Gi", pvc.Spec.Resources.Requests.Storage().String(), "1024 MiB unless configured")
	assert.Nil(t, pvc.Spec.StorageClassName, "the cluster's default class")
	var data *corev1.Volume
	for i, v := range pod.Volumes {
		if v.Name == "data" {
			data = &pod.Volumes[i]
		}
	}
	require.NotNil(t, data)
	require.NotNil(t, data.PersistentVolumeClaim, "the user directory is the instance's claim, not an emptyDir")
	assert.Equal(t, "nr-inst1", data.PersistentVolumeClaim.ClaimName)
	assert.Contains(t, ctr.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})

	for kind, owners := range map[string][]metav1.OwnerReference{"secret": sec.OwnerReferences, "configmap": cm.OwnerReferences,
		"service": svc.OwnerReferences, "persistentvolumeclaim": pvc.OwnerReferences} {
		require.Len(t, owners, 1, kind)
		assert.Equal(t, "Deployment", owners[0].Kind, kind)
		assert.Equal(t, "nr-inst1", owners[0].Name, kind)
		assert.True(t, *owners[0].Controller, kind)
	}
}

func TestStartCreatesTheDeploymentScaledToZeroBeforeItsDependents(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	var order []string
	var replicas []string
	for _, a := range c.cs.Actions() {
		if a.GetVerb() == "patch" {
			order = append(order, a.GetResource().Resource)
			if a.GetResource().Resource == "deployments" {
				var body struct {
					Spec struct{ Replicas int } `json:"spec"`
				}
				require.NoError(t, json.Unmarshal(a.(interface{ GetPatch() []byte }).GetPatch(), &body))
				replicas = append(replicas, string(rune('0'+body.Spec.Replicas)))
			}
		}
	}
	assert.Equal(t, []string{"deployments", "secrets", "configmaps", "services", "deployments"}, order)
	assert.Equal(t, []string{"0", "1"}, replicas, "no pod before its Secret exists")
}

func TestStartTwiceChangesNothing(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	spec := testSpec("inst1")
	spec.Modules = map[string]string{"node-red-contrib-cron-plus": "2.1.0"}
	_, err := d.Start(ctx, spec)
	require.NoError(t, err)
	before := c.dump()
	mark := len(c.cs.Actions())

	_, err = d.Start(ctx, spec)
	require.NoError(t, err)
	after := c.dump()
	for kind := range before {
		assert.JSONEq(t, before[kind], after[kind], "a second Start with the same spec leaves the %s as they were", kind)
	}
	assert.Equal(t, []string{"patch secrets", "patch configmaps", "patch services", "patch deployments"}, c.writes(mark),
		"only server-side applies of the same content: no create, delete or scale to zero")
}

func TestStartWithAChangedSpecRollsThePod(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	spec := testSpec("inst1")
	_, err := d.Start(ctx, spec)
	require.NoError(t, err)
	hash := getDeployment(t, c, "inst1").Spec.Template.Annotations[annotationSpecHash]

	spec.Settings = map[string]any{"functionTimeout": 9}
	_, err = d.Start(ctx, spec)
	require.NoError(t, err)
	dep := getDeployment(t, c, "inst1")
	assert.NotEqual(t, hash, dep.Spec.Template.Annotations[annotationSpecHash], "a new settings.js changes the pod template")

	spec.SafeMode = true
	spec.NodeVersion = "22.23.3"
	spec.Modules = map[string]string{"node-red-dashboard": "3.6.6", "@flowfuse/node-red-dashboard": ""}
	_, err = d.Start(ctx, spec)
	require.NoError(t, err)
	dep = getDeployment(t, c, "inst1")
	ctr := dep.Spec.Template.Spec.Containers[0]
	assert.Equal(t, "--safe", ctr.Command[len(ctr.Command)-1])
	assert.Equal(t, "nodered/node-red:4.1.15-22", ctr.Image)
	assert.Equal(t, "true", dep.Spec.Template.Annotations[annotationSafeMode])
	require.Len(t, dep.Spec.Template.Spec.InitContainers, 1)
	install := dep.Spec.Template.Spec.InitContainers[0]
	assert.Equal(t, "nodered/node-red:4.1.15-22", install.Image)
	assert.Equal(t, []string{"@flowfuse/node-red-dashboard", "node-red-dashboard@3.6.6"}, install.Command[len(install.Command)-2:])
	assert.True(t, *install.SecurityContext.ReadOnlyRootFilesystem)
}

// TestStartRemovesTheIngressOfEarlierVersions: an Ingress that routed <name>.<domain> straight to the pod would
// bypass the app proxy (its protection, its refusal of the admin API), so starting an instance removes it.
func TestStartRemovesTheIngressOfEarlierVersions(t *testing.T) {
	c := newCluster(t)
	old := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "nr-inst1", Namespace: testNamespace}}
	_, err := c.cs.NetworkingV1().Ingresses(testNamespace).Create(ctx, old, metav1.CreateOptions{})
	require.NoError(t, err)

	_, err = c.driver().Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	_, err = c.cs.NetworkingV1().Ingresses(testNamespace).Get(ctx, "nr-inst1", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "ingress removed, got %v", err)
}

func TestStartRejectsInvalidSpecs(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	cases := map[string]func(*drivers.InstanceSpec){
		"upper-case id":   func(s *drivers.InstanceSpec) { s.InstanceID = "Inst1" },
		"underscore id":   func(s *drivers.InstanceSpec) { s.InstanceID = "inst_1" },
		"long id":         func(s *drivers.InstanceSpec) { s.InstanceID = strings.Repeat("a", 61) },
		"no version":      func(s *drivers.InstanceSpec) { s.NodeRedVersion = "" },
		"no admin token":  func(s *drivers.InstanceSpec) { s.AdminToken = "" },
		"negative memory": func(s *drivers.InstanceSpec) { s.MemoryMB = -1 },
		"option module":   func(s *drivers.InstanceSpec) { s.Modules = map[string]string{"--registry=evil": ""} },
	}
	for name, mutate := range cases {
		spec := testSpec("inst1")
		mutate(&spec)
		_, err := d.Start(ctx, spec)
		assert.ErrorIs(t, err, drivers.ErrInvalidSpec, name)
	}
	assert.Empty(t, c.writes(0), "nothing written for an invalid spec")
}

func TestStopScalesToZeroAndKeepsTheObjects(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	_, err = d.Start(ctx, testSpec("inst2"))
	require.NoError(t, err)
	ids, err := d.Running(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"inst1", "inst2"}, ids)

	require.NoError(t, d.Stop(ctx, "inst1"))
	require.NoError(t, d.Stop(ctx, "inst1"), "stop is idempotent")
	require.NoError(t, d.Stop(ctx, "unknown"), "stopping what does not exist is fine")
	assert.Equal(t, int32(0), *getDeployment(t, c, "inst1").Spec.Replicas)
	_, err = c.cs.CoreV1().Secrets(testNamespace).Get(ctx, "nr-inst1", metav1.GetOptions{})
	assert.NoError(t, err, "stop keeps the secret")
	st, err := d.Status(ctx, "inst1")
	require.NoError(t, err)
	assert.Equal(t, drivers.StateStopped, st.State)
	ids, err = d.Running(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"inst2"}, ids)

	// Start after Stop scales back up with the same objects.
	_, err = d.Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	assert.Equal(t, int32(1), *getDeployment(t, c, "inst1").Spec.Replicas)
}

func TestRemoveDeletesEveryObject(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	_, err := d.Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	_, err = d.Start(ctx, testSpec("inst2"))
	require.NoError(t, err)
	require.NoError(t, d.Remove(ctx, "inst1"))
	require.NoError(t, d.Remove(ctx, "inst1"), "remove is idempotent")

	st, err := d.Status(ctx, "inst1")
	require.NoError(t, err)
	assert.Equal(t, drivers.StateMissing, st.State)
	dump := c.dump()
	for kind, list := range dump {
		assert.NotContains(t, list, `"nr-inst1"`, kind)
		assert.Contains(t, list, `"nr-inst2"`, kind, "other instances are untouched")
	}
	var deletes []string
	for _, a := range c.cs.Actions() {
		if del, ok := a.(interface{ GetDeleteOptions() metav1.DeleteOptions }); ok && a.GetResource().Resource == "deployments" {
			deletes = append(deletes, string(*del.GetDeleteOptions().PropagationPolicy))
		}
	}
	assert.Equal(t, []string{"Background", "Background"}, deletes, "the Deployment's dependents are collected by Kubernetes too")
	_, err = d.Logs(ctx, "inst1", time.Time{}, 10)
	assert.ErrorIs(t, err, drivers.ErrNotFound)
}

// TestTheClaimOutlivesPodsAndKeepsItsSize: each instance gets one claim of the configured class and size;
// stopping, starting again and a restarted worker with another size keep it as it is (a claim cannot shrink or
// change class), and removing the instance deletes it.
func TestTheClaimOutlivesPodsAndKeepsItsSize(t *testing.T) {
	c := newCluster(t)
	d := c.driver(func(cfg *Config) { cfg.StorageClassName, cfg.DataSizeMB = "fast-ssd", 2048 })
	_, err := d.Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	claims := c.cs.CoreV1().PersistentVolumeClaims(testNamespace)
	pvc, err := claims.Get(ctx, "nr-inst1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "fast-ssd", *pvc.Spec.StorageClassName)
	assert.Equal(t, "2Gi", pvc.Spec.Resources.Requests.Storage().String())

	require.NoError(t, d.Stop(ctx, "inst1"))
	_, err = claims.Get(ctx, "nr-inst1", metav1.GetOptions{})
	require.NoError(t, err, "a stopped instance keeps its files")
	mark := len(c.cs.Actions())
	other := c.driver(func(cfg *Config) { cfg.StorageClassName, cfg.DataSizeMB = "slow-hdd", 512 })
	_, err = other.Start(ctx, testSpec("inst1"))
	require.NoError(t, err)
	assert.NotContains(t, c.writes(mark), "create persistentvolumeclaims")
	pvc, err = claims.Get(ctx, "nr-inst1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "fast-ssd", *pvc.Spec.StorageClassName, "an existing claim is left as it is")
	assert.Equal(t, "2Gi", pvc.Spec.Resources.Requests.Storage().String())

	require.NoError(t, other.Remove(ctx, "inst1"))
	_, err = claims.Get(ctx, "nr-inst1", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the claim goes with the instance: %v", err)
}

func TestStatusOfUnknownOrInvalidIDsIsMissing(t *testing.T) {
	d := newCluster(t).driver()
	for _, id := range []string{"nope", "Not_Valid", ""} {
		st, err := d.Status(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, drivers.StateMissing, st.State, id)
	}
}

func TestConfigRequiresClientAndNamespace(t *testing.T) {
	_, err := New(Config{Namespace: "x"})
	assert.ErrorContains(t, err, "Client is required")
	_, err = New(Config{Client: newCluster(t).cs})
	assert.ErrorContains(t, err, "Namespace is required")
	_, err = New(Config{Client: newCluster(t).cs, Namespace: "x", Image: "{{.Nope"})
	assert.ErrorContains(t, err, "image template")
}

func TestCustomImageTemplateAndPullSecrets(t *testing.T) {
	c := newCluster(t)
	d := c.driver(func(cfg *Config) {
		cfg.Image = "registry.example.com/flowyard/node-red:{{.NodeRedVersion}}-node{{.NodeVersion}}"
		cfg.ImagePullSecrets = []string{"regcred"}
	})
	spec := testSpec("inst1")
	spec.NodeVersion = "22.23.3"
	_, err := d.Start(ctx, spec)
	require.NoError(t, err)
	pod := getDeployment(t, c, "inst1").Spec.Template.Spec
	assert.Equal(t, "registry.example.com/flowyard/node-red:4.1.15-node22.23.3", pod.Containers[0].Image)
	assert.Equal(t, []corev1.LocalObjectReference{{Name: "regcred"}}, pod.ImagePullSecrets)
}

func TestErrorsFromTheAPIServerAreWrapped(t *testing.T) {
	c := newCluster(t)
	d := c.driver()
	c.cs.PrependReactor("patch", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcdserver: request timed out")
	})
	_, err := d.Start(ctx, testSpec("inst1"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "start inst1: apply secret: etcdserver: request timed out")
	assert.NotErrorIs(t, err, drivers.ErrInvalidSpec, "a transient error stays retryable")
}

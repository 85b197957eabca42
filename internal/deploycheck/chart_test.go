// Package deploycheck checks deploy/ without a cluster: the Helm chart is rendered with Helm's own engine
// (what `helm template` runs), every document is decoded strictly into its typed Kubernetes object, key
// properties are asserted, the RBAC is compared with what the kubernetes driver really calls, and the whole
// output is compared with a golden file (go test ./internal/deploycheck -update rewrites it).
package deploycheck_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/temporalenv"
)

var update = flag.Bool("update", false, "rewrite the golden file")

const chartDir = "../../deploy/helm/flowyard"

// productionValues are what an operator passes for a typical install (see deploy/README.md).
func productionValues() map[string]any {
	return map[string]any{
		"publicURL": "https://flowyard.example.com",
		"database":  map[string]any{"url": "postgres://flowyard:pw@postgres.db.svc:5432/flowyard?sslmode=require"},
		"secretKey": map[string]any{"value": "0123456789abcdef0123456789abcdef-test"},
		"admin":     map[string]any{"email": "ops@example.com", "password": "correct horse battery"},
		"temporal":  map[string]any{"address": "temporal-frontend.temporal.svc:7233", "uiUrl": "https://temporal.example.com"},
		"instances": map[string]any{"namespace": "nodered"},
		"api": map[string]any{"ingress": map[string]any{"enabled": true, "className": "nginx", "host": "flowyard.example.com",
			"tlsSecretName": "flowyard-tls"}},
		"mqtt": map[string]any{
			"tcp":       map[string]any{"enabled": true, "host": "mqtt.example.com", "tls": map[string]any{"existingSecret": "mqtt-tls"}},
			"websocket": map[string]any{"enabled": true, "host": "mqtt-ws.example.com", "className": "nginx", "tlsSecretName": "mqtt-ws-tls"},
		},
		"editor": map[string]any{"tlsSecretName": "flowyard-editor-wildcard-tls"},
		"apps":   map[string]any{"tlsSecretName": "flowyard-apps-wildcard-tls"},
	}
}

// render runs Helm's template engine over the chart, like `helm template prod deploy/helm/flowyard -n flowyard`.
func render(t *testing.T, values map[string]any) map[string]string {
	t.Helper()
	out, err := renderErr(values)
	require.NoError(t, err)
	return out
}

func renderErr(values map[string]any) (map[string]string, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ToRenderValues(chrt, values, chartutil.ReleaseOptions{Name: "prod", Namespace: "flowyard", IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(chrt, vals)
}

// manifests are the rendered documents by "Kind/name", decoded strictly (unknown or duplicate fields fail).
type manifests map[string]runtime.Object

func decode(t *testing.T, files map[string]string) (manifests, string) {
	t.Helper()
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
	out := manifests{}
	var all strings.Builder
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, file := range names {
		if !strings.HasSuffix(file, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[file], "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
				continue
			}
			obj, gvk, err := strict.Decode([]byte(doc), nil, nil)
			require.NoError(t, err, "%s:\n%s", file, doc)
			key := gvk.Kind + "/" + obj.(interface{ GetName() string }).GetName()
			require.NotContains(t, out, key, "duplicate object")
			out[key] = obj
			all.WriteString("---\n# Source: " + file + "\n" + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) + "\n")
		}
	}
	return out, all.String()
}

func (m manifests) keys() []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

func TestChartRendersEveryObjectAsAValidTypedManifest(t *testing.T) {
	objs, text := decode(t, render(t, productionValues()))
	assert.Equal(t, []string{
		"ConfigMap/prod-flowyard-config",
		"Deployment/prod-flowyard-api", "Deployment/prod-flowyard-worker",
		"Ingress/prod-flowyard-api", "Ingress/prod-flowyard-apps", "Ingress/prod-flowyard-editor", "Ingress/prod-flowyard-mqtt-ws",
		"Job/prod-flowyard-migrate",
		"NetworkPolicy/prod-flowyard-instances", "NetworkPolicy/prod-flowyard-instances-default-deny",
		"PodDisruptionBudget/prod-flowyard-api", "PodDisruptionBudget/prod-flowyard-worker",
		"Role/prod-flowyard-api", "Role/prod-flowyard-worker",
		"RoleBinding/prod-flowyard-api", "RoleBinding/prod-flowyard-worker",
		"Secret/prod-flowyard-secrets",
		"Service/prod-flowyard-api", "Service/prod-flowyard-mqtt", "Service/prod-flowyard-mqtt-ws",
		"ServiceAccount/prod-flowyard-api", "ServiceAccount/prod-flowyard-worker",
	}, objs.keys())

	golden := filepath.Join("testdata", "flowyard.golden.yaml")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(golden, []byte(text), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test ./internal/deploycheck -update to create it")
	assert.Equal(t, string(want), text, "rendered chart differs from %s (go test ./internal/deploycheck -update after checking the diff)", golden)
}

func TestAPIAndWorkerDeployments(t *testing.T) {
	objs, _ := decode(t, render(t, productionValues()))
	for component, arg := range map[string]string{"api": "serve", "worker": "worker"} {
		dep := objs["Deployment/prod-flowyard-"+component].(*appsv1.Deployment)
		assert.Equal(t, int32(2), *dep.Spec.Replicas, component)
		selector, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
		require.NoError(t, err)
		assert.True(t, selector.Matches(labels.Set(dep.Spec.Template.Labels)), "%s selector matches its pods", component)
		pod := dep.Spec.Template.Spec
		assert.Equal(t, "prod-flowyard-"+component, pod.ServiceAccountName)
		assert.True(t, *pod.SecurityContext.RunAsNonRoot, component)
		require.Len(t, pod.Containers, 1)
		c := pod.Containers[0]
		assert.Equal(t, "ghcr.io/flowyard/flowyard:0.1.0", c.Image, "image tag defaults to appVersion")
		assert.Equal(t, []string{arg}, c.Args)
		assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, component)
		assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation, component)
		assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		assert.Equal(t, &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "prod-flowyard-secrets"}, Key: "database-url"},
			env["FLOWYARD_DATABASE_URL"].ValueFrom.SecretKeyRef, "secrets come from the Secret, never the ConfigMap")
		assert.Equal(t, "secret-key", env["FLOWYARD_SECRET_KEY"].ValueFrom.SecretKeyRef.Key)
		assert.Equal(t, "prod-flowyard-config", c.EnvFrom[0].ConfigMapRef.Name)
		assert.Equal(t, "true", dep.Spec.Template.Annotations["prometheus.io/scrape"])
		assert.NotEmpty(t, dep.Spec.Template.Annotations["checksum/config"], "a config change rolls the pods")
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = m.Name
		}
		want := map[string]string{"/etc/flowyard/temporal.yaml": "config", "/var/lib/flowyard": "data", "/tmp": "tmp"}
		if component == "api" {
			want["/etc/flowyard/mqtt-tls"] = "mqtt-tls" // the broker's certificate
		}
		assert.Equal(t, want, mounts, component)

		pdb := objs["PodDisruptionBudget/prod-flowyard-"+component].(*policyv1.PodDisruptionBudget)
		assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())
		pdbSel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		require.NoError(t, err)
		assert.True(t, pdbSel.Matches(labels.Set(dep.Spec.Template.Labels)), "%s PDB covers its pods", component)
	}
	api := objs["Deployment/prod-flowyard-api"].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	assert.Equal(t, "/readyz", api.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", api.LivenessProbe.HTTPGet.Path)
	svc := objs["Service/prod-flowyard-api"].(*corev1.Service)
	assert.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(objs["Deployment/prod-flowyard-api"].(*appsv1.Deployment).Spec.Template.Labels)))
	assert.NotContains(t, svc.Spec.Selector, "app.kubernetes.io/version", "a Service must keep selecting pods across upgrades")
	ing := objs["Ingress/prod-flowyard-api"].(*networkingv1.Ingress)
	assert.Equal(t, "flowyard.example.com", ing.Spec.Rules[0].Host)
	assert.Equal(t, "flowyard-tls", ing.Spec.TLS[0].SecretName)
}

func TestConfigMapHoldsAValidTemporalConfigAndTheDriverSettings(t *testing.T) {
	objs, _ := decode(t, render(t, productionValues()))
	cm := objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap)
	assert.Equal(t, "kubernetes", cm.Data["FLOWYARD_DRIVER"])
	assert.Equal(t, "nodered", cm.Data["FLOWYARD_K8S_NAMESPACE"])
	assert.Equal(t, "apps.flowyard.example.com", cm.Data["FLOWYARD_APPS_DOMAIN"])
	assert.Equal(t, "http://prod-flowyard-api.flowyard.svc:8080", cm.Data["FLOWYARD_RUNTIME_API_URL"], "pods reach the API inside the cluster")
	assert.Equal(t, "true", cm.Data["FLOWYARD_SECURE_COOKIES"])
	for k, v := range cm.Data {
		assert.NotContains(t, v, "pw@", "%s: no secret in the ConfigMap", k)
	}
	path := filepath.Join(t.TempDir(), "temporal.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cm.Data["temporal.yaml"]), 0o644))
	tcfg, err := temporalenv.LoadConfig(path)
	require.NoError(t, err)
	assert.Equal(t, "temporal-frontend.temporal.svc:7233", tcfg.Address)
	assert.Equal(t, "flowyard", tcfg.Namespace)
	assert.Equal(t, "https://temporal.example.com", tcfg.UIURL)
	assert.Equal(t, "FLOWYARD_TEMPORAL_API_KEY", tcfg.APIKeyEnv)
	assert.False(t, tcfg.TLS.Enabled)
}

func TestTemporalCloudWithMutualTLSAndAPIKey(t *testing.T) {
	v := productionValues()
	v["temporal"] = map[string]any{"address": "flowyard.a1b2c.tmprl.cloud:7233", "namespace": "flowyard.a1b2c",
		"tls":    map[string]any{"enabled": true, "existingSecret": "temporal-client-cert", "mutual": true},
		"apiKey": map[string]any{"existingSecret": "temporal-cloud", "existingSecretKey": "api-key"}}
	objs, _ := decode(t, render(t, v))
	cm := objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap)
	path := filepath.Join(t.TempDir(), "temporal.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cm.Data["temporal.yaml"]), 0o644))
	tcfg, err := temporalenv.LoadConfig(path)
	require.NoError(t, err)
	assert.True(t, tcfg.TLS.Enabled)
	assert.Equal(t, "/etc/flowyard/temporal-tls/tls.crt", tcfg.TLS.CertFile)
	assert.Equal(t, "/etc/flowyard/temporal-tls/ca.crt", tcfg.TLS.CAFile)

	worker := objs["Deployment/prod-flowyard-worker"].(*appsv1.Deployment).Spec.Template.Spec
	var key *corev1.EnvVar
	for i, e := range worker.Containers[0].Env {
		if e.Name == "FLOWYARD_TEMPORAL_API_KEY" {
			key = &worker.Containers[0].Env[i]
		}
	}
	require.NotNil(t, key)
	assert.Equal(t, "temporal-cloud", key.ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "api-key", key.ValueFrom.SecretKeyRef.Key)
	assert.True(t, slices.ContainsFunc(worker.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "temporal-client-cert"
	}))
}

func TestMigrationJobRunsBeforeInstallAndUpgrade(t *testing.T) {
	objs, _ := decode(t, render(t, productionValues()))
	job := objs["Job/prod-flowyard-migrate"].(*batchv1.Job)
	assert.Equal(t, "pre-install,pre-upgrade", job.Annotations["helm.sh/hook"])
	assert.Equal(t, []string{"migrate"}, job.Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, corev1.RestartPolicyNever, job.Spec.Template.Spec.RestartPolicy)
	assert.False(t, *job.Spec.Template.Spec.AutomountServiceAccountToken)
	secret := objs["Secret/prod-flowyard-secrets"].(*corev1.Secret)
	assert.Equal(t, "pre-install,pre-upgrade", secret.Annotations["helm.sh/hook"], "the Secret exists before the job needs it")
	assert.Less(t, secret.Annotations["helm.sh/hook-weight"], job.Annotations["helm.sh/hook-weight"])
	assert.Equal(t, "ops@example.com", envValue(job.Spec.Template.Spec.Containers[0].Env, "FLOWYARD_ADMIN_EMAIL"))
}

func TestExistingSecretsReplaceTheChartsSecret(t *testing.T) {
	v := productionValues()
	v["database"] = map[string]any{"existingSecret": "pg", "existingSecretKey": "uri"}
	v["secretKey"] = map[string]any{"existingSecret": "flowyard-master-key"}
	v["admin"] = map[string]any{}
	objs, _ := decode(t, render(t, v))
	assert.NotContains(t, objs, "Secret/prod-flowyard-secrets", "nothing left for the chart to hold")
	env := objs["Deployment/prod-flowyard-api"].(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Env
	for _, e := range env {
		switch e.Name {
		case "FLOWYARD_DATABASE_URL":
			assert.Equal(t, "pg", e.ValueFrom.SecretKeyRef.Name)
			assert.Equal(t, "uri", e.ValueFrom.SecretKeyRef.Key)
		case "FLOWYARD_SECRET_KEY":
			assert.Equal(t, "flowyard-master-key", e.ValueFrom.SecretKeyRef.Name)
			assert.Equal(t, "secret-key", e.ValueFrom.SecretKeyRef.Key)
		}
	}
}

func TestRequiredValuesFailWithAClearMessage(t *testing.T) {
	v := productionValues()
	delete(v, "database")
	_, err := renderErr(v)
	assert.ErrorContains(t, err, "database.url or database.existingSecret is required")
	v = productionValues()
	v["secretKey"] = map[string]any{"value": "short"}
	_, err = renderErr(v)
	assert.ErrorContains(t, err, "secretKey.value must be at least 32 characters")
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func roleOf(t *testing.T, objs manifests, name string) *rbacv1.Role {
	t.Helper()
	r, ok := objs["Role/"+name].(*rbacv1.Role)
	require.True(t, ok, "Role %s", name)
	return r
}

func TestRBACIsBoundInTheInstancesNamespace(t *testing.T) {
	objs, _ := decode(t, render(t, productionValues()))
	for _, c := range []string{"api", "worker"} {
		assert.Equal(t, "nodered", roleOf(t, objs, "prod-flowyard-"+c).Namespace)
		rb := objs["RoleBinding/prod-flowyard-"+c].(*rbacv1.RoleBinding)
		assert.Equal(t, "nodered", rb.Namespace)
		assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prod-flowyard-" + c, Namespace: "flowyard"}}, rb.Subjects)
		assert.Equal(t, "prod-flowyard-"+c, rb.RoleRef.Name)
	}
}

func TestValuesSchemaRejectsMistakes(t *testing.T) {
	v := productionValues()
	v["temporal"] = map[string]any{"address": "temporal-frontend", "namespace": "flowyard"}
	_, err := renderErr(v)
	assert.ErrorContains(t, err, "/temporal/address", "an address without a port")
	v = productionValues()
	v["database"] = map[string]any{"url": "mysql://x"}
	_, err = renderErr(v)
	assert.ErrorContains(t, err, "/database/url")
	v = productionValues()
	v["api"] = map[string]any{"replicas": "two"}
	_, err = renderErr(v)
	assert.ErrorContains(t, err, "/api/replicas")
}

// TestTrustedProxiesReachTheAPI: the proxies the chart is told about become FLOWYARD_TRUSTED_PROXIES, which the
// API parses as it would at start (so per-address limits count clients, not the ingress).
func TestTrustedProxiesReachTheAPI(t *testing.T) {
	v := productionValues()
	v["trustedProxies"] = []any{"10.0.0.0/8", "192.168.1.7"}
	objs, _ := decode(t, render(t, v))
	got := objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap).Data["FLOWYARD_TRUSTED_PROXIES"]
	assert.Equal(t, "10.0.0.0/8,192.168.1.7", got)
	_, err := config.Load("serve", nil, func(k string) string {
		if k == "FLOWYARD_TRUSTED_PROXIES" {
			return got
		}
		return ""
	})
	assert.NoError(t, err)
	objs, _ = decode(t, render(t, productionValues()))
	assert.Empty(t, objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap).Data["FLOWYARD_TRUSTED_PROXIES"], "none by default")
}

// TestInstanceAddressesGetAWildcardIngress: every instance's flows serve their endpoints on <instance name>.<apps
// domain>, through the API (which keeps the admin API out and enforces the protection), so the chart routes the
// wildcard host to the API Service, never to a pod, and hands the API the same domain.
func TestInstanceAddressesGetAWildcardIngress(t *testing.T) {
	for domain, want := range map[string]string{"": "apps.flowyard.example.com", "nodered.example.com": "nodered.example.com"} {
		v := productionValues()
		v["apps"].(map[string]any)["domain"] = domain
		objs, _ := decode(t, render(t, v))
		ing := objs["Ingress/prod-flowyard-apps"].(*networkingv1.Ingress)
		require.Len(t, ing.Spec.Rules, 1)
		assert.Equal(t, "*."+want, ing.Spec.Rules[0].Host, domain)
		backend := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
		assert.Equal(t, "prod-flowyard-api", backend.Name, "the API serves the instances' addresses")
		assert.Equal(t, []networkingv1.IngressTLS{{Hosts: []string{"*." + want}, SecretName: "flowyard-apps-wildcard-tls"}}, ing.Spec.TLS)
		cm := objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap).Data
		c, err := config.Load("serve", nil, func(k string) string { return cm[k] })
		require.NoError(t, err)
		assert.Equal(t, want, c.AppsDomain)
	}
}

// TestEditorOriginsGetAWildcardIngress: every instance's editor is served by the API on <instance id>.<editor
// domain>, so the chart routes the wildcard host to the API Service (with its certificate) and hands the API the
// same domain, which the API accepts as it would at start.
func TestEditorOriginsGetAWildcardIngress(t *testing.T) {
	for domain, want := range map[string]string{"": "editor.flowyard.example.com", "editors.example.com": "editors.example.com"} {
		v := productionValues()
		v["editor"].(map[string]any)["domain"] = domain
		objs, _ := decode(t, render(t, v))
		ing := objs["Ingress/prod-flowyard-editor"].(*networkingv1.Ingress)
		require.Len(t, ing.Spec.Rules, 1)
		assert.Equal(t, "*."+want, ing.Spec.Rules[0].Host, domain)
		backend := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
		assert.Equal(t, "prod-flowyard-api", backend.Name, "the API serves the editors")
		assert.Equal(t, "http", backend.Port.Name)
		assert.Equal(t, []networkingv1.IngressTLS{{Hosts: []string{"*." + want}, SecretName: "flowyard-editor-wildcard-tls"}}, ing.Spec.TLS)
		assert.Equal(t, "nginx", *ing.Spec.IngressClassName)
		cm := objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap).Data
		assert.Equal(t, want, cm["FLOWYARD_EDITOR_DOMAIN"], domain)
		c, err := config.Load("serve", nil, func(k string) string { return cm[k] })
		require.NoError(t, err)
		assert.Equal(t, want, c.EditorDomain)
	}
	v := productionValues()
	v["editor"] = map[string]any{"domain": "Editor_Example"}
	_, err := renderErr(v)
	assert.ErrorContains(t, err, "/editor/domain", "the schema refuses a domain that is not one")
}

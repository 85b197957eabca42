package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/nodered"
)

// Labels and annotations on every object of an instance. The selector uses only LabelInstanceID, because a
// Deployment's selector can never change.
const (
	LabelInstanceID = "flowyard.io/instance-id"
	labelName       = "app.kubernetes.io/name"
	labelComponent  = "app.kubernetes.io/component"
	labelManagedBy  = "app.kubernetes.io/managed-by"
	labelInstance   = "app.kubernetes.io/instance"

	annotationName = "flowyard.io/instance-name"
	// annotationSpecHash identifies a pod template together with the files it mounts: a new settings.js
	// rolls the pod, and a pod whose hash differs from its Deployment's is one being replaced.
	annotationSpecHash = "flowyard.io/spec-hash"
	annotationSafeMode = "flowyard.io/safe-mode"

	// The Helm chart's NetworkPolicies select every instance pod by these two values of labelManagedBy and
	// labelComponent (deploy/helm/flowyard/templates/networkpolicy.yaml); internal/deploycheck checks that they
	// fence the pods this driver makes.
	managedBy = "flowyard"
	component = "node-red-instance"
)

// managedSelector selects every object the driver made, in any instance.
var managedSelector = labelManagedBy + "=" + managedBy + "," + labelComponent + "=" + component

// Where things live inside the pod.
const (
	containerName   = "node-red"
	initName        = "install-modules"
	port            = 1880
	portName        = "http"
	userDir         = "/data"
	configDir       = "/etc/flowyard"
	runAsID         = 1000 // the node-red user of the official image
	probeLoginPath  = drivers.AdminRoot + "auth/login"
	keySettings     = "settings.js"
	keyAdminToken   = "admin-token"
	keyReadToken    = "read-token"
	keyInstanceTok  = "instance-token"
	keyCredSecret   = "credential-secret"
	lastLinesOnFail = 20
)

// idPattern keeps object names valid DNS labels: "nr-" + id must fit 63 characters.
var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?$`)

// objectName is the name of every object of an instance.
func objectName(id string) string { return "nr-" + id }

func validateID(id string) error {
	if err := drivers.ValidateID(id); err != nil {
		return err
	}
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: instance id %q must be lower-case letters, digits and '-' (at most 60) to name Kubernetes objects", drivers.ErrInvalidSpec, id)
	}
	return nil
}

func validateSpec(spec drivers.InstanceSpec) error {
	if err := validateID(spec.InstanceID); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"NodeRedVersion": spec.NodeRedVersion, "AdminToken": spec.AdminToken, "CredentialSecret": spec.CredentialSecret} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%w: %s required", drivers.ErrInvalidSpec, strings.Join(missing, ", "))
	}
	if spec.MemoryMB < 0 || spec.CPUPercent < 0 {
		return fmt.Errorf("%w: negative limits", drivers.ErrInvalidSpec)
	}
	for name := range spec.Modules {
		if name == "" || strings.HasPrefix(name, "-") {
			return fmt.Errorf("%w: module name %q", drivers.ErrInvalidSpec, name)
		}
	}
	return nil
}

// plan is everything derived from a spec that the objects are built from.
type plan struct {
	spec       drivers.InstanceSpec
	name       string
	labels     map[string]string
	image      string
	secretData map[string][]byte
	pluginJS   []byte // empty: Node-RED's own file storage (in the emptyDir)
	configHash string
}

func (d *Driver) newPlan(spec drivers.InstanceSpec) (*plan, error) {
	image, err := d.cfg.imageFor(spec.NodeRedVersion, spec.NodeVersion)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", drivers.ErrInvalidSpec, err)
	}
	p := &plan{spec: spec, name: objectName(spec.InstanceID), image: image, labels: instanceLabels(spec.InstanceID)}
	if spec.ForgeURL != "" {
		p.pluginJS = d.pluginJS
	}
	settings, err := p.renderSettings()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", drivers.ErrInvalidSpec, err)
	}
	p.secretData = map[string][]byte{
		keySettings: settings, keyAdminToken: []byte(spec.AdminToken),
		keyCredSecret: []byte(spec.CredentialSecret), keyInstanceTok: []byte(spec.InstanceToken),
	}
	if spec.ReadToken != "" {
		p.secretData[keyReadToken] = []byte(spec.ReadToken)
	}
	p.configHash = hashConfig(p.secretData, p.pluginJS)
	return p, nil
}

func instanceLabels(id string) map[string]string {
	return map[string]string{
		labelName: "node-red", labelComponent: component, labelManagedBy: managedBy,
		labelInstance: objectName(id), LabelInstanceID: id,
	}
}

// platformEnv are the variables the storage plugin reads; flows cannot see them (envVarExcludes).
var platformEnv = []string{nodered.EnvForgeURL, nodered.EnvInstanceID, nodered.EnvInstanceToken}

// renderSettings renders settings.js: Node-RED listens on all pod addresses (the Service and the probes
// reach it there), with the same disjoint admin and http-in roots as every driver.
func (p *plan) renderSettings() ([]byte, error) {
	tokens := map[string]string{nodered.TokenDigest(p.spec.AdminToken): "*"}
	if p.spec.ReadToken != "" {
		tokens[nodered.TokenDigest(p.spec.ReadToken)] = "read"
	}
	storage := ""
	if len(p.pluginJS) > 0 {
		storage = configDir + "/" + nodered.StoragePluginFile
	}
	return nodered.RenderSettings(nodered.SettingsParams{
		Port: port, Host: "0.0.0.0", HTTPAdminRoot: drivers.AdminRoot, HTTPNodeRoot: drivers.NodeRoot,
		CredentialSecret: p.spec.CredentialSecret, AdminTokens: tokens, StorageModule: storage,
		EnvVarExcludes: platformEnv, Settings: p.spec.Settings, Title: p.spec.Name,
	})
}

// hashConfig identifies the mounted files, so that a change in them rolls the pod.
func hashConfig(secret map[string][]byte, plugin []byte) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(secret)) {
		fmt.Fprintf(h, "%s=%d:", k, len(secret[k]))
		h.Write(secret[k])
	}
	h.Write(plugin)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// specHash hashes the pod spec (encoding/json sorts map keys, so equal specs hash equally) and the hash of
// the mounted files.
func specHash(pod *corev1ac.PodSpecApplyConfiguration, configHash string) string {
	b, _ := json.Marshal(pod)
	sum := sha256.Sum256(append(b, configHash...))
	return hex.EncodeToString(sum[:])[:16]
}

// ownerRef makes an object a dependent of the instance's Deployment, so that deleting the Deployment removes it.
func ownerRef(name string, uid types.UID) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().WithAPIVersion("apps/v1").WithKind("Deployment").
		WithName(name).WithUID(uid).WithController(true)
}

func (d *Driver) secret(p *plan, owner types.UID) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(p.name, d.cfg.Namespace).WithLabels(p.labels).WithOwnerReferences(ownerRef(p.name, owner)).
		WithType(corev1.SecretTypeOpaque).WithData(p.secretData)
}

func (d *Driver) configMap(p *plan, owner types.UID) *corev1ac.ConfigMapApplyConfiguration {
	data := map[string]string{}
	if len(p.pluginJS) > 0 {
		data[nodered.StoragePluginFile] = string(p.pluginJS)
	}
	return corev1ac.ConfigMap(p.name, d.cfg.Namespace).WithLabels(p.labels).WithOwnerReferences(ownerRef(p.name, owner)).WithData(data)
}

// claim is the instance's user directory: a PersistentVolumeClaim of DataSizeMB in StorageClassName, owned
// by the Deployment like every other object, so it goes when the instance goes. ReadWriteOnce is enough: the
// Deployment's Recreate strategy never runs two pods of an instance at once.
func (d *Driver) claim(p *plan, owner types.UID) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: d.cfg.Namespace, Labels: p.labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: p.name, UID: owner, Controller: ptr(true)}}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse(strconv.Itoa(d.cfg.DataSizeMB) + "Mi")}},
		},
	}
	if d.cfg.StorageClassName != "" {
		pvc.Spec.StorageClassName = ptr(d.cfg.StorageClassName)
	}
	return pvc
}

func ptr[T any](v T) *T { return &v }

func (d *Driver) service(p *plan, owner types.UID) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(p.name, d.cfg.Namespace).WithLabels(p.labels).WithOwnerReferences(ownerRef(p.name, owner)).
		WithSpec(corev1ac.ServiceSpec().WithType(corev1.ServiceTypeClusterIP).
			WithSelector(map[string]string{LabelInstanceID: p.spec.InstanceID}).
			WithPorts(corev1ac.ServicePort().WithName(portName).WithPort(port).WithTargetPort(intstr.FromString(portName))))
}

// deployment runs one pod: Recreate, never two Node-REDs of one instance at once (both would run the flows
// and write to the same storage).
func (d *Driver) deployment(p *plan, replicas int32) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment(p.name, d.cfg.Namespace).WithLabels(p.labels).
		WithAnnotations(map[string]string{annotationName: p.spec.Name}).
		WithSpec(appsv1ac.DeploymentSpec().WithReplicas(replicas).WithRevisionHistoryLimit(2).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{LabelInstanceID: p.spec.InstanceID})).
			WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)).
			WithTemplate(d.podTemplate(p)))
}

func (d *Driver) podTemplate(p *plan) *corev1ac.PodTemplateSpecApplyConfiguration {
	pod := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false). // Node-RED has no business with the Kubernetes API
		WithEnableServiceLinks(false).           // nor with every Service's address in its environment
		WithTerminationGracePeriodSeconds(30).
		WithSecurityContext(corev1ac.PodSecurityContext().WithRunAsNonRoot(true).WithRunAsUser(runAsID).
			WithRunAsGroup(runAsID).WithFSGroup(runAsID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithContainers(d.container(p)).
		WithVolumes(d.volumes(p)...)
	if len(p.spec.Modules) > 0 {
		pod.WithInitContainers(d.installContainer(p))
	}
	for _, s := range d.cfg.ImagePullSecrets {
		pod.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(s))
	}
	return corev1ac.PodTemplateSpec().WithLabels(p.labels).
		WithAnnotations(map[string]string{annotationSpecHash: specHash(pod, p.configHash), annotationSafeMode: strconv.FormatBool(p.spec.SafeMode)}).
		WithSpec(pod)
}

func (d *Driver) container(p *plan) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().WithName(containerName).WithImage(p.image).WithImagePullPolicy(d.cfg.ImagePullPolicy).
		WithCommand(d.command(p)...).
		WithWorkingDir(userDir).
		WithPorts(corev1ac.ContainerPort().WithName(portName).WithContainerPort(port).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(d.env(p)...).
		WithResources(d.resources(p.spec)).
		WithStartupProbe(probe(2, 90)). // up to 3 minutes: the storage plugin fetches flows, modules load
		WithReadinessProbe(probe(5, 3)).
		WithLivenessProbe(probe(10, 6)).
		WithSecurityContext(containerSecurity()).
		WithVolumeMounts(mounts()...)
}

// command runs Node-RED directly (not the image's entrypoint script), so it is PID 1 and gets SIGTERM itself.
// The heap cap is about 75% of the memory limit, like the local driver's.
func (d *Driver) command(p *plan) []string {
	cmd := []string{"node"}
	if p.spec.MemoryMB > 0 {
		cmd = append(cmd, fmt.Sprintf("--max-old-space-size=%d", max(p.spec.MemoryMB*3/4, 32)))
	}
	cmd = append(cmd, d.cfg.RedJS, "--userDir", userDir, "--settings", configDir+"/"+keySettings)
	if p.spec.SafeMode {
		cmd = append(cmd, "--safe")
	}
	return cmd
}

// probe checks that Node-RED's admin HTTP server answers. auth/login needs no token, so none goes into the
// pod spec; "flows running" is checked by WaitReady with the admin token.
func probe(period, failures int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath(probeLoginPath).WithPort(intstr.FromString(portName))).
		WithPeriodSeconds(period).WithFailureThreshold(failures).WithTimeoutSeconds(2)
}

func containerSecurity() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().WithAllowPrivilegeEscalation(false).WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))
}

func mounts() []*corev1ac.VolumeMountApplyConfiguration {
	return []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("data").WithMountPath(userDir),
		corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		corev1ac.VolumeMount().WithName("config").WithMountPath(configDir).WithReadOnly(true),
	}
}

// volumes: the user directory is the instance's PersistentVolumeClaim, so the files its flows write and the
// palette modules it installs outlive the pod (flows, credentials and context live in the platform); /tmp is
// an emptyDir; settings.js comes from the Secret and the storage plugin from the ConfigMap, side by side in
// configDir.
func (d *Driver) volumes(p *plan) []*corev1ac.VolumeApplyConfiguration {
	sources := []*corev1ac.VolumeProjectionApplyConfiguration{
		corev1ac.VolumeProjection().WithSecret(corev1ac.SecretProjection().WithName(p.name).
			WithItems(corev1ac.KeyToPath().WithKey(keySettings).WithPath(keySettings))),
	}
	if len(p.pluginJS) > 0 {
		sources = append(sources, corev1ac.VolumeProjection().WithConfigMap(corev1ac.ConfigMapProjection().WithName(p.name).
			WithItems(corev1ac.KeyToPath().WithKey(nodered.StoragePluginFile).WithPath(nodered.StoragePluginFile))))
	}
	return []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("data").WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(p.name)),
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("256Mi"))),
		corev1ac.Volume().WithName("config").WithProjected(corev1ac.ProjectedVolumeSource().WithDefaultMode(0o440).WithSources(sources...)),
	}
}

// installContainer installs the palette modules into the user directory with the image's own npm before
// Node-RED starts. It runs on every pod start: npm finds what is installed already in the claim, and a stack
// change (another Node.js) gets native modules built again.
func (d *Driver) installContainer(p *plan) *corev1ac.ContainerApplyConfiguration {
	args := []string{"npm", "install", "--prefix", userDir, "--no-audit", "--no-fund", "--no-update-notifier", "--omit=dev", "--"}
	for _, name := range slices.Sorted(maps.Keys(p.spec.Modules)) {
		if v := p.spec.Modules[name]; v != "" {
			name += "@" + v
		}
		args = append(args, name)
	}
	return corev1ac.Container().WithName(initName).WithImage(p.image).WithImagePullPolicy(d.cfg.ImagePullPolicy).
		WithCommand(args...).WithWorkingDir(userDir).
		WithEnv(corev1ac.EnvVar().WithName("HOME").WithValue(userDir), corev1ac.EnvVar().WithName("npm_config_cache").WithValue("/tmp/npm")).
		WithResources(d.resources(p.spec)).
		WithSecurityContext(containerSecurity()).
		WithVolumeMounts(mounts()...)
}

// env is the user's variables, then the platform's: those starting with FLOWYARD_ are the platform's alone.
// The instance token comes from the Secret, so it never shows in the Deployment.
func (d *Driver) env(p *plan) []*corev1ac.EnvVarApplyConfiguration {
	vars := map[string]string{"NODE_ENV": "production", "HOME": userDir}
	for k, v := range p.spec.Env {
		if strings.HasPrefix(k, "FLOWYARD_") || k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			d.log.Warn("dropping user environment variable", "instance", p.spec.InstanceID, "name", k)
			continue
		}
		vars[k] = v
	}
	vars[nodered.EnvInstanceID] = p.spec.InstanceID
	if p.spec.ForgeURL != "" {
		vars[nodered.EnvForgeURL] = p.spec.ForgeURL
	}
	out := make([]*corev1ac.EnvVarApplyConfiguration, 0, len(vars)+1)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		out = append(out, corev1ac.EnvVar().WithName(k).WithValue(vars[k]))
	}
	if p.spec.ForgeURL != "" {
		out = append(out, corev1ac.EnvVar().WithName(nodered.EnvInstanceToken).WithValueFrom(corev1ac.EnvVarSource().
			WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(p.name).WithKey(keyInstanceTok))))
	}
	return out
}

// resources turns the stack's limits into requests and limits. Memory is requested in full: a pod that
// may be OOM-killed below its limit is worse than one that does not get scheduled.
func (d *Driver) resources(spec drivers.InstanceSpec) *corev1ac.ResourceRequirementsApplyConfiguration {
	limits, requests := corev1.ResourceList{}, corev1.ResourceList{}
	if spec.MemoryMB > 0 {
		mem := resource.MustParse(strconv.Itoa(spec.MemoryMB) + "Mi")
		limits[corev1.ResourceMemory], requests[corev1.ResourceMemory] = mem, mem
	}
	if spec.CPUPercent > 0 {
		milli := int64(spec.CPUPercent) * 10 // 100% = one core = 1000m
		limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(milli, resource.DecimalSI)
		requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(milli*int64(d.cfg.CPURequestPercent)/100, 10), resource.DecimalSI)
	}
	r := corev1ac.ResourceRequirements()
	if len(limits) > 0 {
		r.WithLimits(limits).WithRequests(requests)
	}
	return r
}

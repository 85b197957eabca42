// Package kubernetes runs Node-RED instances as pods. Each instance gets, in one namespace, a Deployment of
// one replica running Node-RED, a Secret (settings.js, tokens, credential secret), a ConfigMap (the storage
// plugin), a PersistentVolumeClaim (its user directory) and a Service. Browsers never reach the pods directly:
// the API proxies the editor (<instance id>.<editor domain>) and the flows' endpoints (<name>.<apps domain>)
// to the Service, through the chart's wildcard Ingresses. All of them are named nr-<instance id>, carry the label flowyard.io/instance-id, and every object but the Deployment names
// the Deployment as its owner, so deleting the Deployment makes Kubernetes delete the rest.
//
// Objects are written with server-side apply (field manager "flowyard"), so Start is idempotent: applying the
// same spec again changes nothing, and a changed spec changes only what differs (a new settings.js rolls the
// pod through a hash annotation on the pod template).
//
// Unlike the local driver, Kubernetes itself restarts a crashed container (with its own back-off); the
// driver reports each restart through OnExit so the platform sees the crash, and reports CrashLoopBackOff and
// other stuck waiting states as StateCrashed with the reason.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"

	"github.com/flowyard/flowyard/drivers"
	"github.com/flowyard/flowyard/nodered"
)

// Driver runs Node-RED instances as Kubernetes pods. Create it with New.
type Driver struct {
	cfg      Config
	log      *slog.Logger
	pluginJS []byte

	closeOnce sync.Once
	stop      chan struct{}
	informers informers.SharedInformerFactory
}

var _ drivers.Driver = (*Driver)(nil)

// New creates a driver. With cfg.OnExit set it watches the instances' pods for container restarts until Close.
func New(cfg Config) (*Driver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	plugin, err := storagePluginJS()
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: %w", err)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger.With("driver", "kubernetes"), pluginJS: plugin, stop: make(chan struct{})}
	if cfg.OnExit != nil {
		if err := d.watchExits(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Close stops watching pods. The instances keep running.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		close(d.stop)
		if d.informers != nil {
			d.informers.Shutdown()
		}
	})
	return nil
}

// storagePluginJS reads the plugin's source through the one API the nodered package offers for it.
func storagePluginJS() ([]byte, error) {
	dir, err := os.MkdirTemp("", "flowyard-plugin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path, err := nodered.WriteStoragePlugin(dir)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// Start implements drivers.Driver. A missing Deployment is first created with no replicas, so that its
// Secret, ConfigMap and Service exist (owned by it) before a pod mounts them; then it is scaled to one.
func (d *Driver) Start(ctx context.Context, spec drivers.InstanceSpec) (drivers.Status, error) {
	if err := validateSpec(spec); err != nil {
		return drivers.Status{}, err
	}
	p, err := d.newPlan(spec)
	if err != nil {
		return drivers.Status{}, err
	}
	uid, err := d.ensureDeployment(ctx, p)
	if err != nil {
		return drivers.Status{}, fmt.Errorf("start %s: %w", spec.InstanceID, err)
	}
	if err := d.applyDependents(ctx, p, uid); err != nil {
		return drivers.Status{}, fmt.Errorf("start %s: %w", spec.InstanceID, err)
	}
	if _, err := d.deployments().Apply(ctx, d.deployment(p, 1), d.applyOpts()); err != nil {
		return drivers.Status{}, fmt.Errorf("start %s: apply deployment: %w", spec.InstanceID, err)
	}
	d.log.Info("instance applied", "instance", spec.InstanceID, "image", p.image, "safeMode", spec.SafeMode)
	return d.Status(ctx, spec.InstanceID)
}

func (d *Driver) applyOpts() metav1.ApplyOptions {
	return metav1.ApplyOptions{FieldManager: d.cfg.FieldManager, Force: true}
}

// ensureDeployment returns the UID of the instance's Deployment, creating it scaled to zero when missing.
func (d *Driver) ensureDeployment(ctx context.Context, p *plan) (types.UID, error) {
	dep, err := d.deployments().Get(ctx, p.name, metav1.GetOptions{})
	if err == nil {
		return dep.UID, nil
	}
	if !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("get deployment: %w", err)
	}
	dep, err = d.deployments().Apply(ctx, d.deployment(p, 0), d.applyOpts())
	if err != nil {
		return "", fmt.Errorf("create deployment: %w", err)
	}
	return dep.UID, nil
}

func (d *Driver) applyDependents(ctx context.Context, p *plan, owner types.UID) error {
	core := d.cfg.Client.CoreV1()
	if err := d.ensureClaim(ctx, p, owner); err != nil {
		return err
	}
	if _, err := core.Secrets(d.cfg.Namespace).Apply(ctx, d.secret(p, owner), d.applyOpts()); err != nil {
		return fmt.Errorf("apply secret: %w", err)
	}
	if _, err := core.ConfigMaps(d.cfg.Namespace).Apply(ctx, d.configMap(p, owner), d.applyOpts()); err != nil {
		return fmt.Errorf("apply configmap: %w", err)
	}
	if _, err := core.Services(d.cfg.Namespace).Apply(ctx, d.service(p, owner), d.applyOpts()); err != nil {
		return fmt.Errorf("apply service: %w", err)
	}
	// Earlier versions routed <name>.<domain> straight to the pod with an Ingress of its own; the API's app
	// proxy serves that address now (it enforces the instance's protection and keeps the admin API out), so an
	// Ingress left from then would bypass it.
	ingresses := d.cfg.Client.NetworkingV1().Ingresses(d.cfg.Namespace)
	if _, err := ingresses.Get(ctx, p.name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return nil
	}
	return ignoreNotFound(ingresses.Delete(ctx, p.name, metav1.DeleteOptions{}))
}

// ensureClaim creates the instance's PersistentVolumeClaim when it has none, and otherwise leaves it as it is:
// a claim's class cannot change, and its size only grow where the class allows, so a new size or class
// applies to new instances.
func (d *Driver) ensureClaim(ctx context.Context, p *plan, owner types.UID) error {
	claims := d.cfg.Client.CoreV1().PersistentVolumeClaims(d.cfg.Namespace)
	_, err := claims.Get(ctx, p.name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		if err != nil {
			return fmt.Errorf("get persistentvolumeclaim: %w", err)
		}
		return nil
	}
	if _, err := claims.Create(ctx, d.claim(p, owner), metav1.CreateOptions{FieldManager: d.cfg.FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create persistentvolumeclaim: %w", err)
	}
	return nil
}

// Stop implements drivers.Driver: it scales the Deployment to zero and keeps its Secret and Service.
// Kubernetes stops the pod gracefully (SIGTERM, then SIGKILL after the grace period).
func (d *Driver) Stop(ctx context.Context, id string) error {
	if validateID(id) != nil {
		return nil
	}
	patch := []byte(`{"spec":{"replicas":0}}`)
	_, err := d.deployments().Patch(ctx, objectName(id), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: d.cfg.FieldManager})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	d.log.Info("instance scaled to zero", "instance", id)
	return nil
}

// Remove implements drivers.Driver. Deleting the Deployment would be enough in a cluster (its dependents are
// garbage-collected), but each object is deleted explicitly, so Remove does not depend on the collector's pace.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if validateID(id) != nil {
		return nil
	}
	name, ns := objectName(id), d.cfg.Namespace
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	core := d.cfg.Client.CoreV1()
	err := errors.Join(
		ignoreNotFound(d.deployments().Delete(ctx, name, opts)),
		ignoreNotFound(d.cfg.Client.NetworkingV1().Ingresses(ns).Delete(ctx, name, opts)),
		ignoreNotFound(core.Services(ns).Delete(ctx, name, opts)),
		ignoreNotFound(core.ConfigMaps(ns).Delete(ctx, name, opts)),
		ignoreNotFound(core.Secrets(ns).Delete(ctx, name, opts)),
		ignoreNotFound(core.PersistentVolumeClaims(ns).Delete(ctx, name, opts)),
	)
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	d.log.Info("instance removed", "instance", id)
	return nil
}

// Running implements drivers.Driver: the instances whose Deployment wants a replica, sorted.
func (d *Driver) Running(ctx context.Context) ([]string, error) {
	list, err := d.deployments().List(ctx, metav1.ListOptions{LabelSelector: managedSelector})
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	var ids []string
	for _, dep := range list.Items {
		if dep.Spec.Replicas != nil && *dep.Spec.Replicas > 0 && dep.DeletionTimestamp == nil {
			ids = append(ids, dep.Labels[LabelInstanceID])
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (d *Driver) deployments() appsv1client.DeploymentInterface {
	return d.cfg.Client.AppsV1().Deployments(d.cfg.Namespace)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// serviceURL is how the platform reaches an instance inside the cluster.
func (d *Driver) serviceURL(id string) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", objectName(id), d.cfg.Namespace, port)
}

// sleep waits for dur, or returns ctx's error.
func sleep(ctx context.Context, dur time.Duration) error {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

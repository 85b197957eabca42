package kubernetes

import (
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/flowyard/flowyard/drivers"
)

// syncTimeout bounds how long New waits for the first list of pods before watching anyway.
const syncTimeout = 30 * time.Second

// exitWatch remembers, per pod, how many runs of its container have been reported as ended, so that a
// run seen terminated and then restarted is reported once.
type exitWatch struct {
	mu       sync.Mutex
	reported map[types.UID]int32
}

// watchExits starts an informer on the instances' pods and reports each container run that ends while its
// pod is not being deleted (a stop or a new spec deletes the pod first; those exits were asked for).
func (d *Driver) watchExits() error {
	f := informers.NewSharedInformerFactoryWithOptions(d.cfg.Client, 10*time.Minute,
		informers.WithNamespace(d.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = managedSelector }))
	w := &exitWatch{reported: map[types.UID]int32{}}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) { d.podUpdated(w, oldObj, newObj) },
		DeleteFunc: func(obj any) { w.forget(obj) },
	})
	if err != nil {
		return fmt.Errorf("kubernetes driver: watch pods: %w", err)
	}
	d.informers = f
	f.Start(d.stop)
	stop, done := make(chan struct{}), make(chan struct{})
	defer close(done)
	go func() {
		defer close(stop)
		select {
		case <-time.After(syncTimeout):
		case <-d.stop:
		case <-done:
		}
	}()
	for typ, ok := range f.WaitForCacheSync(stop) {
		if !ok {
			d.log.Warn("pod watch not synced yet; exits are reported once it is", "type", typ.String())
		}
	}
	return nil
}

func (w *exitWatch) forget(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		w.mu.Lock()
		delete(w.reported, pod.UID)
		w.mu.Unlock()
	}
}

// podUpdated reports a container run that ended: seen terminated, or (if that update was missed) seen
// through a higher restart count. A pod that failed as a whole (evicted, say) counts too.
func (d *Driver) podUpdated(w *exitWatch, oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	pod, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 || pod.DeletionTimestamp != nil {
		return
	}
	ended, ok := endedRuns(pod)
	failedNow := pod.Status.Phase == corev1.PodFailed && old.Status.Phase != corev1.PodFailed
	if !ok && !failedNow {
		return
	}
	w.mu.Lock()
	prev, seen := w.reported[pod.UID]
	if !seen {
		prev, _ = endedRuns(old) // runs that ended before the driver watched are not news
	}
	report := ended > prev || failedNow
	w.reported[pod.UID] = max(ended, prev)
	w.mu.Unlock()
	if !report {
		return
	}
	id := pod.Labels[LabelInstanceID]
	st := drivers.Status{Port: port, URL: d.serviceURL(id), ExitCode: -1}
	describePod(pod, &st)
	st.State = drivers.StateCrashed
	if c := containerStatus(pod.Status.ContainerStatuses, containerName); c != nil && c.State.Terminated == nil && c.LastTerminationState.Terminated != nil {
		st.ExitCode, st.Reason = int(c.LastTerminationState.Terminated.ExitCode), terminatedReason(c.LastTerminationState.Terminated)
	}
	d.log.Warn("instance container exited", "instance", id, "pod", pod.Name, "reason", st.Reason)
	go d.cfg.OnExit(id, st)
}

// endedRuns counts the node-red container's runs that have ended: its restarts, plus the current run if
// it is terminated. ok is false when the pod has no such container status yet.
func endedRuns(pod *corev1.Pod) (n int32, ok bool) {
	c := containerStatus(pod.Status.ContainerStatuses, containerName)
	if c == nil {
		return 0, false
	}
	n = c.RestartCount
	if c.State.Terminated != nil {
		n++
	}
	return n, true
}

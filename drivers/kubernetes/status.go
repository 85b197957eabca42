package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowyard/flowyard/drivers"
)

// stuckWaiting are the waiting reasons that do not resolve without someone changing something (the image,
// the flows, the Secret): they count as crashed, so the workflow stops waiting and shows the reason.
var stuckWaiting = map[string]bool{
	"CrashLoopBackOff":           true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// Status implements drivers.Driver. The state comes from the Deployment (scaled to zero = stopped) and from
// the newest pod of the instance: its container's waiting, terminated or running state and readiness.
func (d *Driver) Status(ctx context.Context, id string) (drivers.Status, error) {
	if validateID(id) != nil {
		return drivers.Status{State: drivers.StateMissing}, nil
	}
	dep, err := d.deployments().Get(ctx, objectName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return drivers.Status{State: drivers.StateMissing}, nil
	}
	if err != nil {
		return drivers.Status{}, fmt.Errorf("status %s: %w", id, err)
	}
	st := drivers.Status{Port: port, URL: d.serviceURL(id), ExitCode: -1, MemoryLimitEnforced: hasMemoryLimit(dep)}
	if dep.DeletionTimestamp != nil {
		st.State, st.Reason = drivers.StateStopped, "being deleted"
		return st, nil
	}
	if dep.Spec.Replicas != nil && *dep.Spec.Replicas == 0 {
		st.State, st.Reason = drivers.StateStopped, "stopped"
		return st, nil
	}
	pod, err := d.currentPod(ctx, id)
	if err != nil {
		return drivers.Status{}, fmt.Errorf("status %s: %w", id, err)
	}
	if pod == nil {
		st.State, st.Reason = deploymentState(dep)
		return st, nil
	}
	if want := dep.Spec.Template.Annotations[annotationSpecHash]; want != "" && pod.Annotations[annotationSpecHash] != want {
		// Until the Deployment controller deletes it, the old pod may still look ready: never report it.
		st.State, st.Reason = drivers.StateStarting, "replacing the pod with the new spec"
		return st, nil
	}
	describePod(pod, &st)
	if st.State == drivers.StateCrashed {
		st.LastLines = d.lastLines(ctx, pod)
	}
	return st, nil
}

func hasMemoryLimit(dep *appsv1.Deployment) bool {
	for _, c := range dep.Spec.Template.Spec.Containers {
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && c.Name == containerName {
			return true
		}
	}
	return false
}

// currentPod returns the newest pod of the instance that is not being deleted, or nil.
func (d *Driver) currentPod(ctx context.Context, id string) (*corev1.Pod, error) {
	list, err := d.cfg.Client.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelInstanceID + "=" + id})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var newest *corev1.Pod
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		if newest == nil || p.CreationTimestamp.After(newest.CreationTimestamp.Time) ||
			(p.CreationTimestamp.Equal(&newest.CreationTimestamp) && p.Name > newest.Name) {
			newest = p
		}
	}
	return newest, nil
}

// deploymentState explains a Deployment that wants a pod but has none.
func deploymentState(dep *appsv1.Deployment) (drivers.State, string) {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return drivers.StateCrashed, joinReason(c.Reason, c.Message) // e.g. a ResourceQuota refuses the pod
		}
	}
	return drivers.StateStarting, "waiting for the pod to be created"
}

// describePod maps a pod onto a driver state with a reason a user can act on.
func describePod(pod *corev1.Pod, st *drivers.Status) {
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		st.State, st.Reason = drivers.StateCrashed, joinReason("pod "+strings.ToLower(string(pod.Status.Phase)), pod.Status.Reason, pod.Status.Message)
		return
	}
	if state, reason, ok := initContainerState(pod); ok {
		st.State, st.Reason = state, reason
		return
	}
	c := containerStatus(pod.Status.ContainerStatuses, containerName)
	if c == nil {
		st.State, st.Reason = drivers.StateStarting, pendingReason(pod)
		return
	}
	if t := c.LastTerminationState.Terminated; t != nil {
		st.ExitCode = int(t.ExitCode)
	}
	switch {
	case c.State.Waiting != nil:
		st.State = drivers.StateStarting
		if stuckWaiting[c.State.Waiting.Reason] {
			st.State = drivers.StateCrashed
		}
		st.Reason = waitingReason(c)
	case c.State.Terminated != nil:
		st.State, st.ExitCode, st.Reason = drivers.StateCrashed, int(c.State.Terminated.ExitCode), terminatedReason(c.State.Terminated)
	case c.State.Running != nil:
		st.StartedAt = c.State.Running.StartedAt.Time
		st.State = drivers.StateRunning
		if !c.Ready {
			st.State, st.Reason = drivers.StateStarting, "waiting for the readiness probe"
		}
	default:
		st.State, st.Reason = drivers.StateStarting, pendingReason(pod)
	}
}

// initContainerState reports the palette install while it runs or when it failed.
func initContainerState(pod *corev1.Pod) (drivers.State, string, bool) {
	c := containerStatus(pod.Status.InitContainerStatuses, initName)
	if c == nil {
		return "", "", false
	}
	switch {
	case c.State.Waiting != nil && stuckWaiting[c.State.Waiting.Reason]:
		return drivers.StateCrashed, "installing palette modules failed: " + waitingReason(c), true
	case c.State.Terminated != nil && c.State.Terminated.ExitCode != 0:
		return drivers.StateCrashed, "installing palette modules failed: " + terminatedReason(c.State.Terminated), true
	case c.State.Running != nil || c.State.Waiting != nil:
		return drivers.StateStarting, "installing palette modules", true
	}
	return "", "", false
}

func containerStatus(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	i := slices.IndexFunc(list, func(c corev1.ContainerStatus) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &list[i]
}

// waitingReason: "CrashLoopBackOff: exited with code 1 (Error), restarted 4 times", or the kubelet's message.
func waitingReason(c *corev1.ContainerStatus) string {
	w := c.State.Waiting
	if w.Reason == "CrashLoopBackOff" && c.LastTerminationState.Terminated != nil {
		return fmt.Sprintf("%s: %s, restarted %d times", w.Reason, terminatedReason(c.LastTerminationState.Terminated), c.RestartCount)
	}
	return joinReason(w.Reason, w.Message)
}

func terminatedReason(t *corev1.ContainerStateTerminated) string {
	s := fmt.Sprintf("exited with code %d", t.ExitCode)
	if t.Signal != 0 {
		s = fmt.Sprintf("killed by signal %d", t.Signal)
	}
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	if t.Message != "" {
		s += ": " + t.Message
	}
	return s
}

// pendingReason explains a pod whose container has not been created, e.g. "Unschedulable: 0/3 nodes are
// available: 3 Insufficient memory."
func pendingReason(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return joinReason(c.Reason, c.Message)
		}
	}
	if pod.Status.Phase == "" {
		return "pod created"
	}
	return "pod " + strings.ToLower(string(pod.Status.Phase))
}

func joinReason(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ": ")
}

// lastLines returns the last lines of the crashed container's output: the previous run's when the
// kubelet has restarted it since.
func (d *Driver) lastLines(ctx context.Context, pod *corev1.Pod) []string {
	c := containerStatus(pod.Status.ContainerStatuses, containerName)
	if c == nil {
		return nil
	}
	previous := c.State.Terminated == nil && c.RestartCount > 0
	lines, err := d.podLogs(ctx, pod.Name, &corev1.PodLogOptions{Previous: previous}, lastLinesOnFail)
	if err != nil {
		d.log.Debug("read last lines", "pod", pod.Name, "err", err)
		return nil
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Msg
	}
	return out
}

package kubernetes

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowyard/flowyard/drivers"
)

// maxLogLine bounds one line read from the log API, so one huge debug message cannot grow memory.
const maxLogLine = 256 << 10

// Logs implements drivers.Driver with the pod log API: the current container's output, or the previous
// one's while a crashed container waits to be restarted. The kubelet keeps what it keeps (its log rotation
// decides how far back lines go).
func (d *Driver) Logs(ctx context.Context, id string, since time.Time, limit int) ([]drivers.LogLine, error) {
	if validateID(id) != nil {
		return nil, fmt.Errorf("logs %s: %w", id, drivers.ErrNotFound)
	}
	if _, err := d.deployments().Get(ctx, objectName(id), metav1.GetOptions{}); err != nil {
		if ignoreNotFound(err) == nil {
			return nil, fmt.Errorf("logs %s: %w", id, drivers.ErrNotFound)
		}
		return nil, fmt.Errorf("logs %s: %w", id, err)
	}
	pod, err := d.currentPod(ctx, id)
	if err != nil || pod == nil {
		return nil, err
	}
	c := containerStatus(pod.Status.ContainerStatuses, containerName)
	if c == nil || (c.State.Waiting != nil && c.RestartCount == 0) {
		return nil, nil // the container has not run yet: nothing to read
	}
	opts := &corev1.PodLogOptions{Previous: c.State.Waiting != nil}
	if !since.IsZero() {
		opts.SinceTime = &metav1.Time{Time: since}
	}
	lines, err := d.podLogs(ctx, pod.Name, opts, limit)
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", id, err)
	}
	kept := lines[:0]
	for _, l := range lines {
		if !l.Time.Before(since) {
			kept = append(kept, l)
		}
	}
	return kept, nil
}

// podLogs reads the node-red container's log with timestamps, at most limit lines (the newest) when limit > 0.
func (d *Driver) podLogs(ctx context.Context, pod string, opts *corev1.PodLogOptions, limit int) ([]drivers.LogLine, error) {
	opts.Container, opts.Timestamps = containerName, true
	if limit > 0 {
		tail := int64(limit)
		opts.TailLines = &tail
	}
	rc, err := d.cfg.Client.CoreV1().Pods(d.cfg.Namespace).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var out []drivers.LogLine
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 64<<10), maxLogLine)
	for sc.Scan() {
		if l, ok := parseLogLine(sc.Text(), time.Now()); ok {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil && len(out) == 0 {
		return nil, fmt.Errorf("read pod log: %w", err)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// parseLogLine reads one line of the log API: the kubelet's RFC 3339 timestamp, a space, then what Node-RED
// wrote. JSON lines from Flowyard's settings.js log handler give level, message and node; anything else
// (stack traces, npm output) is kept verbatim with level "raw". Blank lines and the "auth.invalid-token"
// audit entry that Node-RED writes for every token request are dropped.
func parseLogLine(raw string, now time.Time) (drivers.LogLine, bool) {
	line := drivers.LogLine{Time: now, Level: "raw"}
	if ts, rest, ok := strings.Cut(raw, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			line.Time, raw = t, rest
		}
	}
	raw = strings.TrimRight(raw, "\r")
	if strings.TrimSpace(raw) == "" {
		return line, false
	}
	line.Msg = raw
	var m struct {
		Level any    `json:"level"`
		Msg   any    `json:"msg"`
		Event string `json:"event"`
		Path  string `json:"path"`
		Type  string `json:"type"`
		Name  string `json:"name"`
		ID    string `json:"id"`
	}
	if !strings.HasPrefix(raw, "{") || json.Unmarshal([]byte(raw), &m) != nil {
		return line, true
	}
	line.Level, line.Msg = levelName(m.Level), text(m.Msg)
	if line.Level == "audit" {
		if m.Event == "auth.invalid-token" {
			return line, false
		}
		if line.Msg == "" {
			line.Msg = strings.TrimSpace(m.Event + " " + m.Path)
		}
	} else if m.Type != "" {
		who := m.Name
		if who == "" {
			who = m.ID
		}
		line.Msg = fmt.Sprintf("[%s:%s] %s", m.Type, who, line.Msg)
	}
	return line, true
}

func levelName(v any) string {
	switch lv := v.(type) {
	case string:
		return lv
	case float64:
		names := map[float64]string{10: "fatal", 20: "error", 30: "warn", 40: "info", 50: "debug", 60: "trace", 98: "audit", 99: "metric"}
		if n, ok := names[lv]; ok {
			return n
		}
	}
	return "info"
}

func text(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}

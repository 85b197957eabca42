package local

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// cgroups puts each Node-RED into its own cgroup v2 directory with memory.max and cpu.max. It needs a
// delegated cgroup whose subtree has the memory and cpu controllers; without one, limits are not enforced
// (only V8's heap cap, --max-old-space-size, applies) and Status.MemoryLimitEnforced is false.
type cgroups struct {
	parent string // directory under which instance cgroups are created; "" when limits are not enforced
	reason string // why parent is empty
}

// cgroup2SuperMagic is the statfs type of a cgroup v2 filesystem (linux/magic.h).
const cgroup2SuperMagic = 0x63677270

var wantedControllers = []string{"memory", "cpu"}

// detectCgroups finds where instance cgroups can go. configured is an explicit delegated cgroup v2
// directory; when it is empty the driver uses <cgroup2 root>/flowyard, but only if the platform itself
// sits in the root cgroup (as in a container with its own cgroup namespace): elsewhere, enabling
// controllers for children would first require moving the platform out of its own cgroup.
func detectCgroups(configured string) cgroups {
	if configured != "" {
		if err := enableControllers(configured); err != nil {
			return cgroups{reason: fmt.Sprintf("cgroup %s unusable: %v", configured, err)}
		}
		return cgroups{parent: configured}
	}
	mount, own, err := ownCgroup2()
	if err != nil {
		return cgroups{reason: err.Error()}
	}
	if own != "/" {
		return cgroups{reason: fmt.Sprintf("the platform runs in cgroup %s, not a cgroup v2 root; set CgroupParent to a delegated cgroup", own)}
	}
	if err := enableControllers(mount); err != nil {
		return cgroups{reason: fmt.Sprintf("cgroup v2 root %s: %v", mount, err)}
	}
	parent := filepath.Join(mount, "flowyard")
	if err := os.Mkdir(parent, 0o755); err != nil && !os.IsExist(err) {
		return cgroups{reason: fmt.Sprintf("create %s: %v", parent, err)}
	}
	if err := enableControllers(parent); err != nil {
		return cgroups{reason: fmt.Sprintf("cgroup %s: %v", parent, err)}
	}
	return cgroups{parent: parent}
}

// ownCgroup2 returns the cgroup2 mount point and this process's cgroup path in it.
func ownCgroup2() (mount, own string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// fields: id parent major:minor root mountpoint options ... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if fields := strings.Fields(pre); len(fields) >= 5 {
			mount = fields[4]
			break
		}
	}
	if mount == "" {
		return "", "", fmt.Errorf("no cgroup2 filesystem mounted")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return mount, path, nil
		}
	}
	return "", "", fmt.Errorf("no cgroup v2 entry in /proc/self/cgroup")
}

// enableControllers makes the memory and cpu controllers available to dir's children.
func enableControllers(dir string) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if fs.Type != cgroup2SuperMagic {
		return fmt.Errorf("not a cgroup v2 directory")
	}
	available, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read controllers: %w", err)
	}
	var missing []string
	for _, c := range wantedControllers {
		if !slices.Contains(strings.Fields(string(available)), c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("controllers %v not delegated (available: %q)", missing, strings.TrimSpace(string(available)))
	}
	enabled, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("read subtree_control: %w", err)
	}
	for _, c := range wantedControllers {
		if slices.Contains(strings.Fields(string(enabled)), c) {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
			return fmt.Errorf("enable %s: %w", c, err)
		}
	}
	return nil
}

// prepare creates (or reuses) the instance's cgroup, writes its limits and returns an open directory
// for SysProcAttr.CgroupFD, so the child is born inside it. It returns nil when limits are not enforced
// or none are asked for.
func (c cgroups) prepare(id string, memoryMB, cpuPercent int) (*os.File, error) {
	if c.parent == "" || (memoryMB <= 0 && cpuPercent <= 0) {
		return nil, nil
	}
	dir := filepath.Join(c.parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(memoryMax(memoryMB)), 0); err != nil {
		return nil, fmt.Errorf("set memory.max: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(cpuMax(cpuPercent)), 0); err != nil {
		return nil, fmt.Errorf("set cpu.max: %w", err)
	}
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	return f, nil
}

// remove deletes the instance's cgroup (it must be empty, i.e. its process gone).
func (c cgroups) remove(id string) {
	if c.parent != "" {
		os.Remove(filepath.Join(c.parent, id))
	}
}

const cpuPeriodMicros = 100000

func memoryMax(mb int) string {
	if mb <= 0 {
		return "max"
	}
	return fmt.Sprint(int64(mb) << 20)
}

// cpuMax converts a percentage of one CPU (200 = two CPUs) to cpu.max's "quota period".
func cpuMax(percent int) string {
	if percent <= 0 {
		return fmt.Sprintf("max %d", cpuPeriodMicros)
	}
	return fmt.Sprintf("%d %d", percent*cpuPeriodMicros/100, cpuPeriodMicros)
}

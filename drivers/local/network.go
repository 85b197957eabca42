package local

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// How the driver uses the network filter (netfilter.go): decided once by New, an instance's uid joins the
// filter before anything of it runs (npm included) and leaves it when its sandbox has ended.

// netWatchInterval is how often the driver checks that its table is still whole (a firewall reload that
// flushes the ruleset takes it) and puts back what is missing.
const netWatchInterval = 2 * time.Second

// resolveTimeout bounds the lookup of the runtime API's or the registry's host name.
const resolveTimeout = 5 * time.Second

// networkFilter is the filter the driver would use, or nil and why instances' traffic cannot be filtered.
func (d *Driver) networkFilter() (*netFilter, string) {
	switch {
	case !d.sb.isolated():
		return nil, d.sb.reason
	case !d.sb.asRoot:
		return nil, "the platform does not run as root, so its instances run as its own uid and their traffic cannot be told from its own"
	case d.cfg.networkFilterOff:
		return nil, "the network filter is turned off"
	}
	return newNetFilter(d.cfg.DataDir, d.cfg.DenyNetworks), ""
}

// startNetwork writes the driver's table with the instances it adopted. A filter that does not work is
// an error in SandboxBwrap mode; in SandboxAuto the driver goes on with the network unfiltered.
func (d *Driver) startNetwork() error {
	if d.net != nil {
		if err := d.net.sync(d.netMembers()); err != nil {
			d.net, d.netReason = nil, "nftables does not work here: "+err.Error()
		}
	}
	if d.net == nil && d.sb.isolated() && d.cfg.Sandbox == SandboxBwrap {
		return fmt.Errorf("local driver: the instance sandbox is required but its network filter is unusable: %s", d.netReason)
	}
	return nil
}

// netMembers are the filter entries of the runtimes the driver watches.
func (d *Driver) netMembers() []netMember {
	var members []netMember
	for _, inst := range d.allInstances() {
		inst.mu.Lock()
		if p := inst.proc; p != nil && p.net != nil {
			members = append(members, *p.net)
		}
		inst.mu.Unlock()
	}
	return members
}

// netRun is the filter entry of a new run of the instance on port, as uid: it may reach its runtime API
// (forgeURL) and its own Node-RED. nil when the instance runs as the platform's uid, which no filter
// can tell apart.
func (d *Driver) netRun(ctx context.Context, uid, port int, forgeURL string) *netMember {
	if uid == os.Geteuid() {
		return nil
	}
	id := make([]byte, 8)
	rand.Read(id)
	m := newNetMember(uid, hex.EncodeToString(id), append(d.endpoints(ctx, forgeURL), ownEndpoint(port))...)
	return &m
}

// ownEndpoint is where the instance on port listens: flows may call their own http-in nodes.
func ownEndpoint(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(listenAddress(port)), uint16(port))
}

// admitNet puts run in the filter; nothing when the network is not filtered.
func (d *Driver) admitNet(run *netMember) error {
	if d.net == nil || run == nil {
		return nil
	}
	if err := d.net.admit(*run); err != nil {
		return fmt.Errorf("filter the instance's network: %w", err)
	}
	return nil
}

// releaseNet takes run out of the filter once its sandbox has ended. While any process still runs as
// its uid (a sandbox that did not die in time), the entry stays: better a stale entry than a process
// let loose.
func (d *Driver) releaseNet(run *netMember) {
	if d.net == nil || run == nil {
		return
	}
	if uidInUse(run.uid) {
		d.log.Warn("a process still runs as an ended instance's uid: its network stays filtered", "uid", run.uid)
		return
	}
	if err := d.net.release(run.uid, run.run); err != nil {
		d.log.Warn("could not take an ended instance out of the network filter", "uid", run.uid, "err", err)
	}
}

// adoptedNetRun is the filter entry of a runtime found running, read from its pidfile; nil when it does
// not run as its sandbox's uid. A runtime an earlier version started has no entry: it gets one that
// allows only its own address (its storage plugin cannot reach the runtime API until it restarts), and
// legacy says so.
func (d *Driver) adoptedNetRun(pid, port int, pf pidFile) (run *netMember, legacy bool) {
	uid, err := processUID(pid)
	if err != nil || uid == os.Geteuid() || uid != d.cfg.SandboxUIDBase+port {
		return nil, false
	}
	if pf.NetRun == "" {
		m := newNetMember(uid, "adopted "+strconv.Itoa(pid), ownEndpoint(port))
		return &m, true
	}
	m := newNetMember(uid, pf.NetRun, pf.NetAllowed...)
	return &m, false
}

// watchNetwork puts back what is missing of the filter, at most every netWatchInterval.
func (d *Driver) watchNetwork() {
	if d.net == nil || time.Since(d.netChecked) < netWatchInterval {
		return
	}
	d.netChecked = time.Now()
	own := d.netMembers()
	if len(own) == 0 {
		return
	}
	rebuilt, err := d.net.ensure(own)
	switch {
	case err != nil:
		d.log.Error("the instances' network filter cannot be checked", "err", err)
	case rebuilt:
		d.log.Warn("the instances' network filter was missing or changed (a firewall reload?): written again", "table", d.net.table.Name)
	}
}

// endpoints resolves http(s) URLs to the addresses and ports they name. A name that does not resolve
// is left out: the instance, which resolves it the same way, could not reach it either.
func (d *Driver) endpoints(ctx context.Context, urls ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		port := map[string]uint64{"http": 80, "https": 443}[u.Scheme]
		if u.Port() != "" {
			port, _ = strconv.ParseUint(u.Port(), 10, 16)
		}
		if port == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		cancel()
		if err != nil {
			d.log.Warn("cannot resolve an address instances must reach", "url", u.Redacted(), "err", err)
		}
		for _, a := range addrs {
			out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(port)))
		}
	}
	return out
}

// urlsIn are the http(s) URLs among env's values: npm's registry and proxies.
func urlsIn(env []string) []string {
	var urls []string
	for _, kv := range env {
		_, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://") {
			urls = append(urls, v)
		}
	}
	return urls
}

// processUID is the real uid of pid.
func processUID(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			if fields := strings.Fields(rest); len(fields) > 0 {
				return strconv.Atoi(fields[0])
			}
		}
	}
	return 0, fmt.Errorf("no uid in /proc/%d/status", pid)
}

// uidInUse reports whether a live process runs as uid.
func uidInUse(uid int) bool {
	for pid := range liveProcesses() {
		if u, err := processUID(pid); err == nil && u == uid {
			return true
		}
	}
	return false
}

package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/flowyard/flowyard/drivers"
)

// metadataAddress is where clouds serve an instance's metadata and credentials.
var metadataAddress = netip.MustParseAddr("169.254.169.254")

// networkAttacks are the connections the red team tries. Refused in the sandbox: the platform's own
// services on the host (a listener standing for the Temporal frontend on 127.0.0.1, reached directly,
// through 0.0.0.0 and as an IPv4-mapped IPv6 address, and one on ::1; the real Postgres when it runs; a
// listener on the host's non-loopback address), the victim's Node-RED and the cloud's metadata address.
// Let through: what a flow needs, its runtime API, its own address and a host outside.
func networkAttacks(t *testing.T, victim, attacker drivers.Status, forgeURL string) []attack {
	const temporalBanner = "temporal-frontend"
	temporal, _ := bannerListener(t, "127.0.0.1:0", temporalBanner)
	attacks := []attack{
		connectTo("connect to Temporal", temporal, temporalBanner),
		connectTo("connect to Temporal through 0.0.0.0", netip.AddrPortFrom(netip.IPv4Unspecified(), temporal.Port()), temporalBanner),
		connectTo("connect to Temporal through ::ffff:127.0.0.1", netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), temporal.Port()), temporalBanner),
	}
	if temporal6, ok := bannerListener(t, "[::1]:0", temporalBanner); ok {
		attacks = append(attacks, connectTo("connect to Temporal over IPv6", temporal6, temporalBanner))
	}
	if pg := postgresAddress(); reachable(pg) {
		attacks = append(attacks, connectTo("connect to Postgres", pg, ""))
	} else {
		t.Logf("no Postgres at %s: not attacked", pg)
	}
	if host, ok := hostAddress(); ok {
		service, _ := bannerListener(t, net.JoinHostPort(host.String(), "0"), "host-service")
		attacks = append(attacks, connectTo("connect to a service on the host's address "+host.String(), service, "host-service"))
	} else {
		t.Log("the host has no non-loopback address: not attacked")
	}
	attacks = append(attacks,
		connectTo("connect to the victim's Node-RED", addrPortOf(t, victim.URL), ""),
		connectTo("connect to the cloud's metadata", netip.AddrPortFrom(metadataAddress, 80), ""),
		allowed(connectTo("connect to its runtime API", addrPortOf(t, forgeURL), "")),
		allowed(connectTo("connect to its own Node-RED", addrPortOf(t, attacker.URL), "")))
	if outside, ok := outsideListener(t, "outside-host"); ok {
		attacks = append(attacks, allowed(connectTo("connect to a host outside", outside, "outside-host")))
	}
	return attacks
}

func allowed(a attack) attack {
	a.allowed = true
	return a
}

// refusedByFilter reports whether a failed connection got the filter's answer: ICMP administratively
// prohibited, which the kernel reports as EHOSTUNREACH over IPv4 and EACCES over IPv6.
func refusedByFilter(got string) bool {
	for _, s := range []string{"EHOSTUNREACH", "EACCES", "No route to host", "Permission denied"} {
		if strings.Contains(got, s) {
			return true
		}
	}
	return false
}

// bannerListener stands for a service: it listens on addr until the test ends and says banner to every
// connection. ok is false when addr cannot be listened on (no IPv6, say).
func bannerListener(t testing.TB, addr, banner string) (netip.AddrPort, bool) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatal(err)
		}
		t.Logf("cannot listen on %s: %v", addr, err)
		return netip.AddrPort{}, false
	}
	serveBanner(t, l, banner)
	return l.Addr().(*net.TCPAddr).AddrPort(), true
}

func serveBanner(t testing.TB, l net.Listener, banner string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(banner + "\n"))
			c.Close()
		}
	}()
}

// outsideListener listens, for the test, on an address that is not the host's own: in a network namespace
// of its own, joined to the host by a veth pair on a /30 of 198.18.0.0/15 (set aside for benchmarks,
// RFC 2544; a random one, as other tests may do the same at once). ok is false where that cannot be done.
func outsideListener(t *testing.T, banner string) (netip.AddrPort, bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: no host outside to connect to")
		return netip.AddrPort{}, false
	}
	n := rand.Uint32N(1 << 15) // the /30s of 198.18.0.0/15
	base := [4]byte{198, 18 + byte(n>>14), byte(n >> 6), byte(n<<2) & 0xfc}
	hostEnd, peer := base, base
	hostEnd[3]++
	peer[3] += 2
	id := fmt.Sprintf("%05x", n)
	ns, hostIf, peerIf := "flowyard-test-"+id, "fyo"+id, "fyp"+id
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", peerIf, "netns", ns},
		{"addr", "add", netip.AddrFrom4(hostEnd).String() + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", ns, "addr", "add", netip.AddrFrom4(peer).String() + "/30", "dev", peerIf},
		{"-n", ns, "link", "set", peerIf, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Logf("no host outside to connect to: ip %s: %v %s", strings.Join(args, " "), err, out)
			return netip.AddrPort{}, false
		}
	}
	l, err := listenInNamespace("/run/netns/"+ns, netip.AddrFrom4(peer).String()+":0")
	if err != nil {
		t.Logf("no host outside to connect to: %v", err)
		return netip.AddrPort{}, false
	}
	serveBanner(t, l, banner)
	return l.Addr().(*net.TCPAddr).AddrPort(), true
}

// listenInNamespace listens on addr in the network namespace at nsPath. It switches a thread of its own,
// which it never gives back: the thread ends with its goroutine, and no other goroutine runs in the
// namespace. The listening socket stays in the namespace wherever it is used from.
func listenInNamespace(nsPath, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		l, err := net.Listen("tcp", addr)
		done <- result{l, err}
	}()
	r := <-done
	return r.l, r.err
}

// hostAddress is an IPv4 address of the host's own that is not loopback (nor a test's veth).
func hostAddress() (netip.Addr, bool) {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(ipn.IP)
		ip = ip.Unmap()
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !netip.MustParsePrefix("198.18.0.0/15").Contains(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// postgresAddress is where the tests' Postgres listens (FLOWYARD_TEST_POSTGRES_URL, as the storage tests).
func postgresAddress() netip.AddrPort {
	if u, err := url.Parse(os.Getenv("FLOWYARD_TEST_POSTGRES_URL")); err == nil && u.Host != "" {
		if ap, err := netip.ParseAddrPort(u.Host); err == nil {
			return ap
		}
	}
	return netip.MustParseAddrPort("127.0.0.1:5432")
}

func reachable(ap netip.AddrPort) bool {
	c, err := net.DialTimeout("tcp", ap.String(), 2*time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func addrPortOf(t testing.TB, rawURL string) netip.AddrPort {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		t.Fatalf("%s: %v", rawURL, err)
	}
	return ap
}

// netHelperEnv makes the test binary create a driver (mode and data dir in the variable: "auto /path") and
// print what it says of its isolation, for TestNetworkNotFilteredWithoutRootOrNftables, which runs it with
// less privilege than the tests have.
const netHelperEnv = "FLOWYARD_LOCAL_NET_HELPER"

func runNetHelper(arg string) int {
	mode, dataDir, _ := strings.Cut(arg, " ")
	d, err := New(Config{DataDir: dataDir, Sandbox: SandboxMode(mode), Logger: slog.New(slog.NewTextHandler(os.Stdout, nil))})
	if err != nil {
		fmt.Println("refused:", err)
		return 0
	}
	defer d.Close()
	isolated, why := d.Isolated()
	fmt.Printf("isolated=%v why=%s\n", isolated, why)
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the network filter needs root: instances share the platform's uid otherwise")
	}
}

// probeSpec is an instance with the red team's flows, served by a runtime API of its own (returned).
func probeSpec(t *testing.T, id string) (drivers.InstanceSpec, netip.AddrPort) {
	spec := testSpec(id)
	spec.InstanceToken = "instance-token-" + id
	newFakeForge(t, &spec, redTeamFlows)
	return spec, addrPortOf(t, spec.ForgeURL)
}

// checkConnections has the instance at st connect to every target: those marked allowed must connect,
// the others must be refused by the network filter.
func checkConnections(t *testing.T, st drivers.Status, targets ...attack) {
	t.Helper()
	var got []attempt
	if err := json.Unmarshal(postJSON(t, st.URL+"/attack/js", map[string]any{"attacks": targets}), &got); err != nil {
		t.Fatalf("function node answered: %v", err)
	}
	for i, a := range got {
		t.Logf("%s: ok=%v got %.200q", a.Name, a.OK, a.Got)
		if want := targets[i]; a.OK != want.allowed || (!a.OK && !refusedByFilter(a.Got)) {
			t.Errorf("%s from %s: got ok=%v %.200q, want allowed=%v", a.Name, st.URL, a.OK, a.Got, want.allowed)
		}
	}
}

// filterMembers reads the network filter of dataDir (without networks of the operator's); complete is
// false when the table is missing or broken.
func filterMembers(t *testing.T, dataDir string) (members map[int]netMember, complete bool) {
	t.Helper()
	return readFilter(t, newNetFilter(dataDir, nil))
}

func readFilter(t *testing.T, f *netFilter) (members map[int]netMember, complete bool) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	members, complete, err = f.read(c)
	if err != nil {
		t.Fatal(err)
	}
	return members, complete
}

func tableExists(t *testing.T, dataDir string) bool {
	t.Helper()
	c, _ := nftables.New()
	exists, err := newNetFilter(dataDir, nil).exists(c)
	if err != nil {
		t.Fatal(err)
	}
	return exists
}

// TestNetworkFilterFollowsInstances: a running instance's uid is in the filter with its run and its
// endpoints; a driver restarted over the same data dir keeps the instance it adopts filtered and takes
// out one that died while no driver watched; a table removed behind the driver's back (a firewall
// reload) is written again; a stopped instance leaves the filter, and the driver that closes with none
// left takes the table away.
func TestNetworkFilterFollowsInstances(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dataDir := t.TempDir()
	temporal, _ := bannerListener(t, "127.0.0.1:0", "temporal")
	d1 := newTestDriver(t, dataDir, func(c *Config) { c.Sandbox = SandboxBwrap })
	kept, keptForge := probeSpec(t, "kept")
	died, _ := probeSpec(t, "died")
	st := startReady(t, d1, kept)
	diedPID := startReady(t, d1, died).PID
	diedUID := processUIDOrFail(t, diedPID)
	keptUID := processUIDOrFail(t, st.PID)
	pf, _, _ := readPidFile(d1.instanceDir(kept.InstanceID))
	want := newNetMember(keptUID, pf.NetRun, keptForge, ownEndpoint(st.Port))
	if members, complete := filterMembers(t, dataDir); !complete || !members[keptUID].equal(want) || members[diedUID].run == "" {
		t.Fatalf("filter holds %+v (complete %v), want %+v and the other instance", members, complete, want)
	}
	probe := []attack{allowed(connectTo("its runtime API", keptForge, "")), connectTo("Temporal", temporal, "temporal")}
	checkConnections(t, st, probe...)

	d1.Close() // the platform goes; its instances stay, and one of them dies meanwhile
	if !tableExists(t, dataDir) {
		t.Fatal("the table went with the driver while an instance ran")
	}
	signalGroup(diedPID, syscall.SIGKILL)
	eventually(t, "the killed instance's sandbox to end", func() bool { return !uidInUse(diedUID) })

	d2 := newTestDriver(t, dataDir, func(c *Config) { c.Sandbox = SandboxBwrap })
	members, _ := filterMembers(t, dataDir)
	if !members[keptUID].equal(want) {
		t.Errorf("after the restart the filter holds %+v for the adopted instance, want %+v", members[keptUID], want)
	}
	if _, ok := members[diedUID]; ok {
		t.Errorf("the instance that died unwatched is still in the filter: %+v", members)
	}
	checkConnections(t, st, probe...)

	deleteTable(t, dataDir) // as `nft flush ruleset` in a firewall reload would
	eventually(t, "the filter to be written again", func() bool {
		members, complete := filterMembers(t, dataDir)
		return complete && members[keptUID].equal(want)
	})

	if err := d2.Stop(ctx, kept.InstanceID); err != nil {
		t.Fatal(err)
	}
	if members, _ := filterMembers(t, dataDir); len(members) > 0 {
		t.Errorf("the stopped instance is still in the filter: %+v", members)
	}
	d2.Close()
	if tableExists(t, dataDir) {
		t.Error("the empty table outlived the driver")
	}
}

func processUIDOrFail(t *testing.T, pid int) int {
	t.Helper()
	uid, err := processUID(pid)
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func deleteTable(t *testing.T, dataDir string) {
	t.Helper()
	c, _ := nftables.New()
	c.DelTable(newNetFilter(dataDir, nil).table)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestNetworkFiltersOfTwoDataDirs: two platforms on one host have a table each; each instance reaches its
// own runtime API and not the other platform's; a uid left over in one table (by a platform killed before
// it saw its instance end) does not follow the instance of the other platform that gets it; and one
// platform's table going leaves the other's instances filtered.
func TestNetworkFiltersOfTwoDataDirs(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	temporal, _ := bannerListener(t, "127.0.0.1:0", "temporal")
	portB := freePort(t) // known in advance, and so is the uid of B's instance
	dA := newTestDriver(t, "", func(c *Config) { c.Sandbox = SandboxBwrap })
	dB := newTestDriver(t, "", func(c *Config) { c.Sandbox = SandboxBwrap; c.PortMin, c.PortMax = portB, portB })
	if dA.net.table.Name == dB.net.table.Name {
		t.Fatalf("both data dirs have table %s", dA.net.table.Name)
	}
	a, forgeA := probeSpec(t, "a")
	b, forgeB := probeSpec(t, "b")
	stA := startReady(t, dA, a)
	uidA, uidB := processUIDOrFail(t, stA.PID), defaultSandboxUIDBase+portB
	if err := dA.net.admit(newNetMember(uidB, "left over")); err != nil {
		t.Fatal(err)
	}
	stB := startReady(t, dB, b)

	membersA, _ := filterMembers(t, dA.cfg.DataDir)
	membersB, _ := filterMembers(t, dB.cfg.DataDir)
	if _, ok := membersA[uidB]; ok || membersB[uidB].run == "" || membersA[uidA].run == "" {
		t.Errorf("A's table holds %+v, B's %+v: want A's instance in A's only and B's in B's only", membersA, membersB)
	}
	checkConnections(t, stA, allowed(connectTo("A's runtime API", forgeA, "")), connectTo("B's runtime API", forgeB, ""))
	checkConnections(t, stB, allowed(connectTo("B's runtime API", forgeB, "")), connectTo("A's runtime API", forgeA, ""))

	if err := dA.Stop(ctx, a.InstanceID); err != nil {
		t.Fatal(err)
	}
	dA.Close()
	if tableExists(t, dA.cfg.DataDir) || !tableExists(t, dB.cfg.DataDir) {
		t.Fatal("closing A must remove A's empty table and leave B's")
	}
	checkConnections(t, stB, allowed(connectTo("B's runtime API", forgeB, "")), connectTo("Temporal", temporal, "temporal"))
}

// TestNetworkFilterRules reads the rules back: the instances' sockets alone are matched, and what they are
// refused is the host's own addresses, the link-local and metadata ranges and the operator's networks,
// which leaves the internet and the LAN reachable.
func TestNetworkFilterRules(t *testing.T) {
	requireRoot(t)
	deny := []netip.Prefix{netip.MustParsePrefix("10.0.5.0/24"), netip.MustParsePrefix("fd00:db::/64")}
	d := newTestDriver(t, "", func(c *Config) { c.Sandbox = SandboxBwrap; c.DenyNetworks = deny })
	m := newNetMember(defaultSandboxUIDBase+1, "run", netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("[::1]:8080"))
	if err := d.admitNet(&m); err != nil {
		t.Fatal(err)
	}
	if members, complete := readFilter(t, d.net); !complete || len(members) != 1 || !members[m.uid].equal(m) {
		t.Fatalf("filter holds %+v (complete %v), want %+v", members, complete, m)
	}
	c, _ := nftables.New()
	rules, err := c.GetRules(d.net.table, &nftables.Chain{Name: netChain, Table: d.net.table})
	if err != nil {
		t.Fatal(err)
	}
	if first := rules[0].Exprs; len(first) != 3 || !isSkuidNotInInstances(first) {
		t.Errorf("the first rule does not let every other socket through: %#v", first)
	}
	var refused []string
	for _, r := range rules {
		if _, ok := r.Exprs[len(r.Exprs)-1].(*expr.Reject); ok {
			refused = append(refused, refusedBy(t, r.Exprs))
		}
	}
	want := []string{"the host's own addresses"}
	for _, p := range append(slices.Clone(defaultDenyNetworks), deny...) {
		want = append(want, p.String())
	}
	if !slices.Equal(refused, want) {
		t.Errorf("the rules refuse %q, want %q", refused, want)
	}
	for _, outside := range []string{"198.18.0.2", "8.8.8.8", "192.168.1.10", "2001:db8::1"} {
		for _, p := range refused[1:] {
			if netip.MustParsePrefix(p).Contains(netip.MustParseAddr(outside)) {
				t.Errorf("%s, not the host's, is refused by %s", outside, p)
			}
		}
	}
}

func isSkuidNotInInstances(exprs []expr.Any) bool {
	meta, ok1 := exprs[0].(*expr.Meta)
	lookup, ok2 := exprs[1].(*expr.Lookup)
	verdict, ok3 := exprs[2].(*expr.Verdict)
	return ok1 && ok2 && ok3 && meta.Key == expr.MetaKeySKUID && lookup.SetName == netSetInstances && lookup.Invert &&
		verdict.Kind == expr.VerdictAccept
}

// refusedBy names what a reject rule matches: the host's own addresses (fib daddr type local) or a prefix.
func refusedBy(t *testing.T, exprs []expr.Any) string {
	var addr []byte
	bits := -1
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Fib:
			return "the host's own addresses"
		case *expr.Bitwise:
			bits = 0
			for _, b := range e.Mask {
				bits += popcount(b)
			}
		case *expr.Cmp:
			if len(e.Data) == 4 || len(e.Data) == 16 {
				addr = e.Data
			}
		}
	}
	a, ok := netip.AddrFromSlice(addr)
	if !ok {
		t.Fatalf("a reject rule matches neither an address nor the host's: %#v", exprs)
	}
	if bits < 0 {
		bits = a.BitLen()
	}
	return netip.PrefixFrom(a, bits).String()
}

func popcount(b byte) int {
	n := 0
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// TestNetworkNotFilteredWithoutRootOrNftables: where the filter cannot work (a platform that does not run
// as root, whose instances share its uid; a root without CAP_NET_ADMIN, as in a container that forbids
// nftables), auto mode starts with the instances reported as not isolated, and bwrap mode refuses to start.
func TestNetworkNotFilteredWithoutRootOrNftables(t *testing.T) {
	requireRoot(t)
	dir, err := os.MkdirTemp("", "flowyard-net-helper-") // under /tmp, where another uid can get in
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "local.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil || os.Chmod(dir, 0o755) != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		setpriv []string
		reason  string
	}{
		{"not root", []string{"--reuid=65534", "--regid=65534", "--clear-groups"}, "the platform does not run as root"},
		{"root without CAP_NET_ADMIN", []string{"--inh-caps=-net_admin", "--bounding-set=-net_admin"}, "nftables does not work here"},
	} {
		for _, mode := range []SandboxMode{SandboxAuto, SandboxBwrap} {
			t.Run(c.name+", "+string(mode), func(t *testing.T) {
				dataDir, err := os.MkdirTemp(dir, "data-")
				if err != nil || os.Chmod(dataDir, 0o777) != nil {
					t.Fatal(err)
				}
				cmd := exec.Command("setpriv", append(c.setpriv, bin)...)
				cmd.Env = append(os.Environ(), netHelperEnv+"="+string(mode)+" "+dataDir)
				out, _ := cmd.CombinedOutput()
				t.Logf("%s", out)
				switch {
				case mode == SandboxBwrap && !strings.Contains(string(out), "refused: local driver: the instance sandbox is required but its network filter is unusable: "+c.reason):
					t.Error("bwrap mode did not refuse to start without the network filter")
				case mode == SandboxAuto && (!strings.Contains(string(out), "isolated=false why=network not filtered: "+c.reason) ||
					!strings.Contains(string(out), `level=WARN msg="INSTANCES ARE NOT ISOLATED: every flow can reach the platform's own services`)):
					t.Error("auto mode did not report the instances' network as not isolated, with a WARN line")
				}
			})
		}
	}
}

// TestNetworkFilterOfAGoneDataDirIsCollected: a driver starting deletes the tables of data dirs that no
// longer exist (a test's, or one an operator removed) and leaves those of data dirs that do.
func TestNetworkFilterOfAGoneDataDirIsCollected(t *testing.T) {
	requireRoot(t)
	gone, kept := filepath.Join(t.TempDir(), "gone"), t.TempDir()
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{gone, kept} {
		if err := newNetFilter(dir, nil).sync([]netMember{newNetMember(defaultSandboxUIDBase+1, "left over")}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { dropNetworkFilter(t, kept) })
	os.RemoveAll(gone)
	newTestDriver(t, "", func(c *Config) { c.Sandbox = SandboxBwrap })
	if tableExists(t, gone) || !tableExists(t, kept) {
		t.Errorf("after a driver started, the table of the removed data dir exists: %v, the other's: %v", tableExists(t, gone), tableExists(t, kept))
	}
}

// TestEndpointsOfURLs: the runtime API's and npm's URLs become the addresses and ports an instance may reach.
func TestEndpointsOfURLs(t *testing.T) {
	d := &Driver{log: discardLogger()}
	got := d.endpoints(context.Background(), "http://127.0.0.1", "https://[::1]/registry/", "http://localhost:8080/api", "not a url", "http://")
	for _, want := range []string{"127.0.0.1:80", "[::1]:443", "127.0.0.1:8080"} {
		if !slices.Contains(got, netip.MustParseAddrPort(want)) {
			t.Errorf("endpoints = %v, want %s among them", got, want)
		}
	}
	env := []string{"PATH=/usr/bin", "npm_config_registry=http://127.0.0.1:4873/", "HTTPS_PROXY=https://proxy:3128", "npm_config_strict_ssl=true"}
	if urls := urlsIn(env); !slices.Equal(urls, []string{"http://127.0.0.1:4873/", "https://proxy:3128"}) {
		t.Errorf("urlsIn = %q", urls)
	}
}

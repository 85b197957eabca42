package local

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

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

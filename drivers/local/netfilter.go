package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The network filter. A sandbox shares the host's network (a network namespace of its own would need a
// user-mode network stack beside every instance; see docs/ARCHITECTURE.md §9), so without a filter a
// flow reaches everything the host reaches on loopback: the Temporal frontend (no authentication: it
// could signal, terminate or read every team's workflows), the database, the MQTT broker, every other
// instance's Node-RED and admin API, and the cloud's metadata service. As root, each instance runs as a
// uid of its own, so one nftables table matches the sockets of exactly those uids (meta skuid) on the
// output hook and refuses them the host's own addresses (fib daddr type local: 127/8, ::1 and every
// address of the host), the link-local ranges where clouds serve instance metadata, and any network the
// operator names, except the few local endpoints each instance needs: its runtime API (the storage
// plugin), its own Node-RED, and npm's registry while the platform installs its modules. DNS passes.
// Everything else (the internet, the LAN) stays reachable: that is what flows are for.
//
// The table belongs to one data dir (its name is a hash of the path), so a restarted platform finds and
// replaces its own, and several platforms on one host (the tests run many) never touch each other's
// rules. Drivers over the same data dir share the table, so every change reads the kernel's state and
// writes the difference under a lock file in the data dir, and each entry names the run that made it:
// a driver removes only its own run's entry, never one a newer run of the same uid has put there.

const (
	netTablePrefix  = "flowyard_"
	netChain        = "output"
	netSetInstances = "instances" // the uids of running instances
	netSetAllowed4  = "allowed4"  // uid . IPv4 address . TCP port: local endpoints an instance may reach
	netSetAllowed6  = "allowed6"  // the same over IPv6
	netLockFile     = "network.lock"
	netLockTimeout  = 30 * time.Second
)

// defaultDenyNetworks are refused to instances besides the host's own addresses: the link-local ranges,
// where clouds serve instance metadata and credentials (169.254.169.254), and AWS's IPv6 metadata address.
var defaultDenyNetworks = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("fd00:ec2::254/128"),
}

// netMember is one running instance in the filter: its uid, the run that put it there, and the local
// endpoints it may reach.
type netMember struct {
	uid     int
	run     string
	allowed []netip.AddrPort // sorted, unmapped, without duplicates
}

func newNetMember(uid int, run string, allowed ...netip.AddrPort) netMember {
	m := netMember{uid: uid, run: run}
	for _, ap := range allowed {
		m.allowed = append(m.allowed, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	slices.SortFunc(m.allowed, func(a, b netip.AddrPort) int { return a.Compare(b) })
	m.allowed = slices.Compact(m.allowed)
	return m
}

// with is m allowed more endpoints.
func (m netMember) with(more ...netip.AddrPort) netMember {
	return newNetMember(m.uid, m.run, append(slices.Clone(m.allowed), more...)...)
}

func (m netMember) equal(o netMember) bool {
	return m.uid == o.uid && m.run == o.run && slices.Equal(m.allowed, o.allowed)
}

// netFilter is the nftables table of one data dir.
type netFilter struct {
	table    *nftables.Table
	dataDir  string
	deny     []netip.Prefix
	lockPath string
	mu       sync.Mutex // the lock file serialises processes; this, the goroutines of one
}

func newNetFilter(dataDir string, deny []netip.Prefix) *netFilter {
	return &netFilter{table: &nftables.Table{Family: nftables.TableFamilyINet, Name: netTableName(dataDir)},
		dataDir: dataDir, deny: append(slices.Clone(defaultDenyNetworks), deny...), lockPath: filepath.Join(dataDir, netLockFile)}
}

// netTableName is the table of the data dir: nftables names are short, paths are not.
func netTableName(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return netTablePrefix + hex.EncodeToString(sum[:8])
}

// update changes the members the kernel holds: change edits what was read, and the difference is written
// in one batch. The whole table is written instead, atomically, when rebuild is set or the table is not
// (or no longer: a firewall reload may flush it) as this version writes it; rebuilt says so.
func (f *netFilter) update(rebuild bool, change func(members map[int]netMember)) (rebuilt bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), netLockTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, f.lockPath)
	if err != nil {
		return false, fmt.Errorf("network filter: lock: %w", err)
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		rebuilt, err = f.write(rebuild, change)
		if err == nil || attempt == 1 {
			return rebuilt, err
		}
		// Once more: another data dir's driver may have taken a uid out of this table between the read
		// and the write (claim), which makes a batch that deletes it fail.
	}
}

func (f *netFilter) write(rebuild bool, change func(members map[int]netMember)) (rebuilt bool, err error) {
	c, err := nftables.New(nftables.AsLasting()) // one netlink socket for the reads and the write
	if err != nil {
		return false, err
	}
	defer c.CloseLasting()
	have, complete, err := f.read(c)
	if err != nil {
		return false, err
	}
	want := maps.Clone(have)
	change(want)
	if rebuild || !complete {
		return true, f.replace(c, want)
	}
	return false, f.patch(c, have, want)
}

// sync rebuilds the table at start (its rules may be an earlier version's, or name other networks): the
// members it holds, and those of the runtimes the driver adopted. One batch: no adopted instance is
// unfiltered at any moment. Tables of data dirs that no longer exist go too.
func (f *netFilter) sync(adopted []netMember) error {
	_, err := f.update(true, func(members map[int]netMember) {
		for _, m := range adopted {
			members[m.uid] = m
		}
	})
	if err != nil {
		return err
	}
	f.collectGarbage()
	return nil
}

// admit filters m's uid, allowing exactly m's endpoints, and takes the uid out of other data dirs' tables,
// where it can only be left over: the uid is m's port's, and the port is this driver's now.
func (f *netFilter) admit(m netMember) error {
	if _, err := f.update(false, func(members map[int]netMember) { members[m.uid] = m }); err != nil {
		return err
	}
	f.claim(m.uid)
	return nil
}

// release stops filtering uid, unless another run has put it there since.
func (f *netFilter) release(uid int, run string) error {
	_, err := f.update(false, func(members map[int]netMember) {
		if members[uid].run == run {
			delete(members, uid)
		}
	})
	return err
}

// ensure puts back every one of own that is missing (after a firewall reload, for instance), and the whole
// table when it is gone or changed; rebuilt says it was.
func (f *netFilter) ensure(own []netMember) (bool, error) {
	return f.update(false, func(members map[int]netMember) {
		for _, m := range own {
			if _, ok := members[m.uid]; !ok {
				members[m.uid] = m
			}
		}
	})
}

// remove deletes the table; with onlyIfEmpty, only when it filters no instance.
func (f *netFilter) remove(onlyIfEmpty bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), netLockTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, f.lockPath)
	if err != nil {
		return fmt.Errorf("network filter: lock: %w", err)
	}
	defer unlock()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if exists, err := f.exists(c); err != nil || !exists {
		return err
	}
	if members, _, err := f.read(c); err != nil || (onlyIfEmpty && len(members) > 0) {
		return err
	}
	c.DelTable(f.table)
	return c.Flush()
}

func (f *netFilter) exists(c *nftables.Conn) (bool, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("network filter: list tables: %w", err)
	}
	return slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == f.table.Name }), nil
}

// read returns the members the table holds; complete is false when the table, a set, the chain or a rule
// is missing.
func (f *netFilter) read(c *nftables.Conn) (members map[int]netMember, complete bool, err error) {
	members = map[int]netMember{}
	if exists, err := f.exists(c); err != nil || !exists {
		return members, false, err
	}
	complete = true
	elements := map[string][]nftables.SetElement{}
	for _, name := range []string{netSetInstances, netSetAllowed4, netSetAllowed6} {
		set, err := c.GetSetByName(f.table, name)
		if err != nil {
			complete = false
			continue
		}
		if elements[name], err = c.GetSetElements(set); err != nil {
			return nil, false, fmt.Errorf("network filter: read set %s: %w", name, err)
		}
	}
	for _, e := range elements[netSetInstances] {
		if len(e.Key) == 4 {
			uid := int(binaryutil.NativeEndian.Uint32(e.Key))
			members[uid] = netMember{uid: uid, run: e.Comment}
		}
	}
	for _, e := range append(elements[netSetAllowed4], elements[netSetAllowed6]...) {
		uid, ap, ok := decodeAllowed(e.Key)
		if m, member := members[uid]; ok && member {
			members[uid] = m.with(ap)
		}
	}
	rules, err := c.GetRules(f.table, &nftables.Chain{Name: netChain, Table: f.table})
	if err != nil || len(rules) != len(f.rules(&nftables.Set{}, &nftables.Set{}, &nftables.Set{})) {
		complete = false
	}
	return members, complete, nil
}

// patch writes the difference between have and want.
func (f *netFilter) patch(c *nftables.Conn, have, want map[int]netMember) error {
	instances, allowed4, allowed6 := f.sets()
	changed := false
	for uid, h := range have {
		if w, ok := want[uid]; !ok || !w.equal(h) {
			changed = true
			if err := f.queue(c.SetDeleteElements, h, instances, allowed4, allowed6); err != nil {
				return err
			}
		}
	}
	for uid, w := range want {
		if h, ok := have[uid]; !ok || !w.equal(h) {
			changed = true
			if err := f.queue(c.SetAddElements, w, instances, allowed4, allowed6); err != nil {
				return err
			}
		}
	}
	if !changed {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network filter: %w", err)
	}
	return nil
}

// queue adds m's elements to the batch through op (SetAddElements or SetDeleteElements).
func (f *netFilter) queue(op func(*nftables.Set, []nftables.SetElement) error, m netMember, instances, allowed4, allowed6 *nftables.Set) error {
	v4, v6 := allowedElements([]netMember{m})
	for set, elems := range map[*nftables.Set][]nftables.SetElement{instances: instanceElements([]netMember{m}), allowed4: v4, allowed6: v6} {
		if len(elems) == 0 {
			continue
		}
		if err := op(set, elems); err != nil {
			return fmt.Errorf("network filter: %w", err)
		}
	}
	return nil
}

// replace writes the whole table holding members in one batch: the kernel applies it at once or not at
// all, so no packet ever meets a half-written table.
func (f *netFilter) replace(c *nftables.Conn, members map[int]netMember) error {
	all := slices.Collect(maps.Values(members))
	c.AddTable(f.table) // so that the deletion below finds it
	c.DelTable(f.table)
	c.AddTable(f.table)
	instances, allowed4, allowed6 := f.sets()
	v4, v6 := allowedElements(all)
	for set, elems := range map[*nftables.Set][]nftables.SetElement{instances: instanceElements(all), allowed4: v4, allowed6: v6} {
		if err := c.AddSet(set, elems); err != nil {
			return fmt.Errorf("network filter: %w", err)
		}
	}
	policy := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: netChain, Table: f.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	for i, exprs := range f.rules(instances, allowed4, allowed6) {
		rule := &nftables.Rule{Table: f.table, Chain: chain, Exprs: exprs}
		if i == 0 {
			rule.UserData = userdata.AppendString(nil, userdata.TypeComment, f.comment())
		}
		c.AddRule(rule)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network filter: write table %s: %w", f.table.Name, err)
	}
	return nil
}

func (f *netFilter) sets() (instances, allowed4, allowed6 *nftables.Set) {
	return &nftables.Set{Table: f.table, Name: netSetInstances, KeyType: nftables.TypeUID, KeyByteOrder: binaryutil.NativeEndian},
		&nftables.Set{Table: f.table, Name: netSetAllowed4, Concatenation: true,
			KeyType: nftables.MustConcatSetType(nftables.TypeUID, nftables.TypeIPAddr, nftables.TypeInetService)},
		&nftables.Set{Table: f.table, Name: netSetAllowed6, Concatenation: true,
			KeyType: nftables.MustConcatSetType(nftables.TypeUID, nftables.TypeIP6Addr, nftables.TypeInetService)}
}

// comment tells, on the table's first rule, whose the table is: the data dir, and the mount namespace that
// path is seen from (collectGarbage trusts a missing path only when it looks from the same one).
func (f *netFilter) comment() string {
	c := "flowyard " + mountNamespace()
	if len(c)+1+len(f.dataDir) <= 200 { // the kernel keeps 256 bytes of a rule's user data
		c += " " + f.dataDir
	}
	return c
}

func mountNamespace() string {
	ns, _ := os.Readlink("/proc/self/ns/mnt")
	return ns
}

// collectGarbage deletes the tables of data dirs that no longer exist (a test's, or one an operator
// deleted), as seen from this mount namespace: another container on the host network sees other paths.
func (f *netFilter) collectGarbage() {
	c, err := nftables.New()
	if err != nil {
		return
	}
	for _, t := range f.foreignTables(c) {
		rules, err := c.GetRules(t, &nftables.Chain{Name: netChain, Table: t})
		if err != nil || len(rules) == 0 {
			continue
		}
		comment, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment)
		fields := strings.SplitN(comment, " ", 3)
		if len(fields) != 3 || fields[0] != "flowyard" || fields[1] != mountNamespace() || !filepath.IsAbs(fields[2]) {
			continue
		}
		if _, err := os.Stat(fields[2]); errors.Is(err, fs.ErrNotExist) {
			c.DelTable(t)
			_ = c.Flush() // another driver may have deleted it first
		}
	}
}

// claim takes uid out of every other data dir's table. Failures are ignored: the table may go meanwhile.
func (f *netFilter) claim(uid int) {
	c, err := nftables.New()
	if err != nil {
		return
	}
	for _, t := range f.foreignTables(c) {
		set, err := c.GetSetByName(t, netSetInstances)
		if err != nil {
			continue
		}
		elems, err := c.GetSetElements(set)
		if err != nil || !slices.ContainsFunc(elems, func(e nftables.SetElement) bool { return slices.Equal(e.Key, uidKey(uid)) }) {
			continue
		}
		if c.SetDeleteElements(set, []nftables.SetElement{{Key: uidKey(uid)}}) == nil {
			_ = c.Flush()
		}
	}
}

// foreignTables are the other data dirs' tables.
func (f *netFilter) foreignTables(c *nftables.Conn) []*nftables.Table {
	tables, _ := c.ListTablesOfFamily(nftables.TableFamilyINet)
	return slices.DeleteFunc(tables, func(t *nftables.Table) bool {
		return !strings.HasPrefix(t.Name, netTablePrefix) || t.Name == f.table.Name
	})
}

// rules are the chain's rules, in order. Reject, not drop: a refused connection fails at once
// (EHOSTUNREACH over IPv4, EACCES over IPv6) instead of hanging until a timeout.
func (f *netFilter) rules(instances, allowed4, allowed6 *nftables.Set) [][]expr.Any {
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	rules := [][]expr.Any{
		// Every socket but the instances' passes untouched: the platform, the host, other tables' instances.
		{&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: instances.Name, SetID: instances.ID, Invert: true}, accept},
		// The rest of a connection already let through, and the answers to connections made to the instance
		// (the platform's requests to its Node-RED, say).
		{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}, accept},
		allowedRule(allowed4, unix.NFPROTO_IPV4, 16, 4),
		allowedRule(allowed6, unix.NFPROTO_IPV6, 24, 16),
		// DNS, wherever the resolver is: on the host (127.0.0.53) or in a network the operator denies.
		dnsRule(unix.IPPROTO_UDP), dnsRule(unix.IPPROTO_TCP),
		// The host's own addresses: every loopback address (Temporal, the database, the broker, the other
		// instances) and the addresses of its interfaces, where the same services may listen.
		{&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)}, reject()},
	}
	for _, p := range f.deny {
		rules = append(rules, prefixRule(p))
	}
	return rules
}

func reject() *expr.Reject {
	return &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
}

// allowedRule accepts TCP from a member to an endpoint of its own in set: meta skuid . daddr . tcp dport.
// A concatenation's fields sit in consecutive 32-bit registers (8 is the first).
func allowedRule(set *nftables.Set, family byte, daddrOffset, addrLen uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Meta{Key: expr.MetaKeySKUID, Register: 8},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOffset, Len: addrLen},
		&expr.Payload{DestRegister: 9 + addrLen/4, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 8, SetName: set.Name, SetID: set.ID},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

func dnsRule(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// prefixRule rejects every destination in p.
func prefixRule(p netip.Prefix) []expr.Any {
	family, offset := byte(unix.NFPROTO_IPV4), uint32(16)
	if p.Addr().Is6() {
		family, offset = unix.NFPROTO_IPV6, 24
	}
	addr := p.Masked().Addr().AsSlice()
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(len(addr))},
	}
	if p.Bits() < p.Addr().BitLen() {
		exprs = append(exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)),
			Mask: prefixMask(p.Bits(), len(addr)), Xor: make([]byte, len(addr))})
	}
	return append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr}, reject())
}

// prefixMask is a network mask of bits ones in size bytes.
func prefixMask(bits, size int) []byte {
	mask := make([]byte, size)
	for i := range bits {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return mask
}

func uidKey(uid int) []byte { return binaryutil.NativeEndian.PutUint32(uint32(uid)) }

func instanceElements(members []netMember) []nftables.SetElement {
	var elems []nftables.SetElement
	for _, m := range members {
		elems = append(elems, nftables.SetElement{Key: uidKey(m.uid), Comment: m.run})
	}
	return elems
}

// allowedElements are the members' endpoints as keys of allowed4 and allowed6: uid, address and port,
// each field padded to 4 bytes.
func allowedElements(members []netMember) (v4, v6 []nftables.SetElement) {
	for _, m := range members {
		for _, ap := range m.allowed {
			key := append(uidKey(m.uid), ap.Addr().AsSlice()...)
			key = append(key, byte(ap.Port()>>8), byte(ap.Port()), 0, 0)
			if ap.Addr().Is4() {
				v4 = append(v4, nftables.SetElement{Key: key})
			} else {
				v6 = append(v6, nftables.SetElement{Key: key})
			}
		}
	}
	return v4, v6
}

func decodeAllowed(key []byte) (uid int, ap netip.AddrPort, ok bool) {
	if len(key) != 12 && len(key) != 24 {
		return 0, ap, false
	}
	addr, ok := netip.AddrFromSlice(key[4 : len(key)-4])
	port := uint16(key[len(key)-4])<<8 | uint16(key[len(key)-3])
	return int(binaryutil.NativeEndian.Uint32(key[:4])), netip.AddrPortFrom(addr, port), ok
}

package deploycheck_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/flowyard/flowyard/drivers/kubernetes"
)

// endpoint is one end of a connection: a pod (namespace and labels) or an address outside the cluster.
type endpoint struct {
	ns     string // "" outside the cluster
	labels map[string]string
	ip     netip.Addr
}

func pod(ns, ip string, lbls map[string]string) endpoint {
	return endpoint{ns: ns, labels: lbls, ip: netip.MustParseAddr(ip)}
}

func outside(ip string) endpoint { return endpoint{ip: netip.MustParseAddr(ip)} }

// policyEngine decides connections the way the NetworkPolicy API defines it: a pod selected by a policy of its
// namespace that names a direction is isolated in that direction, and then a connection is allowed only when a
// rule of one of those policies matches it (the rules of all of them add up); a connection needs the sender's
// egress and the receiver's ingress. Nothing limits an address outside the cluster. An ipBlock is applied to
// pod addresses too (the API leaves it to the CNI), which only ever allows more: a deny found here holds on
// every CNI.
type policyEngine struct {
	t        *testing.T
	policies []*networkingv1.NetworkPolicy
}

func (e policyEngine) allows(src, dst endpoint, proto corev1.Protocol, port int32) bool {
	return e.side(src, dst, proto, port, networkingv1.PolicyTypeEgress) && e.side(dst, src, proto, port, networkingv1.PolicyTypeIngress)
}

// side: may self send to (egress) or accept from (ingress) peer?
func (e policyEngine) side(self, peer endpoint, proto corev1.Protocol, port int32, dir networkingv1.PolicyType) bool {
	if self.ns == "" {
		return true
	}
	isolated := false
	for _, p := range e.policies {
		if p.Namespace != self.ns || !e.selects(&p.Spec.PodSelector, self.labels) || !slices.Contains(policyTypes(p), dir) {
			continue
		}
		isolated = true
		if dir == networkingv1.PolicyTypeEgress {
			for _, r := range p.Spec.Egress {
				if e.portsMatch(r.Ports, proto, port) && e.peersMatch(p.Namespace, r.To, peer) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Ingress {
				if e.portsMatch(r.Ports, proto, port) && e.peersMatch(p.Namespace, r.From, peer) {
					return true
				}
			}
		}
	}
	return !isolated
}

// policyTypes applies the API's default: Ingress always, Egress when the policy has egress rules.
func policyTypes(p *networkingv1.NetworkPolicy) []networkingv1.PolicyType {
	if len(p.Spec.PolicyTypes) > 0 {
		return p.Spec.PolicyTypes
	}
	types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if len(p.Spec.Egress) > 0 {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	return types
}

func (e policyEngine) selects(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(e.t, err)
	return s.Matches(labels.Set(lbls))
}

// portsMatch: no ports is every port; a port without a number is every port of its protocol.
func (e policyEngine) portsMatch(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		want := corev1.ProtocolTCP
		if p.Protocol != nil {
			want = *p.Protocol
		}
		if want != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		require.Zero(e.t, p.Port.StrVal, "named ports are beyond this engine")
		last := p.Port.IntVal
		if p.EndPort != nil {
			last = *p.EndPort
		}
		if port >= p.Port.IntVal && port <= last {
			return true
		}
	}
	return false
}

// peersMatch: no peers is everyone. A peer's selectors both have to match; a peer without a namespace
// selector is in the policy's namespace.
func (e policyEngine) peersMatch(policyNS string, peers []networkingv1.NetworkPolicyPeer, ep endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if inBlock(e.t, p.IPBlock, ep.ip) {
				return true
			}
			continue
		}
		if ep.ns == "" {
			continue
		}
		nsOK := ep.ns == policyNS
		if p.NamespaceSelector != nil {
			nsOK = e.selects(p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": ep.ns})
		}
		if nsOK && (p.PodSelector == nil || e.selects(p.PodSelector, ep.labels)) {
			return true
		}
	}
	return false
}

func inBlock(t *testing.T, b *networkingv1.IPBlock, ip netip.Addr) bool {
	if !netip.MustParsePrefix(b.CIDR).Contains(ip) {
		return false
	}
	for _, ex := range b.Except {
		prefix := netip.MustParsePrefix(ex)
		require.Equal(t, netip.MustParsePrefix(b.CIDR).Addr().Is4(), prefix.Addr().Is4(), "except %s outside %s", ex, b.CIDR)
		if prefix.Contains(ip) {
			return false
		}
	}
	return true
}

// cluster is a rendered release with two instances the kubernetes driver made, the pods around them and
// addresses outside.
type cluster struct {
	engine policyEngine
	eps    map[string]endpoint
}

// newCluster renders the chart with values and starts two instances with the driver (client-go's fake), whose
// pods carry their Deployments' template labels, as the Deployment controller would make them.
func newCluster(t *testing.T, values map[string]any) cluster {
	objs, _ := decode(t, render(t, values))
	c := cluster{engine: policyEngine{t: t}, eps: map[string]endpoint{}}
	for _, k := range objs.keys() {
		if p, ok := objs[k].(*networkingv1.NetworkPolicy); ok {
			c.engine.policies = append(c.engine.policies, p)
		}
	}
	require.NotEmpty(t, c.engine.policies)
	instancesNS := objs["ConfigMap/prod-flowyard-config"].(*corev1.ConfigMap).Data["FLOWYARD_K8S_NAMESPACE"]
	for _, p := range c.engine.policies {
		require.Equal(t, instancesNS, p.Namespace, "the policies are where the driver puts instances")
	}

	cs := fake.NewClientset()
	d, err := kubernetes.New(kubernetes.Config{Client: cs, Namespace: instancesNS})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	for i, id := range []string{"i1", "i2"} {
		s := spec()
		s.InstanceID = id
		_, err := d.Start(context.Background(), s)
		require.NoError(t, err)
		dep, err := cs.AppsV1().Deployments(instancesNS).Get(context.Background(), "nr-"+id, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, int32(instancePort), dep.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort, "Node-RED's port, as the policy names it")
		c.eps["instance "+id] = pod(instancesNS, fmt.Sprintf("10.244.1.%d", 10+i), dep.Spec.Template.Labels)
	}
	for i, component := range []string{"api", "worker"} {
		labels := objs["Deployment/prod-flowyard-"+component].(*appsv1.Deployment).Spec.Template.Labels
		c.eps[component] = pod("flowyard", fmt.Sprintf("10.244.2.%d", 10+i), labels)
	}
	c.eps["other pod of the release namespace"] = pod("flowyard", "10.244.2.30", map[string]string{"app": "grafana"})
	c.eps["other pod of the instances' namespace"] = pod(instancesNS, "10.244.1.30", map[string]string{"app": "debug"})
	c.eps["ingress controller"] = pod("ingress-nginx", "10.244.5.2", map[string]string{"app.kubernetes.io/name": "ingress-nginx"})
	c.eps["other pod of the ingress namespace"] = pod("ingress-nginx", "10.244.5.3", map[string]string{"app.kubernetes.io/name": "admission"})
	c.eps["kube-dns"] = pod("kube-system", "10.244.0.5", map[string]string{"k8s-app": "kube-dns"})
	c.eps["Temporal frontend pod"] = pod("temporal", "10.244.3.7", map[string]string{"app.kubernetes.io/name": "temporal"})
	c.eps["Postgres pod"] = pod("db", "10.244.4.2", map[string]string{"app": "postgres"})
	for name, ip := range map[string]string{
		"Temporal on a private address": "10.0.5.10", "managed Postgres": "10.0.12.5", "a node's kubelet": "10.0.0.5",
		"cloud metadata": "169.254.169.254", "cloud metadata over IPv6": "fd00:ec2::254", "a Service address in 172.20/16": "172.20.0.10",
		"a LAN router": "192.168.1.1", "shared address space": "100.64.1.1", "IPv6 link-local": "fe80::1",
		"a public DNS server": "8.8.8.8", "a public web server": "93.184.216.34", "a public IPv6 server": "2606:4700:4700::1111",
		"an operator-denied public address": "203.0.113.7", "an operator-denied public IPv6": "2001:db8::7",
	} {
		c.eps[name] = outside(ip)
	}
	return c
}

// instancePort is Node-RED's port in an instance pod, and the one port the policy opens.
const instancePort = 1880

type connection struct {
	from, to string
	proto    corev1.Protocol
	port     int32
}

func (c cluster) check(t *testing.T, allowed bool, conns ...connection) {
	t.Helper()
	for _, x := range conns {
		from, ok1 := c.eps[x.from]
		to, ok2 := c.eps[x.to]
		require.True(t, ok1 && ok2, "%s → %s", x.from, x.to)
		verb := map[bool]string{true: "allowed", false: "denied"}[allowed]
		assert.Equal(t, allowed, c.engine.allows(from, to, x.proto, x.port), "%s → %s %s/%d should be %s", x.from, x.to, x.proto, x.port, verb)
	}
}

func tcp(from, to string, port int32) connection {
	return connection{from, to, corev1.ProtocolTCP, port}
}
func udp(from, to string, port int32) connection {
	return connection{from, to, corev1.ProtocolUDP, port}
}

// TestNetworkPoliciesFenceInstances walks connections through the rendered policies like a CNI would, for the
// instances' own namespace and for instances sharing the release's namespace (the chart's default).
func TestNetworkPoliciesFenceInstances(t *testing.T) {
	for layout, ns := range map[string]string{"own namespace": "nodered", "release namespace": ""} {
		t.Run(layout, func(t *testing.T) {
			v := productionValues()
			v["instances"].(map[string]any)["namespace"] = ns
			v["networkPolicy"] = map[string]any{"deniedCIDRs": []any{"203.0.113.0/24", "2001:db8::/32"}}
			c := newCluster(t, v)
			const i1 = "instance i1"

			// Into an instance: Flowyard (editor proxy, readiness) and the ingress controller, on Node-RED's port.
			c.check(t, true, tcp("api", i1, instancePort), tcp("worker", i1, instancePort), tcp("ingress controller", i1, instancePort))
			c.check(t, false, tcp("instance i2", i1, instancePort), tcp("other pod of the release namespace", i1, instancePort),
				tcp("other pod of the instances' namespace", i1, instancePort), tcp("other pod of the ingress namespace", i1, instancePort),
				tcp("a public web server", i1, instancePort), tcp("api", i1, 9229), tcp("ingress controller", i1, 80))

			// Out of an instance: the runtime API, DNS, the internet.
			c.check(t, true, tcp(i1, "api", 8080), udp(i1, "kube-dns", 53), tcp(i1, "kube-dns", 53),
				tcp(i1, "a public web server", 443), udp(i1, "a public DNS server", 53), tcp(i1, "a public IPv6 server", 443))
			c.check(t, false, tcp(i1, "api", 9090), tcp(i1, "api", 1884), tcp(i1, "api", 1885), tcp(i1, "worker", 9090),
				tcp(i1, "kube-dns", 9153), tcp(i1, "Temporal frontend pod", 7233), tcp(i1, "Temporal on a private address", 7233),
				tcp(i1, "Postgres pod", 5432), tcp(i1, "managed Postgres", 5432), tcp(i1, "instance i2", instancePort),
				tcp(i1, "other pod of the release namespace", 3000), tcp(i1, "ingress controller", 80),
				tcp(i1, "a node's kubelet", 10250), tcp(i1, "cloud metadata", 80), tcp(i1, "cloud metadata over IPv6", 80),
				tcp(i1, "a Service address in 172.20/16", 443), tcp(i1, "a LAN router", 80), tcp(i1, "shared address space", 443),
				tcp(i1, "IPv6 link-local", 80), tcp(i1, "an operator-denied public address", 443),
				tcp(i1, "an operator-denied public IPv6", 443), udp(i1, "cloud metadata", 53))

			// Flowyard's own pods are not fenced: Temporal, the database, devices and the ingress still reach.
			c.check(t, true, tcp("worker", "Temporal frontend pod", 7233), tcp("worker", "Temporal on a private address", 7233),
				tcp("api", "Temporal frontend pod", 7233), tcp("api", "Postgres pod", 5432), tcp("worker", "managed Postgres", 5432),
				udp("api", "kube-dns", 53), tcp("a public web server", "api", 1884), tcp("ingress controller", "api", 8080),
				tcp("ingress controller", "api", 1885), tcp("other pod of the release namespace", "api", 9090))
		})
	}
}

// TestInstancesNetworkPolicyRules pins the rules themselves: which pods they fence, who may come in, and the
// ranges kept out of the internet rule.
func TestInstancesNetworkPolicyRules(t *testing.T) {
	v := productionValues()
	v["networkPolicy"] = map[string]any{"deniedCIDRs": []any{"203.0.113.0/24", "2001:db8::/32"}}
	objs, _ := decode(t, render(t, v))
	deny := objs["NetworkPolicy/prod-flowyard-instances-default-deny"].(*networkingv1.NetworkPolicy)
	allow := objs["NetworkPolicy/prod-flowyard-instances"].(*networkingv1.NetworkPolicy)
	instanceLabels := map[string]string{"app.kubernetes.io/managed-by": "flowyard", "app.kubernetes.io/component": "node-red-instance"}
	for _, p := range []*networkingv1.NetworkPolicy{deny, allow} {
		assert.Equal(t, "nodered", p.Namespace)
		assert.Equal(t, instanceLabels, p.Spec.PodSelector.MatchLabels)
		assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, p.Spec.PolicyTypes)
	}
	assert.Empty(t, deny.Spec.Ingress)
	assert.Empty(t, deny.Spec.Egress)

	require.Len(t, allow.Spec.Ingress, 1)
	in := allow.Spec.Ingress[0]
	assert.Equal(t, []int32{instancePort}, portNumbers(in.Ports, corev1.ProtocolTCP))
	require.Len(t, in.From, 2, "Flowyard's API and worker pods, and the ingress controller")
	assert.Equal(t, map[string]string{"kubernetes.io/metadata.name": "flowyard"}, in.From[0].NamespaceSelector.MatchLabels)
	assert.Equal(t, map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"}, in.From[1].NamespaceSelector.MatchLabels)

	require.Len(t, allow.Spec.Egress, 3)
	api, dns, internet := allow.Spec.Egress[0], allow.Spec.Egress[1], allow.Spec.Egress[2]
	assert.Equal(t, []int32{8080}, portNumbers(api.Ports, corev1.ProtocolTCP))
	assert.Equal(t, "api", api.To[0].PodSelector.MatchLabels["app.kubernetes.io/component"])
	assert.Equal(t, []int32{53}, portNumbers(dns.Ports, corev1.ProtocolUDP))
	assert.Equal(t, []int32{53}, portNumbers(dns.Ports, corev1.ProtocolTCP))
	assert.Equal(t, map[string]string{"k8s-app": "kube-dns"}, dns.To[0].PodSelector.MatchLabels)
	assert.Empty(t, internet.Ports, "the internet on any port")
	assert.Equal(t, []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
			"100.64.0.0/10", "169.254.0.0/16", "203.0.113.0/24"}}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: []string{"fc00::/7", "fe80::/10", "2001:db8::/32"}}},
	}, internet.To)

	v["networkPolicy"] = map[string]any{"enabled": false}
	objs, _ = decode(t, render(t, v))
	for _, k := range objs.keys() {
		assert.NotContains(t, k, "NetworkPolicy/")
	}
	v["networkPolicy"] = map[string]any{"dns": []any{}}
	objs, _ = decode(t, render(t, v))
	for _, r := range objs["NetworkPolicy/prod-flowyard-instances"].(*networkingv1.NetworkPolicy).Spec.Egress {
		assert.NotEmpty(t, r.To, "without DNS peers there is no DNS rule: an empty one would allow every destination")
	}
}

func portNumbers(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol) []int32 {
	var out []int32
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol == proto {
			out = append(out, p.Port.IntVal)
		}
	}
	return out
}

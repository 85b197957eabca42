package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// parseAddressRanges reads a setting (--trusted-proxies, --instance-deny-networks) of address ranges in CIDR
// notation, comma-separated (a single address stands for itself). Empty entries are skipped, so "" is none.
func parseAddressRanges(setting, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("--%s: %q is not an address range such as 10.0.0.0/8 or fd00::/8", setting, s)
			}
			p = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

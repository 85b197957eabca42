package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrustedProxiesDefaultToNoneAndComeFromEnvOrFlag(t *testing.T) {
	c, err := Load("serve", nil, env(nil))
	require.NoError(t, err)
	assert.Empty(t, c.TrustedProxies, "no proxy is trusted unless configured")

	c, err = Load("serve", nil, env(map[string]string{"FLOWYARD_TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ,fd00::/8,,::ffff:172.16.0.0/108"}))
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("172.16.0.0/12")}, c.TrustedProxies,
		"ranges, a single address, IPv6, and IPv4 written as IPv6")

	c, err = Load("serve", []string{"--trusted-proxies", "10.1.2.3/16"}, env(map[string]string{"FLOWYARD_TRUSTED_PROXIES": "10.0.0.0/8"}))
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, c.TrustedProxies, "the flag overrides the variable")

	for _, bad := range []string{"10.0.0.0/33", "load-balancer", "10.0.0.0/8;10.1.0.0/16"} {
		_, err := Load("serve", []string{"--trusted-proxies", bad}, env(nil))
		require.Error(t, err, bad)
		assert.True(t, strings.Contains(err.Error(), "--trusted-proxies"), "%s: the error names the setting: %v", bad, err)
	}
}

func TestInstanceDenyNetworksParseLikeTrustedProxies(t *testing.T) {
	c, err := Load("dev", nil, env(nil))
	require.NoError(t, err)
	assert.Empty(t, c.InstanceDenyNetworks, "only the built-in ranges unless configured")

	c, err = Load("dev", []string{"--instance-deny-networks", "10.0.5.7/24, fd00:db::1"}, env(nil))
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.5.0/24"), netip.MustParsePrefix("fd00:db::1/128")}, c.InstanceDenyNetworks)

	_, err = Load("dev", nil, env(map[string]string{"FLOWYARD_INSTANCE_DENY_NETWORKS": "database-host"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--instance-deny-networks", "the error names the setting")
}

package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEditorDomainDefaultsFromThePublicURL(t *testing.T) {
	for publicURL, want := range map[string]string{
		"":                                "editor.localhost", // http://127.0.0.1:8080, what `flowyard dev` serves
		"http://localhost:8080":           "editor.localhost",
		"http://[::1]:8080":               "editor.localhost",
		"http://192.168.1.20":             "editor.localhost",
		"https://flowyard.example.com":    "editor.flowyard.example.com",
		"https://Flowyard.Example.com/x/": "editor.flowyard.example.com",
	} {
		c, err := Load("serve", nil, env(map[string]string{"FLOWYARD_PUBLIC_URL": publicURL}))
		require.NoError(t, err, publicURL)
		assert.Equal(t, want, c.EditorDomain, publicURL)
	}
	c, err := Load("serve", []string{"--editor-domain", "Editor.Example.com."}, env(map[string]string{"FLOWYARD_PUBLIC_URL": "https://flowyard.example.com"}))
	require.NoError(t, err)
	assert.Equal(t, "editor.example.com", c.EditorDomain, "a configured domain, in lower case")
}

func TestEditorDomainMustNotHoldThePlatform(t *testing.T) {
	for domain, why := range map[string]string{
		"example.com":           "the platform's host would read as an editor's",
		"flowyard.example.com":  "the platform's own host",
		"localhost":             "one label",
		"10.0.0.1":              "an address",
		"editor.exa_mple.com":   "not a DNS label",
		"editor..example.com":   "an empty label",
		"-editor.example.com":   "a label starting with a hyphen",
		"editor.example.com/x":  "a path",
		"editor.example.com:80": "a port",
	} {
		_, err := Load("serve", []string{"--editor-domain", domain}, env(map[string]string{"FLOWYARD_PUBLIC_URL": "https://flowyard.example.com"}))
		require.Error(t, err, "%s: %s", domain, why)
		assert.Contains(t, err.Error(), "--editor-domain", domain)
	}
}

func TestInternalURL(t *testing.T) {
	c, err := Load("serve", []string{"--listen", "10.0.0.5:8080"}, env(nil))
	require.NoError(t, err)
	assert.Equal(t, "http://10.0.0.5:8080", c.InternalURL, "by default the listen address")
	c, err = Load("serve", nil, env(map[string]string{"FLOWYARD_INTERNAL_URL": "http://10.1.2.3:8080/"}))
	require.NoError(t, err)
	assert.Equal(t, "http://10.1.2.3:8080", c.InternalURL)
	for _, bad := range []string{"10.1.2.3:8080", "ftp://10.1.2.3", "http://10.1.2.3:8080/api", "http://"} {
		_, err := Load("serve", []string{"--internal-url", bad}, env(nil))
		assert.Error(t, err, bad)
	}
}

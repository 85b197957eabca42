package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppsDomainDefaultsFromThePublicURL(t *testing.T) {
	for publicURL, want := range map[string]string{
		"":                             "apps.localhost", // http://127.0.0.1:8080, what `flowyard dev` serves
		"http://localhost:8080":        "apps.localhost",
		"https://flowyard.example.com": "apps.flowyard.example.com",
	} {
		c, err := Load("serve", nil, env(map[string]string{"FLOWYARD_PUBLIC_URL": publicURL}))
		require.NoError(t, err, publicURL)
		assert.Equal(t, want, c.AppsDomain, publicURL)
	}
	c, err := Load("serve", []string{"--apps-domain", "Apps.Example.com."}, env(map[string]string{"FLOWYARD_PUBLIC_URL": "https://flowyard.example.com"}))
	require.NoError(t, err)
	assert.Equal(t, "apps.example.com", c.AppsDomain, "a configured domain, in lower case")
}

func TestAppsDomainMustHoldNeitherThePlatformNorTheEditors(t *testing.T) {
	for _, args := range [][]string{
		{"--apps-domain", "example.com"},                                               // the platform's host would read as an app's
		{"--apps-domain", "flowyard.example.com"},                                      // the platform's own host
		{"--apps-domain", "localhost"},                                                 // one label
		{"--apps-domain", "apps.exa_mple.com"},                                         // not a DNS label
		{"--apps-domain", "editor.flowyard.example.com"},                               // the editors' domain
		{"--apps-domain", "x.editor.flowyard.example.com"},                             // under the editors' domain
		{"--apps-domain", "example.org", "--editor-domain", "editor.example.org"},      // holds the editors' domain
		{"--apps-domain", "apps.example.org", "--editor-domain", "e.apps.example.org"}, // the editors under the apps
	} {
		_, err := Load("serve", args, env(map[string]string{"FLOWYARD_PUBLIC_URL": "https://flowyard.example.com"}))
		assert.Error(t, err, "%v", args)
	}
}

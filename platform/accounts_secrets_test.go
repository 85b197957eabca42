package platform_test

import (
	"strings"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/internal/oidctest"
)

// accountSecrets adds the secrets of single sign-on and two-factor sign-in to the scenario: a configuration's
// client secret, and a user's authenticator key and recovery codes.
func (s *secretScenario) accountSecrets() {
	idp := oidctest.Start(s.t)
	idp.AddClient("flowyard-secrets", "sso-client-secret-at-rest", s.dev.URL+"/api/v1/auth/sso/callback")
	s.c.Must(201, "POST", "/api/v1/sso-configurations", map[string]any{"domain": "secrets.example", "issuerUrl": idp.URL,
		"clientId": "flowyard-secrets", "clientSecret": "sso-client-secret-at-rest"})
	s.secrets["single sign-on client secret"] = "sso-client-secret-at-rest"

	key := s.c.Must(201, "POST", "/api/v1/user/two-factor", nil).String("secret")
	code, err := totp.GenerateCode(key, time.Now())
	require.NoError(s.t, err)
	codes := s.c.Must(200, "POST", "/api/v1/user/two-factor/confirm", map[string]any{"code": code}).Body["recoveryCodes"].([]any)
	s.secrets["two-factor key"] = key
	for i, rc := range codes {
		s.secrets["recovery code "+string(rune('a'+i))] = strings.ReplaceAll(rc.(string), "-", "")
	}
}

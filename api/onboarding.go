package api

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"

	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Onboarding without a file (docs/device-protocol.md §1.4): one-time codes, made for a device or for a
// provisioning token, that an agent exchanges for its device.yml (`--otc <code> --ff-url <url>`, as FlowFuse's
// installer runs it); and regenerating a device's credentials, after which the old ones no longer work.

// oneTimeCodeJSON is a new one-time code, shown once, with the command that uses it.
type oneTimeCodeJSON struct {
	*devices.OneTimeCode
	Command string `json:"command"`
}

// otcSetupType is the type of a device a provisioning token's one-time code registers.
const otcSetupType = "One-Time Code"

func (s *Server) registerOnboarding() {
	s.route(routeDoc{Method: "POST", Path: "/api/v1/devices/:deviceId/one-time-code", Tag: "devices", Status: 201,
		Summary: "A one-time code for the device, shown once: an agent run with --otc <code> --ff-url <url> gets new credentials of the device (its current ones work until then). A day long; replaces an earlier code."}, s.createDeviceOTC)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/provisioning-tokens/:tokenId/one-time-codes", Tag: "devices", Status: 201,
		Summary: "A one-time code that registers one device as the provisioning token would (shown once, a day long)."}, s.createProvisioningOTC)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/devices/:deviceId/credentials", Tag: "devices",
		Summary: "Regenerate the device's credentials: the old token and broker password stop working at once and its broker connection closes; answers the new agent config, once."}, s.regenerateCredentials)
}

// isOneTimeCodeSetup tells the registration an agent sends with a one-time code as bearer, which authentication
// lets through to the route (which checks the code) instead of reading it as a user's token.
func isOneTimeCodeSetup(c *fiber.Ctx, bearer string) bool {
	return c.Method() == fiber.MethodPost && strings.TrimRight(c.Path(), "/") == "/api/v1/devices" &&
		bearer != "" && !strings.HasPrefix(bearer, domain.TokenPrefixUser)
}

func (s *Server) otcAnswer(c *fiber.Ctx, otc *devices.OneTimeCode) error {
	return created(c, oneTimeCodeJSON{OneTimeCode: otc,
		Command: "flowfuse-device-agent --otc '" + otc.Code + "' --ff-url " + s.cfg.PublicURL})
}

func (s *Server) createDeviceOTC(c *fiber.Ctx) error {
	who, d, err := s.deviceFor(c, domain.ActionDeviceEdit)
	if err != nil {
		return err
	}
	var otc *devices.OneTimeCode
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if otc, err = devices.IssueDeviceOTC(ctx, tx, d); err != nil {
			return err
		}
		return audit(c, tx, who, d.TeamID, "device.one-time-code.created", "device", d.ID, nil)
	})
	if err != nil {
		return err
	}
	return s.otcAnswer(c, otc)
}

func (s *Server) createProvisioningOTC(c *fiber.Ctx) error {
	teamID := c.Params("teamId")
	who, _, err := s.teamAccess(c, teamID, domain.ActionProvisioningTokenCreate, "team")
	if err != nil {
		return err
	}
	var otc *devices.OneTimeCode
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		tok, err := tx.GetTeamToken(ctx, c.Params("tokenId"), devices.TokenKindProvisioning, teamID)
		if err != nil {
			return err
		}
		if otc, err = devices.IssueProvisioningOTC(ctx, tx, tok); err != nil {
			return err
		}
		return audit(c, tx, who, teamID, "team.device.provisioning-token.one-time-code.created", "team", teamID, map[string]any{"tokenId": tok.ID})
	})
	if err != nil {
		return err
	}
	return s.otcAnswer(c, otc)
}

// setUpWithCode is an agent's `POST /api/v1/devices {setup: true, agentHost}` with `Bearer base64(<code>)`: the
// code is used up, and the answer is the device's new credentials (200, the shape of a provisioning's answer).
func (s *Server) setUpWithCode(c *fiber.Ctx, req *registerDeviceRequest) error {
	bearer, _ := bearerToken(c)
	if bearer == "" {
		return domain.Unauthorized("Send the one-time code, base64-encoded, as a bearer token.")
	}
	digest := devices.OTCDigest(bearer)
	// Counted before the code is looked up, as provisioning tokens are: guessing codes costs the store nothing.
	if err := s.limiter.provisionAttempt(digest, s.clientAddress(c), time.Now()); err != nil {
		return err
	}
	var r *registration
	err := s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		code, err := devices.RedeemOTC(ctx, tx, digest)
		if err != nil {
			return err
		}
		if code.DeviceID != "" {
			r, err = s.reissueInTx(c, tx, nil, code.DeviceID, "device.one-time-code.used")
			return err
		}
		r, err = s.registerWithCode(c, tx, code, req)
		return err
	})
	if err != nil {
		return err
	}
	if r.team == nil { // a device that existed: its old credentials are gone
		return s.reissued(c, r)
	}
	return s.registered(c, r)
}

// registerWithCode registers the device a provisioning token's code stands for, named after the agent's host.
func (s *Server) registerWithCode(c *fiber.Ctx, tx *storage.Store, code *devices.Redeemed, req *registerDeviceRequest) (*registration, error) {
	tok, err := tx.GetTeamToken(c.UserContext(), code.ProvisioningTokenID, devices.TokenKindProvisioning, code.TeamID)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && tok.ExpiresAt != nil && !tok.ExpiresAt.After(time.Now()) {
		return nil, domain.Unauthorized("The one-time code's provisioning token was revoked or has expired.")
	}
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.AgentHost)
	if domain.ValidateName("name", name) != nil {
		name = "Device set up with a one-time code"
	}
	return s.registerInTx(c, tx, nil, &registerDeviceRequest{Name: name, Type: otcSetupType, Team: code.TeamID}, tok, "device.provisioned")
}

// reissueInTx gives an existing device new credentials and lets it import the flows it brings once more (an
// agent set up with a one-time code offers that).
func (s *Server) reissueInTx(c *fiber.Ctx, tx *storage.Store, who *caller, deviceID, event string) (*registration, error) {
	ctx := c.UserContext()
	d, err := tx.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	creds, err := s.devices.Reissue(ctx, tx, d)
	if err != nil {
		return nil, err
	}
	if err := tx.AllowFlowsImport(ctx, d.ID); err != nil {
		return nil, err
	}
	return &registration{device: d, creds: creds}, audit(c, tx, who, d.TeamID, event, "device", d.ID, nil)
}

// reissued closes the broker connection that used the old credentials and answers the new ones.
func (s *Server) reissued(c *fiber.Ctx, r *registration) error {
	if s.broker != nil {
		s.broker.DisconnectDevice(c.UserContext(), r.device.ID)
	}
	team, err := s.store.GetTeam(c.UserContext(), r.device.TeamID)
	if err != nil {
		return err
	}
	r.team = team
	return c.JSON(s.registeredView(r))
}

func (s *Server) regenerateCredentials(c *fiber.Ctx) error {
	who, d, err := s.deviceFor(c, domain.ActionDeviceEdit)
	if err != nil {
		return err
	}
	var r *registration
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) (err error) {
		r, err = s.reissueInTx(c, tx, who, d.ID, "device.credentials.regenerated")
		return err
	})
	if err != nil {
		return err
	}
	return s.reissued(c, r)
}

// agentDeviceConfig is a device-mode device.yml (docs/device-protocol.md §1.2), in FlowFuse's key order.
type agentDeviceConfig struct {
	DeviceID         string `yaml:"deviceId"`
	Token            string `yaml:"token"`
	CredentialSecret string `yaml:"credentialSecret"`
	ForgeURL         string `yaml:"forgeURL"`
	BrokerURL        string `yaml:"brokerURL,omitempty"`
	BrokerUsername   string `yaml:"brokerUsername,omitempty"`
	BrokerPassword   string `yaml:"brokerPassword,omitempty"`
}

// agentConfig is the device.yml holding a device's new credentials.
func agentConfig(deviceID, forgeURL string, creds *devices.Credentials) string {
	cfg := agentDeviceConfig{DeviceID: deviceID, Token: creds.Token, CredentialSecret: creds.CredentialSecret, ForgeURL: forgeURL}
	if b := creds.Broker; b != nil {
		cfg.BrokerURL, cfg.BrokerUsername, cfg.BrokerPassword = b.URL, b.Username, b.Password
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "" // a struct of strings always marshals
	}
	return string(out)
}

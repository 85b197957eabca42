// Package api is Flowyard's HTTP API: Fiber routes (one file per resource), authentication, the permission
// checks, the error envelope and the OpenAPI document.
package api

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/flowyard/flowyard/billing"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/mail"
	"github.com/flowyard/flowyard/metrics"
	"github.com/flowyard/flowyard/storage"
)

// Checker is a dependency that /readyz asks.
type Checker struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config holds what the API needs to know about its deployment.
type Config struct {
	BodyLimit     int           // bytes; larger bodies answer 413
	SessionTTL    time.Duration // how long a sign-in lasts
	SecureCookies bool          // mark cookies Secure even when TLS ends before Flowyard (behind a proxy)
	PublicURL     string        // how browsers reach the platform, for links
	// EditorDomain is the domain under which each instance's editor has an origin of its own,
	// <instanceId>.<EditorDomain> with the public URL's scheme and port (default editor.localhost).
	EditorDomain string
	// AppsDomain is the domain under which each instance's flows serve their endpoints, at the root of
	// <instance name>.<AppsDomain> with the public URL's scheme and port (default apps.localhost).
	AppsDomain string
	BrokerURL  string // the MQTT broker handed to devices ("" = devices poll over HTTP)
	// InternalURL is how the other API replicas reach this one: where they forward the editor traffic of a
	// device whose tunnel this replica holds (deviceeditor.go).
	InternalURL string
	Version     string
	Limits      Limits // abuse limits; zero values take the defaults
	// CodeClock is the time two-factor codes are checked against (time.Now when nil). Not a setting: tests move
	// it from one 30-second step to the next instead of waiting.
	CodeClock func() time.Time

	// TrustedProxies are the proxies in front of the API whose X-Forwarded-For names the client (clientAddress);
	// none by default, so a client cannot pick the address its limits count.
	TrustedProxies []netip.Prefix

	// WebhooksAllowPrivate lets alert webhooks point at loopback, private and link-local addresses.
	WebhooksAllowPrivate bool

	// Live tunes the live event streams; zero values take the defaults.
	Live LiveConfig
	// WriteTimeout bounds writing one response (60 s); an event stream moves it forward before each write, so
	// it cuts a stuck client but not a long stream.
	WriteTimeout time.Duration
}

// Deps are the API's collaborators.
type Deps struct {
	Store  *storage.Store
	Log    *slog.Logger
	Ready  []Checker
	Config Config
	// Sealer opens secrets sealed with the platform's master key (instance tokens, credential secrets).
	Sealer *domain.Sealer
	// Instances runs instance lifecycle actions; nil makes those routes answer 503.
	Instances InstanceRunner
	// Logs reads runtime logs; nil answers an empty list.
	Logs LogReader
	// WorkflowURL links a workflow run into the Temporal UI; nil leaves temporalUrl empty.
	WorkflowURL func(workflowID, runID string) string
	HTTPMetrics *metrics.HTTP // request counts and latencies; nil records nothing
	// Rollouts runs fleet rollouts; nil makes those routes answer 503.
	Rollouts RolloutRunner
	// Pipelines runs promotions; nil makes promote answer 503.
	Pipelines PipelineRunner
	// StackMoves moves every instance of a stack to another; nil makes that route answer 503.
	StackMoves StackMoveRunner
	// Broker tells connected devices about changes; nil leaves them to find out on their next check-in.
	Broker DeviceBroker
	// DeviceAccounts are the broker's own device accounts (an external broker); nil with the embedded broker.
	DeviceAccounts devices.Accounts
	// DeviceLive streams devices' logs and runs actions on them; nil makes those routes answer 503.
	DeviceLive DeviceLive
	// DeviceEditor sends devices the remote editor's commands; nil makes device editor links answer 503.
	DeviceEditor DeviceEditorCommands
	// Billing bills teams through Stripe; nil when billing is off (no Stripe key).
	Billing *billing.Service
	// SnapshotSchedules keeps instances' snapshot Schedules; nil makes changing them answer 503.
	SnapshotSchedules SnapshotScheduler
	// Mail queues e-mail (invitations, password resets); nil when no SMTP server is configured, when the links
	// are logged for the operator and returned to whoever asked for them instead.
	Mail *mail.Outbox
}

// Server is the HTTP API.
type Server struct {
	app        *fiber.App
	store      *storage.Store
	log        *slog.Logger
	cfg        Config
	ready      []Checker
	routes     []routeDoc
	limiter    *limiters
	wfURL      func(workflowID, runID string) string
	sealer     *domain.Sealer
	logs       LogReader
	devices    *devices.Service
	broker     DeviceBroker
	deviceLive DeviceLive
	billing    *billing.Service
	schedules  SnapshotScheduler
	live       *liveHub
	mail       *mail.Outbox
	providers  *providers // OpenID providers of single sign-on, cached
	editors    editorOrigins
	svc        flowServices // the services of the flows the API shares with the worker and the platform
	apps       appOrigins
	// deviceEditor and tunnels serve devices' remote editors (deviceeditor.go).
	deviceEditor DeviceEditorCommands
	tunnels      *deviceTunnels
	deviceGate   *deviceGate // bounds the device protocol's requests served at once (devicegate.go)
}

// New builds the API with every route registered.
func New(d Deps) *Server {
	if d.Config.BodyLimit == 0 {
		d.Config.BodyLimit = 4 << 20
	}
	if d.Config.SessionTTL == 0 {
		d.Config.SessionTTL = 7 * 24 * time.Hour
	}
	if d.Config.InternalURL == "" {
		d.Config.InternalURL = d.Config.PublicURL
	}
	if d.Config.WriteTimeout == 0 {
		d.Config.WriteTimeout = 60 * time.Second
	}
	s := &Server{store: d.Store, log: d.Log, cfg: d.Config, ready: d.Ready, limiter: newLimiters(d.Config.Limits), wfURL: d.WorkflowURL, sealer: d.Sealer,
		logs: d.Logs, broker: d.Broker, deviceLive: d.DeviceLive}
	s.billing = d.Billing
	s.deviceGate = newDeviceGate(deviceSlots, deviceMaxWaiting, deviceMaxWait)
	s.schedules = d.SnapshotSchedules
	s.mail = d.Mail
	s.deviceEditor, s.tunnels = d.DeviceEditor, newDeviceTunnels()
	s.providers = newProviders()
	s.live = newLiveHub(d.Config.Live)
	s.live.revoked = s.revokedCredentials
	s.editors = newEditorOrigins(d.Config.PublicURL, d.Config.EditorDomain)
	s.devices = &devices.Service{Store: d.Store, Sealer: d.Sealer, ForgeURL: d.Config.PublicURL, BrokerURL: d.Config.BrokerURL, Accounts: d.DeviceAccounts}
	s.svc = newFlowServices(s, d) // after s.devices, which it uses
	s.apps = newAppOrigins(d.Config.PublicURL, d.Config.AppsDomain)
	s.app = fiber.New(fiber.Config{
		AppName:   "flowyard",
		BodyLimit: d.Config.BodyLimit,
		// Bodies are streams: the editor proxy passes them on as they arrive; limitBodies applies the limit and
		// reads every other route's body. A multipart body stays as sent (fasthttp would otherwise parse it
		// into a form before any handler, leaving the body the proxy forwards empty).
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 s.handleError,
		DisableStartupMessage:        true,
		// Handlers keep strings from the request beyond its life (store rows, logs); Immutable copies them.
		Immutable:    true,
		ReadTimeout:  30 * time.Second,
		WriteTimeout: d.Config.WriteTimeout,
		IdleTimeout:  120 * time.Second,
		// A device keeps its connection open between check-ins; an idle connection gives its read and write
		// buffers back (4 KiB each, otherwise held for every device of a fleet).
		ReduceMemoryUsage: true,
	})
	s.app.Server().HeaderReceived = markDeclaredTooLong(d.Config.BodyLimit)
	// fasthttp keeps the goroutine of a closed connection for the next one for this long (10 s by default), with
	// the stack it grew: a rollout wave opens thousands of connections within seconds (4,700 such goroutines were
	// idle at a 10,000-device rollout's peak, about 20 KiB of stack each). A new connection starting a goroutine
	// costs far less than holding them.
	s.app.Server().MaxIdleWorkerDuration = time.Second
	s.app.Use(observeRequests(d.HTTPMetrics))
	s.app.Use(recover.New(), requestid.New(), s.securityHeaders, s.limitBodies, s.serveAppOrigin, s.serveEditorOrigin, s.serveDashboard,
		s.requireJSONBody, s.gateDevices, s.authenticate)
	s.registerRoutes()
	s.app.Use(func(c *fiber.Ctx) error { return errRouteNotFound })
	return s
}

// App returns the Fiber app, for serving and for tests.
func (s *Server) App() *fiber.App { return s.app }

// Listen serves on addr until Shutdown.
func (s *Server) Listen(addr string) error { return s.app.Listen(addr) }

// Shutdown ends the live event streams, stops accepting requests and waits for those in flight, up to ctx's
// deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	s.live.shutdown()
	return s.app.ShutdownWithContext(ctx)
}

func (s *Server) registerRoutes() {
	s.registerHealth()
	s.registerAuth()
	s.registerUsers()
	s.registerPlatformObjects()
	s.registerTeams()
	s.registerMembers()
	s.registerInvitations()
	s.registerPasswords()
	s.registerSignUp()
	s.registerSettings()
	s.registerUserAdministration()
	s.registerSSOConfigs()
	s.registerSSOSignIn()
	s.registerTwoFactor()
	s.registerSecondFactor()
	s.registerApplications()
	s.registerOperations()
	s.registerRuntime()
	s.registerRuntimeContext()
	s.registerEditorLinks()
	s.registerEndpoints()
	s.registerDeviceEditor()
	s.registerInstances()
	s.registerSnapshots()
	s.registerUpgrades()
	s.registerSnapshotSchedules()
	s.registerFlows()
	s.registerDevices()
	s.registerDeviceLive()
	s.registerGroups()
	s.registerDeviceTargets()
	s.registerOnboarding()
	s.registerRollouts()
	s.registerPipelines()
	s.registerBilling()
	s.registerAlerts()
	s.registerHealthSamples()
	s.registerEvents()
	s.registerOpenAPI()
}

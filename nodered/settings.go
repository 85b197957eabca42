package nodered

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// Environment variables the storage plugin reads. The platform sets them on
// the Node-RED process; RenderSettings always hides EnvInstanceToken from flows.
const (
	EnvForgeURL      = "FLOWYARD_FORGE_URL"      // platform base URL
	EnvInstanceID    = "FLOWYARD_INSTANCE_ID"    // the instance's id
	EnvInstanceToken = "FLOWYARD_INSTANCE_TOKEN" // bearer token for the runtime API
)

// SettingsParams is everything the platform decides about one instance's
// settings.js. Zero values pick the documented defaults.
type SettingsParams struct {
	// Port is uiPort, required (1-65535).
	Port int
	// Host is uiHost, default 127.0.0.1.
	Host string
	// HTTPAdminRoot and HTTPNodeRoot default to "/". A request the admin
	// app does not handle falls through to the http-in routes, which can read
	// every request header, including a token an editor proxy injects: when
	// the admin root is not "/", every http-in route answers 404 to a request
	// under it (settings.httpNodeMiddleware), so the node root may be "/" and
	// flows never see a request meant for the admin API.
	HTTPAdminRoot, HTTPNodeRoot string
	// CredentialSecret encrypts flows_cred.json; required unless SecretsFile
	// is set, and then it must be empty.
	CredentialSecret string
	// SecretsFile is the absolute path, as Node-RED sees it, of a JSON file
	// holding Secrets, which settings.js reads when Node-RED loads it. The
	// secrets then appear neither in settings.js nor in the environment: the
	// platform writes the file readable by the instance's user alone.
	SecretsFile string
	// AdminTokens maps hex SHA-256 digests of accepted tokens to their
	// permissions, "*" or "read". settings.js holds only the digests.
	AdminTokens map[string]string
	// TokenHeader, when set, makes Node-RED read the raw token from this
	// request header instead of "Authorization: Bearer". A proxy can then
	// inject it on HTTP requests and on the /comms websocket upgrade.
	TokenHeader string
	// StorageModule is the absolute path of a storage plugin (see
	// WriteStoragePlugin); "" keeps Node-RED's localfilesystem storage.
	StorageModule string
	// DisableEditor turns off the editor, /comms and /credentials whatever
	// Settings say; the admin HTTP API keeps working.
	DisableEditor bool
	// PaletteAllowList and PaletteDenyList restrict palette installs. Node-RED
	// allows a module that matches neither list, so an allow list given with
	// no deny list gets denyList ["*"] to mean "only these".
	PaletteAllowList, PaletteDenyList []string
	// EnvVarExcludes hides environment variables from flows. The storage
	// plugin's token variable is always added.
	EnvVarExcludes []string
	// LogLevel is the console level (fatal, error, warn, info, debug, trace),
	// default info.
	LogLevel string
	// Settings are extra settings.js keys, JSON-serialisable (a template's
	// settings go through TemplateSettings first). They are merged over
	// Flowyard's defaults but never replace a platform-controlled key (see
	// PlatformSettingsKeys).
	Settings map[string]any
	// Title is the editor's page and header title when Settings give none.
	Title string
}

// Secrets are what settings.js reads from SettingsParams.SecretsFile.
type Secrets struct {
	CredentialSecret string `json:"credentialSecret"`
	// InstanceToken authenticates the storage plugin to the runtime API; it
	// replaces the EnvInstanceToken variable.
	InstanceToken string `json:"instanceToken,omitempty"`
}

// PlatformSettingsKeys are the top-level settings that RenderSettings owns.
// A key of these in SettingsParams.Settings is ignored. Nested keys the
// platform also owns: externalModules.palette.allowList/denyList (when
// given) and editorTheme.projects.enabled (always false).
var PlatformSettingsKeys = []string{
	"adminAuth", "contextStorage", "credentialSecret", "envVarExcludes",
	"httpAdminRoot", "httpNodeRoot", "httpRoot", "https", "logging",
	"httpNodeMiddleware", "readOnly", "requireHttps", "runtimeState", "storageModule", "telemetry",
	"uiHost", "uiPort", "userDir",
}

var (
	rootPattern        = regexp.MustCompile(`^/[A-Za-z0-9._~/-]*$`)
	tokenDigestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	headerNamePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	logLevels          = []string{"fatal", "error", "warn", "info", "debug", "trace"}
)

// TokenDigest returns the key under which SettingsParams.AdminTokens holds a
// token: the lowercase hex SHA-256 of its UTF-8 bytes.
func TokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// RenderSettings renders settings.js for one instance. Every value enters
// the file as JSON, never by pasting strings into JavaScript. The file logs
// JSON lines on stdout, enables runtimeState (so GET /flows/state works as a
// readiness probe), turns telemetry off and keeps context in memory unless
// the flows choose the persistent store (see contextStorage).
func RenderSettings(p SettingsParams) ([]byte, error) {
	if err := p.normalise(); err != nil {
		return nil, err
	}
	settings := mergeSettings(defaultSettings(), p.Settings)
	for _, key := range PlatformSettingsKeys {
		delete(settings, key)
	}
	p.applyPlatformSettings(settings)
	return p.renderJS(settings)
}

func (p *SettingsParams) normalise() error {
	var errs []error
	if p.Port < 1 || p.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", p.Port))
	}
	if p.Host == "" {
		p.Host = "127.0.0.1"
	}
	var err error
	if p.HTTPAdminRoot, err = normaliseRoot("admin root", p.HTTPAdminRoot); err != nil {
		errs = append(errs, err)
	}
	if p.HTTPNodeRoot, err = normaliseRoot("node root", p.HTTPNodeRoot); err != nil {
		errs = append(errs, err)
	}
	switch {
	case p.SecretsFile != "" && !filepath.IsAbs(p.SecretsFile):
		errs = append(errs, fmt.Errorf("secrets file %q is not an absolute path", p.SecretsFile))
	case p.SecretsFile != "" && p.CredentialSecret != "":
		errs = append(errs, errors.New("credential secret given with a secrets file: it belongs in the file only"))
	case p.SecretsFile == "" && p.CredentialSecret == "":
		errs = append(errs, errors.New("credential secret is empty"))
	}
	errs = append(errs, validateAdminTokens(p.AdminTokens)...)
	p.TokenHeader = strings.ToLower(p.TokenHeader)
	if p.TokenHeader == "authorization" {
		p.TokenHeader = ""
	}
	if p.TokenHeader != "" && !headerNamePattern.MatchString(p.TokenHeader) {
		errs = append(errs, fmt.Errorf("token header %q is not a header name", p.TokenHeader))
	}
	if p.StorageModule != "" && !filepath.IsAbs(p.StorageModule) {
		errs = append(errs, fmt.Errorf("storage module %q is not an absolute path", p.StorageModule))
	}
	if p.LogLevel == "" {
		p.LogLevel = "info"
	}
	if !slices.Contains(logLevels, p.LogLevel) {
		errs = append(errs, fmt.Errorf("log level %q unknown", p.LogLevel))
	}
	if len(p.PaletteAllowList) > 0 && p.PaletteDenyList == nil {
		p.PaletteDenyList = []string{"*"}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}

func normaliseRoot(what, root string) (string, error) {
	if root == "" {
		return "/", nil
	}
	if !rootPattern.MatchString(root) {
		return "", fmt.Errorf("%s %q must be a path starting with /", what, root)
	}
	return root, nil
}

func validateAdminTokens(tokens map[string]string) []error {
	var errs []error
	for digest, perm := range tokens {
		if !tokenDigestPattern.MatchString(digest) {
			errs = append(errs, fmt.Errorf("admin token key %q is not a lowercase hex sha256", digest))
		}
		if perm != "*" && perm != "read" {
			errs = append(errs, fmt.Errorf("admin token permission %q is not \"*\" or \"read\"", perm))
		}
	}
	return errs
}

// defaultSettings are Flowyard's choices that a template may override.
func defaultSettings() map[string]any {
	return map[string]any{
		"disableEditor":           false,
		"flowFile":                "flows.json",
		"flowFilePretty":          true,
		"nodeCloseTimeout":        5000,
		"diagnostics":             map[string]any{"enabled": true, "ui": false},
		"functionExternalModules": false,
		"exportGlobalContextKeys": false,
		"externalModules":         map[string]any{"autoInstall": false},
		"editorTheme":             map[string]any{"tours": false},
	}
}

// applyPlatformSettings writes the keys the platform controls, last.
func (p *SettingsParams) applyPlatformSettings(s map[string]any) {
	s["uiHost"] = p.Host
	s["uiPort"] = p.Port
	s["httpAdminRoot"] = p.HTTPAdminRoot
	s["httpNodeRoot"] = p.HTTPNodeRoot
	if p.CredentialSecret != "" {
		s["credentialSecret"] = p.CredentialSecret
	}
	if p.DisableEditor {
		s["disableEditor"] = true
	}
	s["contextStorage"] = p.contextStorage()
	s["runtimeState"] = map[string]any{"enabled": true, "ui": false}
	s["telemetry"] = map[string]any{"enabled": false, "updateNotification": false}
	excludes := append([]string{EnvInstanceToken}, p.EnvVarExcludes...)
	slices.Sort(excludes)
	s["envVarExcludes"] = slices.Compact(excludes)

	theme := childMap(s, "editorTheme")
	childMap(theme, "projects")["enabled"] = false
	if p.Title != "" {
		setDefault(childMap(theme, "page"), "title", p.Title)
		setDefault(childMap(theme, "header"), "title", p.Title)
	}
	// The editor inserts the header title as HTML (the page title is escaped
	// by its template); a title is text, and a team member's instance name
	// must not become script in a colleague's editor.
	if header, ok := theme["header"].(map[string]any); ok {
		if title, ok := header["title"].(string); ok {
			header["title"] = html.EscapeString(title)
		}
	}
	if p.PaletteAllowList != nil || p.PaletteDenyList != nil {
		palette := childMap(childMap(s, "externalModules"), "palette")
		palette["allowList"] = nonNil(p.PaletteAllowList)
		palette["denyList"] = nonNil(p.PaletteDenyList)
	}
}

// ContextFlushSeconds is how often the persistent context store writes changed values to the platform (and
// at once when Node-RED stops): what a killed process loses at most.
const ContextFlushSeconds = 5

// contextStorage keeps context in memory by default. With the storage plugin there is also the store
// "persistent", as on FlowFuse: the plugin's context store, which keeps values in the platform (settings.js
// sets its module, a function). A flow chooses it by name (flow.set("key", value, "persistent"), or the store
// menu of a change node); memory stays the default, so nothing a flow keeps becomes persistent unasked.
func (p *SettingsParams) contextStorage() map[string]any {
	stores := map[string]any{"default": "memory", "memory": map[string]any{"module": "memory"}}
	if p.StorageModule != "" {
		stores["persistent"] = map[string]any{"config": map[string]any{"flushInterval": ContextFlushSeconds}}
	}
	return stores
}

// childMap returns m[key] as a map, replacing a non-map value with a new one.
func childMap(m map[string]any, key string) map[string]any {
	child, ok := m[key].(map[string]any)
	if !ok {
		child = map[string]any{}
		m[key] = child
	}
	return child
}

// setDefault sets m[key] unless it holds a value.
func setDefault(m map[string]any, key string, value any) {
	if _, set := m[key]; !set {
		m[key] = value
	}
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// mergeSettings deep-merges overlay onto a copy of base: nested objects
// merge key by key, anything else replaces. The inputs are not modified.
func mergeSettings(base, overlay map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(overlay))
	for k, v := range base {
		out[k] = cloneValue(v)
	}
	for k, v := range overlay {
		baseChild, baseIsMap := out[k].(map[string]any)
		overChild, overIsMap := v.(map[string]any)
		if baseIsMap && overIsMap {
			out[k] = mergeSettings(baseChild, overChild)
			continue
		}
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	if m, ok := v.(map[string]any); ok {
		return mergeSettings(m, nil)
	}
	return v
}

// settingsTemplate is the JavaScript around the JSON data. Only
// JSON-encoded values are substituted into it.
var settingsTemplate = template.Must(template.New("settings.js").Parse(`// settings.js rendered by Flowyard for one Node-RED instance.
// Do not edit: the platform rewrites it before every start.
"use strict";
const crypto = require("crypto");

const settings = {{.Settings}};
// Hex SHA-256 digests of the accepted admin tokens, mapped to permissions.
const adminTokenDigests = {{.AdminTokens}};
const tokenHeader = {{.TokenHeader}};
const storageModulePath = {{.StorageModule}};
const secretsFile = {{.SecretsFile}};
const logLevel = {{.LogLevel}};
const adminRoot = {{.AdminRoot}};

const LEVEL_NAMES = {10: "fatal", 20: "error", 30: "warn", 40: "info", 50: "debug", 60: "trace", 98: "audit", 99: "metric"};
const LOG_FIELDS = ["type", "id", "name", "z", "path", "event", "user", "ip", "error", "message", "value", "nodeid"];

// adminAuth.tokens: Node-RED passes the raw token; only its digest is compared.
function authenticateToken(token) {
    if (typeof token !== "string" || token === "") {
        return Promise.resolve(null);
    }
    const digest = crypto.createHash("sha256").update(token, "utf8").digest("hex");
    if (!Object.prototype.hasOwnProperty.call(adminTokenDigests, digest)) {
        return Promise.resolve(null);
    }
    return Promise.resolve({username: "flowyard", permissions: adminTokenDigests[digest]});
}

function logText(msg) {
    if (msg instanceof Error) {
        return msg.stack || msg.message;
    }
    if (typeof msg === "object" && msg !== null) {
        try { return JSON.stringify(msg); } catch (e) { return String(msg); }
    }
    return msg;
}

// One JSON object per line on stdout, read by the platform's log collector.
function jsonLogHandler() {
    return function (entry) {
        const line = {
            ts: new Date(entry.timestamp || Date.now()).toISOString(),
            level: LEVEL_NAMES[entry.level] || entry.level,
            msg: logText(entry.msg),
        };
        for (const field of LOG_FIELDS) {
            if (entry[field] !== undefined) {
                line[field] = entry[field];
            }
        }
        let text;
        try {
            text = JSON.stringify(line);
        } catch (e) {
            text = JSON.stringify({ts: line.ts, level: line.level, msg: String(line.msg)});
        }
        process.stdout.write(text + "\n");
    };
}

// The secrets come from a file only this instance's user can read, never from settings.js or the environment.
const secrets = secretsFile ? JSON.parse(require("fs").readFileSync(secretsFile, "utf8")) : {};
if (secretsFile) {
    settings.credentialSecret = secrets.credentialSecret;
}

settings.adminAuth = {tokens: authenticateToken};
if (tokenHeader) {
    settings.adminAuth.tokenHeader = tokenHeader;
}
settings.logging = {console: {level: logLevel, metrics: false, audit: true, handler: jsonLogHandler}};
// A request under the admin root that the admin app did not handle (it may carry the token a proxy injected for
// the editor) falls through to the http-in routes: they answer it 404 before a flow sees it.
if (adminRoot !== "/") {
    const adminPrefix = adminRoot.replace(/\/+$/, "").toLowerCase();
    settings.httpNodeMiddleware = function (req, res, next) {
        const path = (req.originalUrl || req.url || "").split("?")[0].toLowerCase();
        if (path === adminPrefix || path.startsWith(adminPrefix + "/")) {
            res.status(404).end();
            return;
        }
        next();
    };
}
if (storageModulePath) {
    settings.storageModule = require(storageModulePath);
    if (secrets.instanceToken) {
        settings.storageModule.useToken(secrets.instanceToken);
    }
    settings.contextStorage.persistent.module = settings.storageModule.contextStore;
}

module.exports = settings;
`))

// nullIfEmpty makes "" render as JavaScript's null.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (p *SettingsParams) renderJS(settings map[string]any) ([]byte, error) {
	tokens := maps.Clone(p.AdminTokens)
	if tokens == nil {
		tokens = map[string]string{}
	}
	data := map[string]any{
		"Settings": settings, "AdminTokens": tokens, "TokenHeader": nullIfEmpty(p.TokenHeader),
		"StorageModule": nullIfEmpty(p.StorageModule), "SecretsFile": nullIfEmpty(p.SecretsFile), "LogLevel": p.LogLevel,
		"AdminRoot": p.HTTPAdminRoot,
	}
	encoded := make(map[string]string, len(data))
	for name, value := range data {
		js, err := json.MarshalIndent(value, "", "    ")
		if err != nil {
			return nil, fmt.Errorf("settings: encode %s: %w", strings.ToLower(name), err)
		}
		encoded[name] = string(js)
	}
	var out bytes.Buffer
	if err := settingsTemplate.Execute(&out, encoded); err != nil {
		return nil, fmt.Errorf("settings: render: %w", err)
	}
	return out.Bytes(), nil
}

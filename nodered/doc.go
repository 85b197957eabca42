// Package nodered holds everything Flowyard knows about Node-RED itself: the
// credential file format, installing Node-RED "stacks" with npm, rendering a
// settings.js per instance, and the storage plugin that keeps an instance's
// flows and credentials in the platform instead of on the instance's disk.
//
// # Starting an instance
//
//	rt, err := nodered.EnsureStack(ctx, stacksDir, "4.1.15", "", log) // or "5.0.7", "22.23.3"
//	plugin, err := nodered.WriteStoragePlugin(dataDir)
//	js, err := nodered.RenderSettings(nodered.SettingsParams{
//		Port: port, HTTPAdminRoot: "/admin", HTTPNodeRoot: "/api",
//		CredentialSecret: secret, AdminTokens: map[string]string{nodered.TokenDigest(token): "*"},
//		StorageModule: plugin,
//	})
//	// write js to <userDir>/settings.js (mode 0600: it holds the credential secret), then run
//	//   rt.NodeBin rt.RedJS -u <userDir> -s <userDir>/settings.js
//	// with nodered.StoragePluginEnv(platformURL, instanceID, instanceToken) in its environment,
//	// and poll GET <adminRoot>/flows/state until {"state":"start"}.
//
// Node-RED exits with status 0 when it fails to start (for example when the
// storage plugin's first request is refused): only a SIGTERM sent by the
// supervisor makes status 0 a clean stop.
//
// # Serving the editor through a proxy
//
// The editor can be served at /editor/<instance>/ by a proxy that holds the
// token, so the browser never sees one (verified by proxy_test.go, Node-RED
// 4.1.15):
//
//   - Map /editor/<instance>/<rest> to <httpAdminRoot><rest>, for plain
//     requests and for the websocket upgrade of <rest> = "comms". The editor
//     uses only relative URLs, including the websocket path it derives from
//     the page location.
//   - Answer /editor/<instance> (no slash) with a redirect to
//     /editor/<instance>/ yourself: Node-RED's own redirect points at
//     <httpAdminRoot>/, outside the prefix.
//   - Remove Authorization, Cookie and the token header from the browser's
//     request, then set the token: "Authorization: Bearer <token>" by default,
//     or "<TokenHeader>: <token>" when SettingsParams.TokenHeader is set. Send
//     it on the upgrade request too: Node-RED then accepts the websocket as
//     that user, and the editor (which holds no token) never sends an auth
//     packet. A wrong token on the upgrade makes Node-RED drop the socket.
//   - A "read" token gives a read-only editor: GET works, deploys answer 401
//     and the editor disables its deploy button for a user without
//     flows.write (editor source; not run in a browser); comms (debug,
//     status) still flow.
//   - Keep httpAdminRoot and httpNodeRoot disjoint, or guard the node root
//     (the platform serves http-in at "/" and refuses the admin root there):
//     otherwise a request under the prefix that the admin app does not handle
//     reaches http-in nodes, and a flow can read the injected token.
//   - Node-RED does not check Origin on the websocket, and it trusts the
//     injected token for every request: the proxy must authenticate the user
//     itself, check Origin on upgrades and guard state-changing requests
//     against CSRF.
//
// A custom TokenHeader has two effects: Node-RED reads the token only from
// that header (Authorization: Bearer then answers 401, so the platform's own
// admin API calls must use the header too), and the audit log loses the
// "auth.invalid-token" line that Node-RED's built-in bearer strategy writes
// for every request that carries a token in Authorization.
package nodered

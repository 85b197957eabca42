// Package childenv builds the environment of every process Flowyard starts: npm, Node.js and Node-RED, the
// Temporal dev server. A child never inherits the platform's environment, which holds the platform's
// secrets (FLOWYARD_SECRET_KEY, the database URL and its password, the first admin's password, the Stripe
// key) and whatever else the operator exported. npm in particular runs the install scripts of modules that
// team members name, so anything in its environment is theirs to read.
//
// A child gets the few variables every program needs (Base), the ones its caller names explicitly (such as
// npm's cache, registry and proxy settings), and the values its caller sets.
package childenv

import (
	"maps"
	"os"
	"slices"
	"strings"
)

// Base are the variables every child takes from the platform's environment, when set: where programs are,
// the home directory (npm's cache and ~/.npmrc, the Temporal CLI's config), the locale and the time zone.
var Base = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ"}

// Proxy are the variables that send a child's outbound HTTP through the operator's proxy and make Node.js
// trust the operator's certificate authority.
var Proxy = []string{
	"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "NODE_EXTRA_CA_CERTS",
}

// platformPrefix marks the platform's own variables, which no child inherits even when a caller names one.
const platformPrefix = "FLOWYARD_"

// Env is a child's environment under construction. The zero value is empty.
type Env struct {
	vars map[string]string
}

// New starts an environment with the Base variables and the named ones, each copied from the platform's
// environment when it is set there. A FLOWYARD_ name is never copied: set such a variable explicitly.
func New(inherit ...string) *Env {
	e := &Env{vars: map[string]string{}}
	for _, name := range slices.Concat(Base, inherit) {
		if strings.HasPrefix(name, platformPrefix) {
			continue
		}
		if value, ok := os.LookupEnv(name); ok {
			e.vars[name] = value
		}
	}
	return e
}

// Set sets a variable, replacing an inherited one.
func (e *Env) Set(name, value string) *Env {
	if e.vars == nil {
		e.vars = map[string]string{}
	}
	e.vars[name] = value
	return e
}

// List returns the environment as exec.Cmd.Env takes it ("NAME=value"), sorted by name. Give it to every
// exec.Cmd: a nil Env would make the child inherit the platform's whole environment.
func (e *Env) List() []string {
	out := make([]string, 0, len(e.vars))
	for _, name := range slices.Sorted(maps.Keys(e.vars)) {
		out = append(out, name+"="+e.vars[name])
	}
	return out
}

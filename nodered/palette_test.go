package nodered

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// paletteCase is one install decision: the lists (nil = not set), the module and its exact version ("" =
// none known).
type paletteCase struct {
	Allow   []string `json:"allow"`
	Deny    []string `json:"deny"`
	Module  string   `json:"module"`
	Version string   `json:"version"`
}

// decideInNodeRed asks Node-RED's own registry code, with the list defaults its installer applies, whether
// each case may be installed.
const decideInNodeRed = `
const util = require(process.argv[1]);
const cases = JSON.parse(process.argv[2]);
console.log(JSON.stringify(cases.map((c) => {
    let allow = ["*"], deny = [];
    if (c.allow || c.deny) { allow = c.allow; deny = c.deny; }
    allow = util.parseModuleList(allow);
    deny = util.parseModuleList(deny);
    if (deny.length === 0) { return true; }
    return util.checkModuleAllowed(c.module, c.version || undefined, allow, deny);
})));`

// TestModulesAllowedDecidesAsNodeRed compares ModulesAllowed with Node-RED's check over lists and modules
// that exercise wildcards, version ranges, missing and empty lists and the tie-break between both lists.
func TestModulesAllowedDecidesAsNodeRed(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t)
	lists := [][2][]string{
		{{"node-red-contrib-*"}, nil},
		{nil, {"node-red-contrib-exec*"}},
		{{"node-red-contrib-*", "@flowfuse/*", "node-red-node-*"}, {"node-red-contrib-exec*"}},
		{{"*"}, {"node-red-contrib-bad"}},
		{{"node-red-contrib-foo"}, {"node-red-contrib-*"}},
		{{"node-red-contrib-foo@>=2.0.0"}, {"*"}},
		{{}, {}},
		{{}, {"*"}},
		{{"node-red-contrib-x"}, {}},
		{{"node-red-contrib-a*b"}, {"node-red-contrib-a*"}},
		{nil, {"node-red.x", "@evil/*"}},
		{{"*"}, {"node-red-contrib-foo@<2"}},
	}
	modules := []string{"node-red-contrib-x", "node-red-contrib-exec-cmd", "node-red-contrib-foo", "@flowfuse/nr-tools",
		"@evil/nodes", "node-red-node-random", "other", "node-red-contrib-abb", "node-redXx", "node-red-contrib-bad"}
	var cases []paletteCase
	for _, l := range lists {
		for _, m := range modules {
			for _, v := range []string{"", "1.0.0", "2.1.0"} {
				cases = append(cases, paletteCase{Allow: l[0], Deny: l[1], Module: m, Version: v})
			}
		}
	}
	raw, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	util := filepath.Join(rt.Dir, "node_modules", "@node-red", "registry", "lib", "util.js")
	out, err := exec.Command(rt.NodeBin, "-e", decideInNodeRed, util, string(raw)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var nodeRed []bool
	if err := json.Unmarshal(out, &nodeRed); err != nil || len(nodeRed) != len(cases) {
		t.Fatalf("node answered %s (%v)", out, err)
	}
	refusals := 0
	for i, c := range cases {
		err := ModulesAllowed(paletteSettings(c.Allow, c.Deny), map[string]string{c.Module: c.Version})
		if (err == nil) != nodeRed[i] {
			t.Errorf("allow %q deny %q: %s@%s: Node-RED allows %v, ModulesAllowed says %v", c.Allow, c.Deny, c.Module, c.Version, nodeRed[i], err)
		}
		if err != nil {
			refusals++
		}
	}
	if refusals == 0 || refusals == len(cases) {
		t.Fatalf("%d of %d cases refused: the table does not tell allowing from refusing", refusals, len(cases))
	}
}

func TestModulesAllowedNamesTheRefusedModules(t *testing.T) {
	settings, _, err := TemplateSettings(map[string]any{"paletteDenyList": []any{"node-red-contrib-exec*"}})
	if err != nil {
		t.Fatal(err)
	}
	err = ModulesAllowed(settings, map[string]string{"node-red-contrib-exec-cmd": "^1", "node-red-node-random": "0.4.1", "node-red-contrib-execute": ""})
	if err == nil || !strings.Contains(err.Error(), "node-red-contrib-exec-cmd, node-red-contrib-execute") || strings.Contains(err.Error(), "random") ||
		!strings.Contains(err.Error(), "paletteDenyList") {
		t.Fatalf("got %v", err)
	}
	if err := ModulesAllowed(map[string]any{}, map[string]string{"anything": ""}); err != nil {
		t.Fatalf("no lists, yet %v", err)
	}
}

// paletteSettings is settings.js's externalModules with the lists that are not nil.
func paletteSettings(allow, deny []string) map[string]any {
	palette := map[string]any{}
	if allow != nil {
		palette["allowList"] = allow
	}
	if deny != nil {
		palette["denyList"] = deny
	}
	return map[string]any{"externalModules": map[string]any{"palette": palette}}
}

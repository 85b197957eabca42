package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flowyard/flowyard/domain"
)

// The body half of the cross-tenant matrix: team B's owner calls every operation of the OpenAPI document that
// takes a body, on team B's own objects, with ONE field of the body naming team A's object and every other field
// valid (the caller's own, or left out where it may be). Each such call must be refused, write nothing, start no
// workflow, and answer exactly as it does when the field names an object that does not exist (another team's
// object and no object are the same). One field at a time: a body naming several foreign objects is refused at
// the first, which hides whether the API checks the others.

// fieldObjects maps body fields that name an object of a team to the path parameter of that object.
var fieldObjects = map[string]string{
	"team": "teamId", "teamId": "teamId", "application": "applicationId", "applicationId": "applicationId",
	"instance": "instanceId", "instanceId": "instanceId", "snapshot": "snapshotId", "snapshotId": "snapshotId",
	"targetSnapshotId": "snapshotId", "device": "deviceId", "deviceId": "deviceId", "add": "deviceId", "remove": "deviceId",
	"deviceGroupId": "groupId", "groupId": "groupId", "webhookId": "webhookId",
}

// catalogueFields name the platform's shared objects (stacks, templates…) or another system's (Stripe's
// prices, the client an OpenID provider knows Flowyard by), which are no team's.
var catalogueFields = map[string]bool{"instanceTypeId": true, "stackId": true, "toStackId": true, "templateId": true, "blueprintId": true, "teamTypeId": true,
	"planPriceId": true, "devicePriceId": true, "clientId": true}

// provenanceFields are references a body carries but the API ignores, by operation: the fields below a path
// prefix may name anything, and the call may succeed, but no row it writes may name team A.
var provenanceFields = map[string]struct{ prefix, why string }{
	"POST /api/v1/instances/{instanceId}/snapshots/import": {"snapshot.", "an export's description of where it came from; " +
		"importing another team's export is how a snapshot moves between teams, and the import stores none of it"},
}

// idField tells a body field that names an object by its name: the objects' fields, and any *Id.
var idField = regexp.MustCompile(`^(id|.*Id|.*ID)$`)

// reference is one body field that names a team's object: its JSON path ("target.instanceId", "add[]") and the
// path parameter that holds an object of its kind.
type reference struct {
	path  []string
	param string
}

func (r reference) String() string { return strings.Join(r.path, ".") }

// references lists the fields of an operation's body that name a team's object. A field that looks like an ID
// but is neither a team's object, a catalogue item nor provenance fails the test: the matrix must be told what
// it names.
func references(t *testing.T, key string, schema map[string]any, at []string) []reference {
	t.Helper()
	var out []reference
	props, _ := schema["properties"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(props)) {
		p := props[name].(map[string]any)
		path := append(slices.Clone(at), name)
		leaf := p
		if p["type"] == "array" {
			path, leaf = append(path, "[]"), p["items"].(map[string]any)
		}
		switch {
		case leaf["type"] == "object":
			out = append(out, references(t, key, leaf, path)...)
		case leaf["type"] != "string":
		case isProvenance(key, path):
		case fieldObjects[name] != "":
			out = append(out, reference{path: path, param: fieldObjects[name]})
		case catalogueFields[name]:
		case idField.MatchString(name):
			t.Errorf("%s: body field %s looks like a reference; tell the matrix what it names (fieldObjects, catalogueFields or provenanceFields)",
				key, strings.Join(path, "."))
		}
	}
	return out
}

func isProvenance(key string, path []string) bool {
	p, ok := provenanceFields[key]
	return ok && strings.HasPrefix(strings.Join(path, ".")+".", p.prefix)
}

// referenceBodies are the bodies (and path parameters) that make a call valid but for the reference under test,
// for the operations where a body holding a name and that reference alone is not. ref is the reference's last
// field (instanceId, deviceGroupId…).
var referenceBodies = map[string]func(w *crossWorld, t *testing.T, ref string) (map[string]any, map[string]string){
	"POST /api/v1/applications/{applicationId}/instances": func(w *crossWorld, t *testing.T, ref string) (map[string]any, map[string]string) {
		return map[string]any{"name": "intruder-copy", "instanceTypeId": w.catalogueItem(t, "instance-types"),
			"stackId": w.catalogueItem(t, "stacks"), "templateId": w.catalogueItem(t, "templates")}, nil
	},
	// Team B's pipeline is [instance stage, group stage]: an instance or device stage goes first, prompting for
	// its snapshot; a group stage goes last.
	"POST /api/v1/pipelines/{pipelineId}/stages": func(_ *crossWorld, _ *testing.T, ref string) (map[string]any, map[string]string) {
		if ref == "deviceGroupId" {
			return map[string]any{"name": "intruder", "action": "prompt"}, nil
		}
		return map[string]any{"name": "intruder", "action": "prompt", "position": 0}, nil
	},
	"PATCH /api/v1/pipelines/{pipelineId}/stages/{stageId}": func(w *crossWorld, _ *testing.T, ref string) (map[string]any, map[string]string) {
		if ref == "deviceGroupId" {
			return map[string]any{"action": "prompt"}, map[string]string{"stageId": w.b.params["fleetStageId"]}
		}
		return map[string]any{"action": "prompt"}, nil
	},
	"POST /api/v1/teams/{teamId}/alert-rules": func(_ *crossWorld, _ *testing.T, _ string) (map[string]any, map[string]string) {
		return map[string]any{"name": "intruder", "kinds": []string{"instance_crashed"}}, nil
	},
}

// catalogueItem is the first item of a platform catalogue (stacks, templates…).
func (w *crossWorld) catalogueItem(t *testing.T, collection string) string {
	t.Helper()
	return w.paramValue(t, "/api/v1/"+collection+"/{id}", "id", tenant{})
}

// referenceRequest is team B's call of op with the reference naming id: the path on team B's objects, and a
// valid body otherwise.
func (w *crossWorld) referenceRequest(t *testing.T, op operation, ref reference, id string) (string, map[string]any) {
	t.Helper()
	key := op.method + " " + op.path
	body, params := map[string]any{}, map[string]string(nil)
	if build, ok := referenceBodies[key]; ok {
		body, params = build(w, t, ref.path[len(ref.path)-1])
	} else if props, _ := op.schema["properties"].(map[string]any); props["name"] != nil {
		body["name"] = "intruder"
	}
	tn := tenant{teamID: w.b.teamID, params: map[string]string{}}
	for k, v := range w.b.params {
		tn.params[k] = v
	}
	for k, v := range params {
		tn.params[k] = v
	}
	setPath(body, ref.path, id)
	return w.resolve(t, op.path, tn), body
}

// setPath puts value at path in body, making the objects and one-item arrays on the way.
func setPath(body map[string]any, path []string, value any) {
	if len(path) > 1 && path[1] == "[]" {
		if len(path) == 2 {
			body[path[0]] = []any{value}
			return
		}
		item := map[string]any{}
		setPath(item, path[2:], value)
		body[path[0]] = []any{item}
		return
	}
	if len(path) == 1 {
		body[path[0]] = value
		return
	}
	inner, _ := body[path[0]].(map[string]any)
	if inner == nil {
		inner = map[string]any{}
		body[path[0]] = inner
	}
	setPath(inner, path[1:], value)
}

// sweepBodyReferences runs every reference of every body alone; it returns the calls made.
func (w *crossWorld) sweepBodyReferences(t *testing.T, ops []operation) int {
	t.Helper()
	calls := 0
	for _, op := range ops {
		key := op.method + " " + op.path
		if _, public := publicRoutes[key]; public || op.schema == nil {
			continue
		}
		for _, ref := range references(t, key, op.schema, nil) {
			calls += 2
			w.checkForeignReference(t, op, ref)
		}
		if _, ok := provenanceFields[key]; ok {
			calls++
			w.checkProvenance(t, op)
		}
	}
	return calls
}

// checkForeignReference sends op with ref naming team A's object, and with ref naming nothing: both are refused
// alike, naming the field, and neither writes or starts anything.
func (w *crossWorld) checkForeignReference(t *testing.T, op operation, ref reference) {
	t.Helper()
	what := fmt.Sprintf("%s %s with %s naming team A's object", op.method, op.path, ref)
	path, body := w.referenceRequest(t, op, ref, w.a.params[ref.param])
	_, ghostBody := w.referenceRequest(t, op, ref, domain.NewID())
	before, runs := w.dump(t), w.workflowCalls()
	got := w.users["b-owner"].do(op.method, path, body, nil)
	ghost := w.users["b-owner"].do(op.method, path, ghostBody, nil)
	if got.status < 400 || got.status >= 500 {
		t.Errorf("%s: status %d, want a refusal: %s", what, got.status, got.body)
	} else if !refusalNames(got, ref) {
		t.Errorf("%s: refused for something else than the reference (make the rest of the body valid in referenceBodies): %s", what, got.body)
	}
	if g, h := refusalOf(got), refusalOf(ghost); g != h {
		t.Errorf("%s: answers %s, but %s when the object does not exist: another team's object must be no object", what, g, h)
	}
	sent, _ := json.Marshal(body)
	for secret, s := range w.a.secrets {
		if strings.Contains(got.body, s) && !strings.Contains(string(sent), s) {
			t.Errorf("%s: the answer shows team A's %s: %s", what, secret, got.body)
		}
	}
	w.checkNoWrite(t, what, false, before, w.dump(t))
	assert.Equal(t, runs, w.workflowCalls(), "%s: a refusal starts or signals no workflow", what)
}

// checkProvenance sends op with every field naming team A's objects: the call may succeed (the fields are
// ignored), but writes nothing that names team A and shows nothing of it.
func (w *crossWorld) checkProvenance(t *testing.T, op operation) {
	t.Helper()
	what := op.method + " " + op.path + " with its provenance naming team A's objects"
	body := w.bodyFor(op)
	before := w.dump(t)
	got := w.users["b-owner"].do(op.method, w.resolve(t, op.path, w.b), body, nil)
	if got.status >= 500 {
		t.Errorf("%s: status %d: %s", what, got.status, got.body)
	}
	w.checkNoWrite(t, what, true, before, w.dump(t))
}

var listIndex = regexp.MustCompile(`\[\d+\]`)

// refusalNames tells whether a refusal is about the reference: a 403 or 404 (the caller may not reach what it
// names), or a validation naming its field.
func refusalNames(a answer, ref reference) bool {
	if a.status == 403 || a.status == 404 {
		return true
	}
	var env struct {
		Validations []struct{ Field string } `json:"validations"`
	}
	_ = json.Unmarshal([]byte(a.body), &env)
	for _, v := range env.Validations {
		field := listIndex.ReplaceAllString(v.Field, "[]")
		if i := strings.LastIndex(field, "."); i >= 0 {
			field = field[i+1:]
		}
		if strings.Contains(ref.String(), strings.TrimSuffix(field, "[]")) {
			return true
		}
	}
	return false
}

// refusalOf is what a refusal says, without the IDs it may quote.
func refusalOf(a answer) string {
	var env struct {
		Code        string                   `json:"code"`
		Validations []struct{ Field string } `json:"validations"`
	}
	_ = json.Unmarshal([]byte(a.body), &env)
	return fmt.Sprintf("%d %s %v", a.status, env.Code, env.Validations)
}

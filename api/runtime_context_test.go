package api_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/storage"
)

// setContextLimit sets the persistent context limit of the instance type of in through the admin API.
func (w *instanceWorld) setContextLimit(t *testing.T, in *storage.Instance, kb int) {
	t.Helper()
	w.browsers["admin"].mustJSON(200, "PATCH", "/api/v1/instance-types/"+in.InstanceTypeID, map[string]any{"contextLimitKB": kb})
}

// TestRuntimeContextLimit writes an instance's persistent context through the runtime API: whole scopes
// replaced or deleted in one step, a write past the instance type's limit refused with nothing changed, a
// context over a lowered limit still allowed to shrink, and bad bodies refused.
func TestRuntimeContextLimit(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect string) {
		w := newInstanceWorld(t, dialect)
		in, sec := w.addInstance(t, "ctx", "")
		rt := w.runtimeClient(t, sec.runtime)
		path := "/api/v1/runtime/instances/" + in.ID + "/context"

		empty := rt.Must(200, "GET", path, nil)
		assert.JSONEq(t, `{"limitBytes":1048576,"usedBytes":0,"scopes":{}}`, string(empty.Raw), "1 MiB unless an admin says otherwise")

		w.setContextLimit(t, in, 1)
		global := `{"a":"` + strings.Repeat("x", 500) + `"}`
		written := rt.Must(200, "PATCH", path, `{"global":`+global+`,"tab1":{"n":1},"n1:tab1":{"s":"ünï"}}`)
		used := int64(len(global) + len(`{"n":1}`) + len(`{"s":"ünï"}`))
		assert.Equal(t, float64(used), written.Body["usedBytes"])
		assert.Equal(t, float64(1024), written.Body["limitBytes"])
		stored := rt.Must(200, "GET", path, nil)
		assert.JSONEq(t, `{"limitBytes":1024,"usedBytes":`+strconv.FormatInt(used, 10)+`,"scopes":{"global":`+global+`,"tab1":{"n":1},"n1:tab1":{"s":"ünï"}}}`, string(stored.Raw))

		over := rt.Do("PATCH", path, `{"tab1":{"big":"`+strings.Repeat("y", 600)+`"},"n1:tab1":null}`)
		assert.Equal(t, 413, over.Status, string(over.Raw))
		assert.Equal(t, "context_limit_exceeded", over.String("code"))
		assert.Contains(t, over.String("message"), "may keep 1024 bytes")
		assert.JSONEq(t, string(stored.Raw), string(rt.Must(200, "GET", path, nil).Raw), "a refused write changes nothing, not even its deletions")

		rt.Must(200, "PATCH", path, `{"n1:tab1":null}`)
		_, gone := rt.Must(200, "GET", path, nil).Body["scopes"].(map[string]any)["n1:tab1"]
		assert.False(t, gone, "null deletes the scope")

		w.setContextLimit(t, in, 0)
		assert.Equal(t, 200, rt.Do("PATCH", path, `{"global":{"a":"short"}}`).Status, "over a lowered limit, a context may still shrink")
		grow := rt.Do("PATCH", path, `{"global":{"a":"short","b":"more"}}`)
		assert.Equal(t, 413, grow.Status)
		assert.Contains(t, grow.String("message"), "keeps no persistent context")

		for body, field := range map[string]string{`{"g":[1]}`: "scopes.g", `{"g":"text"}`: "scopes.g", `{"":{}}`: "scopes"} {
			r := rt.Do("PATCH", path, body)
			require.Equal(t, 400, r.Status, "%s: %s", body, r.Raw)
			assert.Equal(t, field, r.Body["validations"].([]any)[0].(map[string]any)["field"], body)
		}
		assert.Equal(t, 400, rt.Do("PATCH", path, `[{"g":{}}]`).Status)

		_, other := w.addInstance(t, "ctx-other", "")
		assert.Equal(t, 404, w.runtimeClient(t, other.runtime).Do("GET", path, nil).Status, "another instance's token")
		assert.Equal(t, 404, w.runtimeClient(t, other.runtime).Do("PATCH", path, `{"global":null}`).Status)
		assert.Equal(t, 401, w.browsers["owner"].do("GET", path, nil, nil).status, "a user's session does not open it")

		for _, kb := range []int{-1, 64<<10 + 1} {
			r := w.browsers["admin"].do("PATCH", "/api/v1/instance-types/"+in.InstanceTypeID, map[string]any{"contextLimitKB": kb}, nil)
			assert.Equal(t, 400, r.status, "contextLimitKB %d: %s", kb, r.body)
		}
		assert.Equal(t, 403, w.browsers["owner"].do("PATCH", "/api/v1/instance-types/"+in.InstanceTypeID, map[string]any{"contextLimitKB": 9}, nil).status)
	})
}

// contextFlows count calls in flow and global context of the "persistent" store; /big stores a value over
// the limit, and its function's error reaches a catch node, which answers the message.
func contextFlows() []map[string]any {
	return []map[string]any{
		{"id": "tab1", "type": "tab", "label": "Context"},
		{"id": "in1", "type": "http in", "z": "tab1", "url": "/count", "method": "get", "wires": []any{[]any{"fn1"}}},
		{"id": "fn1", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"out1"}}, "func": `
const n = (flow.get("n", "persistent") || 0) + 1;
flow.set("n", n, "persistent");
global.set("last.call", {n: n, at: "x"}, "persistent");
context.set("mine", n * 10, "persistent");
const volatile = (flow.get("volatile", "memory") || 0) + 1;
flow.set("volatile", volatile, "memory");
msg.payload = [n, global.get("last.call.n", "persistent"), context.get("mine", "persistent"), volatile].join(",");
return msg;`},
		{"id": "out1", "type": "http response", "z": "tab1"},
		{"id": "in2", "type": "http in", "z": "tab1", "url": "/big", "method": "get", "wires": []any{[]any{"fn2"}}},
		{"id": "fn2", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"out1"}},
			"func": `global.set("big", "x".repeat(4096), "persistent"); msg.payload = "stored"; return msg;`},
		{"id": "catch1", "type": "catch", "z": "tab1", "scope": []any{"fn2"}, "wires": []any{[]any{"fn3"}}},
		{"id": "fn3", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"out1"}},
			"func": `msg.payload = msg.error.message; return msg;`},
		{"id": "in3", "type": "http in", "z": "tab1", "url": "/async", "method": "get", "wires": []any{[]any{"fn4"}}},
		{"id": "fn4", "type": "function", "z": "tab1", "outputs": 1, "wires": []any{[]any{"out1"}}, "func": `
flow.set("huge", "z".repeat(4096), "persistent", (err) => {
    msg.payload = err ? "refused: " + err.code : "stored";
    node.send(msg);
});
return null;`},
	}
}

// TestRuntimeContextWithRealNodeRED runs flows that keep values in the persistent context store of a real
// Node-RED: the values are in the platform once Node-RED stops, and a Node-RED started afresh on an empty
// userDir (another host) finds them, while the memory store starts empty. A value over the instance's limit
// is refused to the flow, synchronously as an error a catch node gets and asynchronously through the callback,
// and is never stored.
func TestRuntimeContextWithRealNodeRED(t *testing.T) {
	t.Parallel()
	w := newInstanceWorld(t, "postgres")
	in, sec := w.addInstance(t, "e2e-context", "")
	w.setContextLimit(t, in, 2)
	red := startNodeRED(t, w.env.URL, in, sec, freeRuntimePort(t))
	status, body := red.call("POST", "/admin/flows", map[string]any{"flows": contextFlows()}, map[string]string{"Node-RED-API-Version": "v2"})
	require.Equal(t, 200, status, body)
	waitCall := func(path string) string {
		t.Helper()
		for range 100 {
			if status, body := red.call("GET", path, nil, nil); status == 200 {
				return body
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("GET %s never answered 200:\n%s", path, red.output.String())
		return ""
	}
	assert.Equal(t, "1,1,10,1", waitCall("/count"))
	assert.Equal(t, "2,2,20,2", waitCall("/count"))
	assert.Contains(t, waitCall("/big"), "persistent context is full", "the flow's catch node gets the refusal")
	assert.Equal(t, "refused: context_limit_exceeded", waitCall("/async"))

	red.stop() // SIGTERM: Node-RED closes its context stores, which write what changed
	stored, err := w.env.Store.GetInstanceContext(context.Background(), in.ID)
	require.NoError(t, err)
	assert.JSONEq(t, `{"n":2}`, stored["tab1"])
	assert.JSONEq(t, `{"last":{"call":{"n":2,"at":"x"}}}`, stored["global"])
	assert.JSONEq(t, `{"mine":20}`, stored["fn1:tab1"])
	encoded, err := json.Marshal(stored)
	require.NoError(t, err)
	assert.NotContains(t, string(encoded), "xxxx", "the refused value was never stored")
	assert.NotContains(t, string(encoded), "volatile", "the memory store stays in memory")

	red = startNodeRED(t, w.env.URL, in, sec, freeRuntimePort(t)) // a new, empty userDir
	assert.Equal(t, "3,3,30,1", waitCall("/count"), "persistent values survive; memory starts again")
	assert.NotContains(t, red.output.String(), "persistent context:", "nothing was refused or lost on the way")
}

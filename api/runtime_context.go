package api

import (
	"bytes"
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The persistent context store: the context plugin (nodered/plugin/flowyard-storage.js, store "persistent")
// reads an instance's whole context when Node-RED starts and writes the scopes that changed in batches. An
// instance may keep as much as its instance type's contextLimitKB; a write past it answers 413
// context_limit_exceeded and changes nothing.

// runtimeContextJSON is the answer of GET …/context.
type runtimeContextJSON struct {
	LimitBytes int64                   `json:"limitBytes"`
	UsedBytes  int64                   `json:"usedBytes"`
	Scopes     storage.InstanceContext `json:"scopes"`
}

// runtimeContextPatch is the body of PATCH …/context: scope → its whole new object, or null to delete it.
type runtimeContextPatch map[string]json.RawMessage

// maxContextScopeLen bounds a scope name: Node-RED's are "global", a flow's ID or "<node ID>:<flow ID>".
const maxContextScopeLen = 512

func (s *Server) registerRuntimeContext() {
	path := "/api/v1/runtime/instances/:instanceId/context"
	s.route(routeDoc{Method: "GET", Path: path, Tag: "runtime",
		Summary: "The instance's persistent context, every scope, with its limit; runtime token only."}, s.getRuntimeContext)
	s.route(routeDoc{Method: "PATCH", Path: path, Tag: "runtime", Body: runtimeContextPatch{}, Status: fiber.StatusOK,
		Summary: "Replace (object) or delete (null) scopes of the instance's persistent context in one step; 413 past its limit; runtime token only."}, s.patchRuntimeContext)
}

func (s *Server) getRuntimeContext(c *fiber.Ctx) error {
	id, err := s.runtimeInstanceID(c)
	if err != nil {
		return err
	}
	limit, err := s.contextLimit(c, id)
	if err != nil {
		return err
	}
	scopes, err := s.store.GetInstanceContext(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(runtimeContextJSON{LimitBytes: limit, UsedBytes: scopes.Size(), Scopes: scopes})
}

func (s *Server) patchRuntimeContext(c *fiber.Ctx) error {
	id, err := s.runtimeInstanceID(c)
	if err != nil {
		return err
	}
	var patch runtimeContextPatch
	if err := s.decode(c, &patch); err != nil {
		return err
	}
	changes, err := contextChanges(patch)
	if err != nil {
		return err
	}
	limit, err := s.contextLimit(c, id)
	if err != nil {
		return err
	}
	used, err := s.store.PatchInstanceContext(c.UserContext(), id, changes, limit)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"limitBytes": limit, "usedBytes": used})
}

// contextChanges checks a patch: scope names Node-RED could have made, each a JSON object or null.
func contextChanges(patch runtimeContextPatch) (map[string]*string, error) {
	changes := make(map[string]*string, len(patch))
	var errs []*domain.FieldError
	for scope, raw := range patch {
		field := "scopes." + scope
		switch trimmed := bytes.TrimSpace(raw); {
		case scope == "" || len(scope) > maxContextScopeLen:
			errs = append(errs, &domain.FieldError{Field: "scopes", Detail: "a scope name is empty or longer than 512 bytes"})
		case bytes.Equal(trimmed, []byte("null")):
			changes[scope] = nil
		case len(trimmed) > 0 && trimmed[0] == '{':
			body := string(trimmed)
			changes[scope] = &body
		default:
			errs = append(errs, &domain.FieldError{Field: field, Detail: "must be a JSON object, or null to delete the scope"})
		}
	}
	return changes, domain.Collect(errs...)
}

// contextLimit is how many bytes of persistent context the instance may keep: its instance type's limit.
func (s *Server) contextLimit(c *fiber.Ctx, instanceID string) (int64, error) {
	in, err := s.store.GetInstance(c.UserContext(), instanceID)
	if err != nil {
		return 0, err
	}
	it, err := storage.GetObject[storage.InstanceType](c.UserContext(), s.store, in.InstanceTypeID)
	if err != nil {
		return 0, err
	}
	return int64(it.ContextLimitKB) << 10, nil
}

package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// instanceContext is one scope of an instance's persistent context: a JSON object of the values flows keep in
// the "persistent" context store.
type instanceContext struct {
	bun.BaseModel `bun:"table:instance_context"`
	InstanceID    string `bun:",pk"`
	Scope         string `bun:",pk"`
	Body          string
	SizeBytes     int64
	UpdatedAt     time.Time
}

// InstanceContext is an instance's persistent context: each scope's JSON object, as its context plugin wrote it.
type InstanceContext map[string]string

// Size is what the context counts against its limit: the bytes of every scope's JSON.
func (c InstanceContext) Size() int64 {
	var n int64
	for _, body := range c {
		n += int64(len(body))
	}
	return n
}

// MarshalJSON writes {"<scope>": <object>, …} with each scope's JSON as stored.
func (c InstanceContext) MarshalJSON() ([]byte, error) {
	raw := make(map[string]json.RawMessage, len(c))
	for scope, body := range c {
		raw[scope] = json.RawMessage(body)
	}
	return json.Marshal(raw)
}

// ParseInstanceContext reads {"<scope>": <object>, …}: what MarshalJSON writes and a snapshot keeps.
func ParseInstanceContext(doc string) (InstanceContext, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return nil, fmt.Errorf("persistent context: %w", err)
	}
	out := make(InstanceContext, len(raw))
	for scope, body := range raw {
		if len(body) == 0 || body[0] != '{' {
			return nil, fmt.Errorf("persistent context: scope %q is not a JSON object", scope)
		}
		out[scope] = string(body)
	}
	return out, nil
}

// GetInstanceContext returns every scope of an instance's persistent context.
func (s *Store) GetInstanceContext(ctx context.Context, instanceID string) (InstanceContext, error) {
	var rows []instanceContext
	if err := s.db.NewSelect().Model(&rows).Where("instance_id = ?", instanceID).Scan(ctx); err != nil {
		return nil, err
	}
	out := make(InstanceContext, len(rows))
	for _, r := range rows {
		out[r.Scope] = r.Body
	}
	return out, nil
}

// contextSizes returns the size of each stored scope of an instance's context.
func (s *Store) contextSizes(ctx context.Context, instanceID string) (map[string]int64, error) {
	var rows []instanceContext
	err := s.db.NewSelect().Model(&rows).Column("scope", "size_bytes").Where("instance_id = ?", instanceID).Scan(ctx)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(rows))
	for _, r := range rows {
		sizes[r.Scope] = r.SizeBytes
	}
	return sizes, nil
}

// ContextLimitExceeded is the refusal of a context write that would take an instance past its limit.
func ContextLimitExceeded(size, limit int64) *domain.Error {
	msg := fmt.Sprintf("The persistent context would hold %d bytes; this instance may keep %d bytes (its instance type's limit).", size, limit)
	if limit == 0 {
		msg = "This instance's type keeps no persistent context (its limit is 0)."
	}
	return &domain.Error{Kind: domain.KindTooLarge, Code: "context_limit_exceeded", Message: msg,
		Detail: "Delete values you no longer need, or ask a platform admin for an instance type with a higher limit."}
}

// PatchInstanceContext replaces the given scopes of an instance's context (a nil body deletes the scope) in one
// transaction, and returns the context's size afterwards. A patch that would make the context larger than
// limit bytes, and larger than it was, is refused with ContextLimitExceeded and changes nothing: a context
// already over a lowered limit may still shrink. Concurrent patches of one instance run one at a time.
func (s *Store) PatchInstanceContext(ctx context.Context, instanceID string, changes map[string]*string, limit int64) (int64, error) {
	var size int64
	err := s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		if err := tx.lockInstance(ctx, instanceID); err != nil {
			return err
		}
		sizes, err := tx.contextSizes(ctx, instanceID)
		if err != nil {
			return err
		}
		before := sumSizes(sizes)
		for scope, body := range changes {
			delete(sizes, scope)
			if body != nil {
				sizes[scope] = int64(len(*body))
			}
		}
		size = sumSizes(sizes)
		if size > limit && size > before {
			return ContextLimitExceeded(size, limit)
		}
		return tx.writeContextScopes(ctx, instanceID, changes)
	})
	return size, err
}

// ReplaceInstanceContext makes scopes the instance's whole persistent context (a snapshot's, restored).
func (s *Store) ReplaceInstanceContext(ctx context.Context, instanceID string, scopes InstanceContext) error {
	return s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		if err := tx.lockInstance(ctx, instanceID); err != nil {
			return err
		}
		if _, err := tx.db.NewDelete().Model((*instanceContext)(nil)).Where("instance_id = ?", instanceID).Exec(ctx); err != nil {
			return err
		}
		changes := make(map[string]*string, len(scopes))
		for scope, body := range scopes {
			changes[scope] = &body
		}
		return tx.writeContextScopes(ctx, instanceID, changes)
	})
}

func (s *Store) writeContextScopes(ctx context.Context, instanceID string, changes map[string]*string) error {
	at := now()
	for _, scope := range slices.Sorted(maps.Keys(changes)) {
		body := changes[scope]
		if body == nil {
			if _, err := s.db.NewDelete().Model((*instanceContext)(nil)).Where("instance_id = ? AND scope = ?", instanceID, scope).Exec(ctx); err != nil {
				return err
			}
			continue
		}
		row := &instanceContext{InstanceID: instanceID, Scope: scope, Body: *body, SizeBytes: int64(len(*body)), UpdatedAt: at}
		_, err := s.db.NewInsert().Model(row).On("CONFLICT (instance_id, scope) DO UPDATE").
			Set("body = EXCLUDED.body").Set("size_bytes = EXCLUDED.size_bytes").Set("updated_at = EXCLUDED.updated_at").Exec(ctx)
		if err != nil {
			return err
		}
	}
	return nil
}

// lockInstance holds the instance's row until the transaction ends, or answers not found.
func (s *Store) lockInstance(ctx context.Context, instanceID string) error {
	res, err := s.db.NewUpdate().Table("instances").Set("id = id").Where("id = ?", instanceID).Exec(ctx)
	return mustAffect(res, err, "instance")
}

func sumSizes(sizes map[string]int64) int64 {
	var n int64
	for _, v := range sizes {
		n += v
	}
	return n
}

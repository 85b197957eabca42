package storage

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// Platform objects (team types, instance types, stacks, templates, blueprints) share one set of CRUD queries.

// object is what the shared queries need of a platform model.
type object interface {
	ObjectID() string
	objectName() string
	touch(created bool)
}

// ObjectPtr ties a model type to its pointer, which carries the methods.
type ObjectPtr[T any] interface {
	*T
	object
}

func (o *TeamType) ObjectID() string     { return o.ID }
func (o *InstanceType) ObjectID() string { return o.ID }
func (o *Stack) ObjectID() string        { return o.ID }
func (o *Template) ObjectID() string     { return o.ID }
func (o *Blueprint) ObjectID() string    { return o.ID }

func (*TeamType) objectName() string     { return "team type" }
func (*InstanceType) objectName() string { return "instance type" }
func (*Stack) objectName() string        { return "stack" }
func (*Template) objectName() string     { return "template" }
func (*Blueprint) objectName() string    { return "blueprint" }

// InsertObject adds a platform object. A taken name is a conflict.
func InsertObject[T any, P ObjectPtr[T]](ctx context.Context, s *Store, obj P) error {
	obj.touch(true)
	_, err := s.db.NewInsert().Model(obj).Exec(ctx)
	return classify(err, obj.objectName())
}

// GetObject returns one platform object by ID.
func GetObject[T any, P ObjectPtr[T]](ctx context.Context, s *Store, id string) (P, error) {
	obj := P(new(T))
	err := s.db.NewSelect().Model(obj).Where("id = ?", id).Scan(ctx)
	return obj, classify(err, obj.objectName())
}

// ListObjects returns a page of platform objects.
func ListObjects[T any, P ObjectPtr[T]](ctx context.Context, s *Store, p Page) ([]T, string, error) {
	return listPage(ctx, s.db.NewSelect().Model(P(nil)), "id", p, func(o *T) string { return P(o).ObjectID() })
}

// UpdateObject writes the given columns of a platform object.
func UpdateObject[T any, P ObjectPtr[T]](ctx context.Context, s *Store, obj P, columns ...string) error {
	obj.touch(false)
	res, err := s.db.NewUpdate().Model(obj).Column(append(columns, "updated_at")...).WherePK().Exec(ctx)
	return mustAffect(res, err, obj.objectName())
}

// DeleteObject removes a platform object by ID.
func DeleteObject[T any, P ObjectPtr[T]](ctx context.Context, s *Store, id string) error {
	obj := P(new(T))
	res, err := s.db.NewDelete().Model(obj).Where("id = ?", id).Exec(ctx)
	return mustAffect(res, err, obj.objectName())
}

// CountRows counts rows of table where column = value, to tell whether an object is in use.
func (s *Store) CountRows(ctx context.Context, table, column, value string) (int, error) {
	return count(s.db.NewSelect().TableExpr("?", bun.Ident(table)).Where("? = ?", bun.Ident(column), value).Count(ctx))
}

// UsableStack returns the stack an instance of the type may be created on or moved to: one that exists, is
// active, and is made for every instance type or for this one. Each refusal is a 422 naming stackId.
func UsableStack(ctx context.Context, s *Store, stackID, instanceTypeID string) (*Stack, error) {
	stack, err := GetObject[Stack](ctx, s, stackID)
	switch {
	case domain.IsKind(err, domain.KindNotFound):
		return nil, domain.Unprocessable("unknown_reference", "The stackId names nothing that exists.",
			domain.FieldError{Field: "stackId", Detail: "does not exist"})
	case err != nil:
		return nil, err
	case !stack.Active:
		return nil, domain.Unprocessable("stack_inactive", "The stack is no longer offered for new instances or stack changes.",
			domain.FieldError{Field: "stackId", Detail: "is not active"})
	case stack.InstanceTypeID != nil && *stack.InstanceTypeID != instanceTypeID:
		return nil, domain.Unprocessable("stack_other_instance_type", "The stack is made for another instance type than the instance's.",
			domain.FieldError{Field: "stackId", Detail: "belongs to another instance type"})
	}
	return stack, nil
}

// blueprintTeamType offers a blueprint to a team type.
type blueprintTeamType struct {
	bun.BaseModel `bun:"table:blueprint_team_types"`
	BlueprintID   string `bun:",pk"`
	TeamTypeID    string `bun:",pk"`
}

// SetBlueprintTeamTypes offers the blueprint to exactly these team types; none offers it to every team type.
func (s *Store) SetBlueprintTeamTypes(ctx context.Context, blueprintID string, teamTypeIDs []string) error {
	return s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		if _, err := tx.db.NewDelete().Model((*blueprintTeamType)(nil)).Where("blueprint_id = ?", blueprintID).Exec(ctx); err != nil {
			return err
		}
		rows := make([]blueprintTeamType, 0, len(teamTypeIDs))
		for _, id := range teamTypeIDs {
			rows = append(rows, blueprintTeamType{BlueprintID: blueprintID, TeamTypeID: id})
		}
		if len(rows) == 0 {
			return nil
		}
		_, err := tx.db.NewInsert().Model(&rows).On("CONFLICT DO NOTHING").Exec(ctx)
		return classify(err, "team type")
	})
}

// LoadBlueprintTeamTypes fills TeamTypeIDs of each blueprint (sorted; empty: offered to every team type).
func (s *Store) LoadBlueprintTeamTypes(ctx context.Context, blueprints ...*Blueprint) error {
	if len(blueprints) == 0 {
		return nil
	}
	ids := make([]string, len(blueprints))
	for i, b := range blueprints {
		ids[i] = b.ID
	}
	var rows []blueprintTeamType
	err := s.db.NewSelect().Model(&rows).Where("blueprint_id IN (?)", bun.List(ids)).Order("blueprint_id", "team_type_id").Scan(ctx)
	if err != nil {
		return err
	}
	byBlueprint := map[string][]string{}
	for _, r := range rows {
		byBlueprint[r.BlueprintID] = append(byBlueprint[r.BlueprintID], r.TeamTypeID)
	}
	for _, b := range blueprints {
		b.TeamTypeIDs = byBlueprint[b.ID]
		if b.TeamTypeIDs == nil {
			b.TeamTypeIDs = []string{}
		}
	}
	return nil
}

// offeredTo selects the blueprints (alias b) offered to the team type: those limited to none and those
// limited to it.
func offeredTo(q *bun.SelectQuery, teamTypeID string) *bun.SelectQuery {
	return q.Where("NOT EXISTS (SELECT 1 FROM blueprint_team_types bt WHERE bt.blueprint_id = b.id) OR "+
		"EXISTS (SELECT 1 FROM blueprint_team_types bt WHERE bt.blueprint_id = b.id AND bt.team_type_id = ?)", teamTypeID)
}

// BlueprintOffered reports whether teams of the type may create instances from the blueprint.
func (s *Store) BlueprintOffered(ctx context.Context, blueprintID, teamTypeID string) (bool, error) {
	n, err := offeredTo(s.db.NewSelect().Model((*Blueprint)(nil)).Where("b.id = ?", blueprintID), teamTypeID).Count(ctx)
	return n > 0, err
}

// ListBlueprintsOfferedTo returns a page of the blueprints teams of the type may create instances from.
func (s *Store) ListBlueprintsOfferedTo(ctx context.Context, teamTypeID string, p Page) ([]Blueprint, string, error) {
	q := s.db.NewSelect().Model((*Blueprint)(nil)).WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery { return offeredTo(q, teamTypeID) })
	return listPage(ctx, q, "id", p, func(b *Blueprint) string { return b.ID })
}

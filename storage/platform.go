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

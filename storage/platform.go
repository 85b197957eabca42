package storage

import (
	"context"

	"github.com/uptrace/bun"
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

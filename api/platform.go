package api

import (
	"context"
	"regexp"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// Platform objects (team types, instance types, stacks, templates, blueprints): platform admins write them,
// every signed-in user reads them. One generic set of handlers serves all five; each object brings its
// request shapes, validation and view.

// usage is a reference that keeps an object from being deleted.
type usage struct{ table, column, what string }

type objectRoutes[T any, P storage.ObjectPtr[T], Create any, Update any, View any] struct {
	path   string // e.g. /api/v1/stacks
	tag    string
	param  string // path parameter name
	build  func(ctx context.Context, req *Create) (P, error)
	apply  func(ctx context.Context, obj P, req *Update) ([]string, error)
	view   func(P) View
	usedBy []usage
	// related writes what an object holds outside its own row (a blueprint's team types) in the transaction
	// that writes the row, load reads it back for the views, and relatedFields are the names apply reports
	// for changes there; all optional.
	related       func(ctx context.Context, tx *storage.Store, obj P) error
	load          func(ctx context.Context, st *storage.Store, objs ...P) error
	relatedFields []string
}

func register[T any, P storage.ObjectPtr[T], C any, U any, V any](s *Server, r objectRoutes[T, P, C, U, V]) {
	item := r.path + "/:" + r.param
	s.route(routeDoc{Method: "POST", Path: r.path, Summary: "Create (platform admins).", Tag: r.tag, Body: *new(C), Status: 201}, func(c *fiber.Ctx) error {
		return r.create(s, c)
	})
	s.route(routeDoc{Method: "GET", Path: r.path, Summary: "List.", Tag: r.tag}, func(c *fiber.Ctx) error { return r.list(s, c) })
	s.route(routeDoc{Method: "GET", Path: item, Summary: "Read one.", Tag: r.tag}, func(c *fiber.Ctx) error { return r.get(s, c) })
	s.route(routeDoc{Method: "PATCH", Path: item, Summary: "Change (platform admins).", Tag: r.tag, Body: *new(U)}, func(c *fiber.Ctx) error {
		return r.update(s, c)
	})
	s.route(routeDoc{Method: "DELETE", Path: item, Summary: "Delete an unused one (platform admins).", Tag: r.tag, Status: 204}, func(c *fiber.Ctx) error {
		return r.remove(s, c)
	})
}

func (r objectRoutes[T, P, C, U, V]) create(s *Server, c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	req := new(C)
	if err := s.decode(c, req); err != nil {
		return err
	}
	obj, err := r.build(c.UserContext(), req)
	if err != nil {
		return err
	}
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		if err := storage.InsertObject[T](ctx, tx, obj); err != nil {
			return err
		}
		if err := r.writeRelated(ctx, tx, obj); err != nil {
			return err
		}
		return audit(c, tx, who, "", "platform."+r.tag+".created", r.tag, obj.ObjectID(), nil)
	})
	if err == nil {
		err = r.loadRelated(c.UserContext(), s.store, obj)
	}
	if err != nil {
		return err
	}
	return created(c, r.view(obj))
}

func (r objectRoutes[T, P, C, U, V]) writeRelated(ctx context.Context, tx *storage.Store, obj P) error {
	if r.related == nil {
		return nil
	}
	return r.related(ctx, tx, obj)
}

func (r objectRoutes[T, P, C, U, V]) loadRelated(ctx context.Context, st *storage.Store, objs ...P) error {
	if r.load == nil {
		return nil
	}
	return r.load(ctx, st, objs...)
}

func (r objectRoutes[T, P, C, U, V]) list(s *Server, c *fiber.Ctx) error {
	if _, err := requireAny(c, domain.ActionPlatformRead); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	rows, next, err := storage.ListObjects[T, P](c.UserContext(), s.store, p)
	if err != nil {
		return err
	}
	objs := make([]P, len(rows))
	for i := range rows {
		objs[i] = P(&rows[i])
	}
	if err := r.loadRelated(c.UserContext(), s.store, objs...); err != nil {
		return err
	}
	return list(c, rows, next, func(o *T) V { return r.view(P(o)) })
}

func (r objectRoutes[T, P, C, U, V]) get(s *Server, c *fiber.Ctx) error {
	if _, err := requireAny(c, domain.ActionPlatformRead); err != nil {
		return err
	}
	obj, err := storage.GetObject[T, P](c.UserContext(), s.store, c.Params(r.param))
	if err == nil {
		err = r.loadRelated(c.UserContext(), s.store, obj)
	}
	if err != nil {
		return err
	}
	return c.JSON(r.view(obj))
}

func (r objectRoutes[T, P, C, U, V]) update(s *Server, c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	obj, err := storage.GetObject[T, P](ctx, s.store, c.Params(r.param))
	if err != nil {
		return err
	}
	req := new(U)
	if err := s.decode(c, req); err != nil {
		return err
	}
	if err := r.loadRelated(ctx, s.store, obj); err != nil {
		return err
	}
	cols, err := r.apply(ctx, obj, req)
	if err != nil || len(cols) == 0 {
		return orView(c, err, r.view(obj))
	}
	err = s.store.RunInTx(ctx, func(ctx context.Context, tx *storage.Store) error {
		own := slices.DeleteFunc(slices.Clone(cols), func(c string) bool { return slices.Contains(r.relatedFields, c) })
		if err := storage.UpdateObject[T](ctx, tx, obj, own...); err != nil {
			return err
		}
		if err := r.writeRelated(ctx, tx, obj); err != nil {
			return err
		}
		return audit(c, tx, who, "", "platform."+r.tag+".updated", r.tag, c.Params(r.param), map[string]any{"fields": cols})
	})
	return orView(c, err, r.view(obj))
}

func orView(c *fiber.Ctx, err error, v any) error {
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (r objectRoutes[T, P, C, U, V]) remove(s *Server, c *fiber.Ctx) error {
	who, err := requireAdmin(c)
	if err != nil {
		return err
	}
	id := c.Params(r.param)
	err = s.store.RunInTx(c.UserContext(), func(ctx context.Context, tx *storage.Store) error {
		for _, u := range r.usedBy {
			n, err := tx.CountRows(ctx, u.table, u.column, id)
			if err != nil {
				return err
			}
			if n > 0 {
				return domain.Conflict("in_use", "It is still used by "+itoa(n)+" "+u.what+"; move them first.")
			}
		}
		if err := storage.DeleteObject[T, P](ctx, tx, id); err != nil {
			return err
		}
		return audit(c, tx, who, "", "platform."+r.tag+".deleted", r.tag, id, nil)
	})
	if err != nil {
		return err
	}
	return noContent(c)
}

func (s *Server) registerPlatformObjects() {
	register(s, teamTypeRoutes())
	register(s, instanceTypeRoutes(s))
	register(s, stackRoutes(s))
	register(s, templateRoutes())
	register(s, blueprintRoutes())
}

// exists checks that a referenced platform object exists, as a 422 on the field.
func exists[T any, P storage.ObjectPtr[T]](ctx context.Context, st *storage.Store, field, id string) error {
	_, err := storage.GetObject[T, P](ctx, st, id)
	if domain.IsKind(err, domain.KindNotFound) {
		return unknownReference(field)
	}
	return err
}

var versionPattern = regexp.MustCompile(`^\d{1,3}\.\d{1,3}\.\d{1,3}$`)
var nodeVersionPattern = regexp.MustCompile(`^\d{1,3}(\.\d{1,3}){0,2}$`)

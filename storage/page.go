package storage

import (
	"context"
	"encoding/base64"

	"github.com/uptrace/bun"

	"github.com/flowyard/flowyard/domain"
)

// Page asks for one page of a list ordered by ID.
type Page struct {
	Limit  int
	Cursor string
	// NewestFirst orders by ID descending (IDs grow with time), for lists whose latest entry is what a reader
	// wants first.
	NewestFirst bool
}

// Page limits.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// EncodeCursor makes an opaque cursor from the last ID of a page.
func EncodeCursor(id string) string {
	if id == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 64 || !domain.Storable(string(b)) {
		return "", domain.InvalidField("cursor", "is not a cursor this API gave out")
	}
	return string(b), nil
}

// listPage runs q (already filtered) for one page, ordered by the id column of alias, and returns the next cursor.
func listPage[T any](ctx context.Context, q *bun.SelectQuery, column string, p Page, idOf func(*T) string) ([]T, string, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	if limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	if p.Cursor != "" {
		after, err := DecodeCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		if p.NewestFirst {
			q = q.Where("? < ?", bun.Ident(column), after)
		} else {
			q = q.Where("? > ?", bun.Ident(column), after)
		}
	}
	order := "? ASC"
	if p.NewestFirst {
		order = "? DESC"
	}
	var items []T
	if err := q.OrderExpr(order, bun.Ident(column)).Limit(int64(limit+1)).Scan(ctx, &items); err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = EncodeCursor(idOf(&items[limit-1]))
	}
	return items, next, nil
}

package api

import (
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/services"
	"github.com/flowyard/flowyard/storage"
)

func itoa(i int) string { return strconv.Itoa(i) }

// mustJSON encodes a value that came from JSON, which cannot fail.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("re-encode JSON: " + err.Error())
	}
	return string(b)
}

// listResponse is the shape of every list.
type listResponse[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// pageOf reads ?limit= and ?cursor=.
func pageOf(c *fiber.Ctx) (storage.Page, error) {
	p := storage.Page{Cursor: c.Query("cursor")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > storage.MaxPageLimit {
			return p, domain.InvalidField("limit", "must be a whole number from 1 to "+itoa(storage.MaxPageLimit))
		}
		p.Limit = n
	}
	return p, nil
}

// list answers a page, converting each row with view.
func list[R, V any](c *fiber.Ctx, rows []R, next string, view func(*R) V) error {
	items := make([]V, 0, len(rows))
	for i := range rows {
		items = append(items, view(&rows[i]))
	}
	return c.JSON(listResponse[V]{Items: items, Next: next})
}

func created(c *fiber.Ctx, v any) error { return c.Status(fiber.StatusCreated).JSON(v) }

func noContent(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusNoContent) }

// audit records an event in the team's audit log, inside the caller's transaction (services.Audit).
func audit(c *fiber.Ctx, st *storage.Store, who *caller, teamID, event, entityType, entityID string, body map[string]any) error {
	return services.Audit(c.UserContext(), st, who.userID(), teamID, event, entityType, entityID, body)
}

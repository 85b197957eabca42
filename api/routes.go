package api

import (
	"reflect"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// routeDoc describes one route for the OpenAPI document. Every route is registered through route(), so the
// document cannot forget one.
type routeDoc struct {
	Method  string
	Path    string // Fiber syntax, with :params
	Summary string
	Tag     string
	Public  bool // no authentication needed
	Body    any  // request body type, or nil
	Status  int  // success status
	Stream  bool // the success answer is a text/event-stream
}

// route registers a handler and its documentation.
func (s *Server) route(d routeDoc, h fiber.Handler) {
	if d.Status == 0 {
		d.Status = fiber.StatusOK
	}
	s.routes = append(s.routes, d)
	s.app.Add(d.Method, d.Path, h)
}

var pathParam = regexp.MustCompile(`:([A-Za-z]+)`)

// openAPIPath turns /teams/:teamId into /teams/{teamId}.
func openAPIPath(p string) string { return pathParam.ReplaceAllString(p, "{$1}") }

func (s *Server) openAPIDocument() map[string]any {
	paths := map[string]any{}
	for _, r := range s.routes {
		p := openAPIPath(r.Path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		item[strings.ToLower(r.Method)] = operationDoc(r)
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "Flowyard API", "version": s.cfg.Version},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer":  map[string]any{"type": "http", "scheme": "bearer"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": s.cookieName(sessionCookie)},
			},
			"schemas": map[string]any{"Error": schemaOf(reflect.TypeOf(envelope{}))},
		},
	}
}

func operationDoc(r routeDoc) map[string]any {
	op := map[string]any{
		"summary": r.Summary,
		"tags":    []string{r.Tag},
		"responses": map[string]any{
			itoa(r.Status): successDoc(r),
			"default": map[string]any{"description": "The error envelope.",
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
		},
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(r.Path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if r.Public {
		op["security"] = []any{}
	} else {
		op["security"] = []any{map[string]any{"bearer": []string{}}, map[string]any{"session": []string{}}}
	}
	if r.Body != nil {
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
			"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.Body))}}}
	}
	return op
}

func successDoc(r routeDoc) map[string]any {
	if !r.Stream {
		return map[string]any{"description": "Success."}
	}
	return map[string]any{"description": "Server-Sent Events until the client leaves (see the summary for the events).",
		"content": map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}}}}
}

// schemaOf derives a JSON schema from a Go type's JSON shape.
func schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map, reflect.Interface:
		return map[string]any{"type": "object"}
	case reflect.Struct:
		if t.String() == "time.Time" {
			return map[string]any{"type": "string", "format": "date-time"}
		}
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type)
		}
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

func (s *Server) registerOpenAPI() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/openapi.json", Summary: "This document.", Tag: "meta", Public: true},
		func(c *fiber.Ctx) error { return c.JSON(s.openAPIDocument()) })
}

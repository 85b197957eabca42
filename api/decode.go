package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
)

// requireJSONBody refuses bodies that are not JSON. Browsers cannot send a cross-site JSON request without a
// CORS preflight, so this also keeps cookie-authenticated writes safe from other sites.
func (s *Server) requireJSONBody(c *fiber.Ctx) error {
	if strings.HasPrefix(c.Path(), "/api/v1/billing/stripe-webhook") || len(c.Body()) == 0 {
		return c.Next()
	}
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	if !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return &domain.Error{Kind: domain.KindInvalid, Code: "unsupported_media_type", Message: "Request bodies must be JSON (Content-Type: application/json)."}
	}
	return c.Next()
}

// decodeJSON reads the body into v strictly: unknown fields, wrong types, trailing data and nesting deeper than
// maxDepth (which bounds the stack and CPU a body can take) answer 400 naming the field.
func decodeJSON(body []byte, v any, maxDepth int) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &domain.Error{Kind: domain.KindInvalid, Code: "invalid_json", Message: "The request needs a JSON body."}
	}
	if err := checkDepth(body, maxDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &domain.Error{Kind: domain.KindInvalid, Code: "invalid_json", Message: "The body holds more than one JSON value."}
	}
	return nil
}

func (s *Server) decode(c *fiber.Ctx, v any) error {
	return decodeJSON(c.Body(), v, s.limiter.MaxJSONDepth)
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return domain.InvalidField(field, fmt.Sprintf("must be %s", jsonKind(typeErr.Type.Kind().String())))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return &domain.Error{Kind: domain.KindInvalid, Code: "invalid_json", Message: "The body is not valid JSON.", Detail: err.Error()}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return domain.InvalidField(field, "is not a known field")
	}
	return &domain.Error{Kind: domain.KindInvalid, Code: "invalid_json", Message: "The body could not be read.", Detail: err.Error()}
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	default:
		return "a number"
	}
}

// checkDepth fails when arrays and objects nest deeper than max, without decoding.
func checkDepth(b []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, ch := range b {
		switch {
		case escaped:
			escaped = false
		case inString && ch == '\\':
			escaped = true
		case ch == '"':
			inString = !inString
		case inString:
		case ch == '{' || ch == '[':
			depth++
			if depth > max {
				return &domain.Error{Kind: domain.KindInvalid, Code: "json_too_deep", Message: fmt.Sprintf("The body nests deeper than %d levels.", max)}
			}
		case ch == '}' || ch == ']':
			depth--
		}
	}
	return nil
}

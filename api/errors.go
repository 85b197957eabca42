package api

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// envelope is the body of every non-2xx answer.
type envelope struct {
	Code        string              `json:"code"`
	Message     string              `json:"message"`
	Detail      string              `json:"detail,omitempty"`
	RequestID   string              `json:"requestId,omitempty"`
	Validations []domain.FieldError `json:"validations,omitempty"`
}

var errRouteNotFound = &domain.Error{Kind: domain.KindNotFound, Code: "route_not_found", Message: "There is no such route."}

var kindStatus = map[domain.Kind]int{
	domain.KindInvalid:         fiber.StatusBadRequest,
	domain.KindUnprocessable:   fiber.StatusUnprocessableEntity,
	domain.KindUnauthorized:    fiber.StatusUnauthorized,
	domain.KindForbidden:       fiber.StatusForbidden,
	domain.KindNotFound:        fiber.StatusNotFound,
	domain.KindConflict:        fiber.StatusConflict,
	domain.KindLimit:           fiber.StatusConflict,
	domain.KindTooLarge:        fiber.StatusRequestEntityTooLarge,
	domain.KindRateLimited:     fiber.StatusTooManyRequests,
	domain.KindPaymentRequired: fiber.StatusPaymentRequired,
	domain.KindUnavailable:     fiber.StatusServiceUnavailable,
}

// handleError is the one place that turns an error into the envelope. Internal errors are logged with the
// request ID and never shown.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	rid, _ := c.Locals("requestid").(string)
	status, env := s.toEnvelope(err)
	if status >= 500 {
		env.RequestID = rid
		s.log.Error("request failed", "requestId", rid, "method", c.Method(), "path", c.Path(), "err", err)
	}
	if status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="flowyard"`)
	}
	if de, ok := domain.AsError(err); ok && de.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, retryAfterSeconds(de.RetryAfter))
	}
	return c.Status(status).JSON(env)
}

func (s *Server) toEnvelope(err error) (int, envelope) {
	if de, ok := domain.AsError(err); ok {
		status, known := kindStatus[de.Kind]
		if !known {
			return fiber.StatusInternalServerError, internalEnvelope()
		}
		return status, envelope{Code: de.Code, Message: de.Message, Detail: de.Detail, Validations: de.Validations}
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return fe.Code, fiberEnvelope(fe)
	}
	if unreachable(err) {
		return fiber.StatusServiceUnavailable, envelope{Code: "store_unavailable", Message: "The database does not answer; try again shortly."}
	}
	return fiber.StatusInternalServerError, internalEnvelope()
}

// unreachable tells errors of a database (or other dependency) that cannot be reached, which a client may retry,
// from real failures.
func unreachable(err error) bool {
	var netErr *net.OpError
	return errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || storage.Unavailable(err)
}

func fiberEnvelope(fe *fiber.Error) envelope {
	switch fe.Code {
	case fiber.StatusRequestEntityTooLarge:
		return envelope{Code: "body_too_large", Message: "The request body is too large."}
	case fiber.StatusMethodNotAllowed:
		return envelope{Code: "method_not_allowed", Message: "That method is not allowed on this route."}
	case fiber.StatusNotFound:
		return envelope{Code: "route_not_found", Message: "There is no such route."}
	}
	if fe.Code >= 500 {
		return internalEnvelope()
	}
	return envelope{Code: "bad_request", Message: "The request could not be read.", Detail: fe.Message}
}

// retryAfterSeconds rounds up to whole seconds, at least one: a client told 0 would retry at once.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(max(1, (d+time.Second-1)/time.Second)))
}

func internalEnvelope() envelope {
	return envelope{Code: "internal_error", Message: "Something went wrong on our side; the request ID identifies it in the logs."}
}

package api

import (
	"errors"
	"io"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Request bodies arrive as streams (fasthttp's StreamRequestBody), so that the editor proxy can pass an upload to
// Node-RED as it arrives instead of holding it whole. Streaming turns fasthttp's own body limit off, and lets a
// handler leave part of a body unread on the connection; markDeclaredTooLong and limitBodies put both right for
// every route.

// declaredTooLongHeader marks, from the moment its headers are read, a request that declares a body longer than
// the limit. Streaming reads the first 8 KB of a body before any handler runs; the mark sets the declared
// length to 0 first, so such a request is refused without waiting for a byte of its body (and the connection
// closed, its body unread).
const declaredTooLongHeader = "X-Flowyard-Declared-Too-Long"

// markDeclaredTooLong is the server's hook on each request's headers. A client's own mark header is dropped.
func markDeclaredTooLong(limit int) func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		h.Del(declaredTooLongHeader)
		if h.ContentLength() > limit {
			h.Set(declaredTooLongHeader, "1")
			h.SetContentLength(0)
			h.Del(fiber.HeaderExpect) // no "100 Continue" asking for a body that is not wanted
		}
		return fasthttp.RequestConfig{} // the server's own timeouts and limit
	}
}

// streamedBodyKey holds, in the request's locals, the *streamedBody of a request to an editor origin.
const streamedBodyKey = "flowyard.streamedBody"

var (
	errBodyTooLarge   = fiber.ErrRequestEntityTooLarge
	errBodyUnreadable = fiber.NewError(fiber.StatusBadRequest, "The request body could not be read to its end.")
)

// limitBodies applies the body limit: a declared length over it answers 413 before a byte of the body is read.
// The editor proxy's bodies stay streams, counted against the limit as they are read; every other route gets
// its body read into memory here, up to the limit. A connection whose request body was not read to its end
// (refused early, or too long) is closed after the answer: what is left of the body must not be read as the
// next request.
func (s *Server) limitBodies(c *fiber.Ctx) error {
	if c.Request().Header.Peek(declaredTooLongHeader) != nil {
		c.Context().SetConnectionClose()
		return errBodyTooLarge
	}
	stream := c.Request().BodyStream()
	if c.Request().Header.ContentLength() == 0 || stream == nil { // -1 is a chunked body
		return c.Next()
	}
	limit := s.cfg.BodyLimit
	if !s.isProxiedHost(c) {
		if err := readBody(c, stream, limit); err != nil {
			c.Context().SetConnectionClose()
			return err
		}
		return c.Next()
	}
	body := &streamedBody{r: stream, left: int64(limit)}
	c.Locals(streamedBodyKey, body)
	err := c.Next()
	if !body.atEnd {
		c.Context().SetConnectionClose()
	}
	return err
}

// readBody reads the body into the request, refusing one longer than limit.
func readBody(c *fiber.Ctx, stream io.Reader, limit int) error {
	body, err := io.ReadAll(io.LimitReader(stream, int64(limit)+1))
	switch {
	case err != nil:
		return errBodyUnreadable
	case len(body) > limit:
		return errBodyTooLarge
	}
	c.Request().SetBody(body)
	return nil
}

// streamedBody is a request body passed on as it is read: at most left more bytes, then an error.
type streamedBody struct {
	r        io.Reader
	left     int64
	atEnd    bool  // read to its end: nothing of it is left on the connection
	tooLarge bool  // longer than the limit
	err      error // the client's stream failed
}

// streamedBodyOf returns the editor request's body, or nil when it has none.
func streamedBodyOf(c *fiber.Ctx) *streamedBody {
	body, _ := c.Locals(streamedBodyKey).(*streamedBody)
	return body
}

func (b *streamedBody) Read(p []byte) (int, error) {
	if b.atEnd {
		return 0, io.EOF
	}
	if b.left == 0 {
		return 0, b.overLimit()
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	b.note(err)
	return n, err
}

// overLimit reads past the limit: the end of the body is fine, one more byte is too many.
func (b *streamedBody) overLimit() error {
	var one [1]byte
	n, err := b.r.Read(one[:])
	if n > 0 {
		b.tooLarge = true
		return errBodyTooLarge
	}
	b.note(err)
	return err
}

func (b *streamedBody) note(err error) {
	switch {
	case errors.Is(err, io.EOF):
		b.atEnd = true
	case err != nil:
		b.err = err
	}
}

// failure is the answer to give when passing the body on failed because of the body itself, or nil.
func (b *streamedBody) failure() error {
	switch {
	case b == nil:
		return nil
	case b.tooLarge:
		return errBodyTooLarge
	case b.err != nil:
		return errBodyUnreadable
	}
	return nil
}

package api

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
)

// gatedApp serves a route that holds its request until release is closed, behind a device gate of one slot with
// room for one waiting request.
func gatedApp(maxWait time.Duration) (*fiber.App, *deviceGate, chan struct{}, chan struct{}) {
	s := &Server{deviceGate: newDeviceGate(1, 1, maxWait)}
	app := fiber.New()
	app.Use(s.gateDevices)
	entered, release := make(chan struct{}, 10), make(chan struct{})
	app.Get("/work", func(c *fiber.Ctx) error {
		entered <- struct{}{}
		<-release
		return c.SendString("done")
	})
	return app, s.deviceGate, entered, release
}

func get(t *testing.T, app *fiber.App, token string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest("GET", "/work", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := app.Test(req, -1)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
}

// Device requests beyond the gate's slots wait for one; beyond its queue, or past the longest wait, they are
// refused with 503, Retry-After and the error envelope, without reaching the handler. Other callers (users, the
// dashboard) never wait at the gate.
func TestDeviceGateBoundsDeviceRequests(t *testing.T) {
	app, gate, entered, release := gatedApp(time.Hour)
	device := domain.TokenPrefixDevice + "secret"
	var wg sync.WaitGroup
	results := make(chan int, 2)
	wg.Add(1)
	go func() { defer wg.Done(); status, _, _ := get(t, app, device); results <- status }()
	<-entered // the one slot is taken
	wg.Add(1)
	go func() {
		defer wg.Done()
		status, _, _ := get(t, app, domain.TokenPrefixProvisioning+"secret")
		results <- status
	}()
	require.Eventually(t, func() bool { return gate.waiting.Load() == 1 }, 10*time.Second, 5*time.Millisecond)

	status, retry, body := get(t, app, device) // the queue is full: refused at once
	assert.Equal(t, fiber.StatusServiceUnavailable, status)
	assert.Equal(t, "5", retry)
	var env envelope
	require.NoError(t, json.Unmarshal([]byte(body), &env))
	assert.Equal(t, "platform_busy", env.Code)

	for _, token := range []string{"fyu_a-user-token", ""} { // not device requests: straight to the handler
		wg.Add(1)
		go func() { defer wg.Done(); get(t, app, token) }()
	}
	<-entered
	<-entered

	close(release)
	wg.Wait()
	assert.Equal(t, []int{200, 200}, []int{<-results, <-results}, "the waiting request was served once the slot was free")
	assert.Len(t, entered, 1, "the waiting request reached the handler")
}

// A device request that waits longer than the gate's longest wait is refused.
func TestDeviceGateRefusesAfterTheLongestWait(t *testing.T) {
	app, _, entered, release := gatedApp(50 * time.Millisecond)
	defer close(release)
	go get(t, app, domain.TokenPrefixDevice+"a")
	<-entered
	status, retry, _ := get(t, app, domain.TokenPrefixDevice+"b")
	assert.Equal(t, fiber.StatusServiceUnavailable, status)
	assert.Equal(t, "5", retry)
	assert.Empty(t, entered, "the refused request never reached the handler")
}

// A device request is served on one of the gate's workers, not on its connection's goroutine: the store's deep
// stacks stay on the few workers instead of growing the goroutine of every connection a fleet opens. A panic in
// the handler is still answered by the app's recover middleware.
func TestDeviceRequestsRunOnTheGatesWorkers(t *testing.T) {
	s := &Server{deviceGate: newDeviceGate(2, 1, time.Minute)}
	app := fiber.New()
	app.Use(recover.New(), s.gateDevices)
	stacks := make(chan string, 4)
	app.Get("/work", func(c *fiber.Ctx) error {
		buf := make([]byte, 64<<10)
		stacks <- string(buf[:runtime.Stack(buf, false)])
		return c.SendString("done")
	})
	app.Get("/panic", func(c *fiber.Ctx) error { panic("broken handler") })
	for _, token := range []string{domain.TokenPrefixDevice + "a", domain.TokenPrefixDevice + "b", "fyu_a-user-token"} {
		status, _, body := get(t, app, token)
		require.Equal(t, 200, status)
		require.Equal(t, "done", body)
	}
	for range 2 {
		assert.NotContains(t, <-stacks, "fasthttp", "a device request runs off its connection's goroutine")
	}
	assert.Contains(t, <-stacks, "fasthttp", "a user's request runs where fasthttp serves it")

	req := httptest.NewRequest("GET", "/panic", nil)
	req.Header.Set("Authorization", "Bearer "+domain.TokenPrefixDevice+"a")
	resp, err := app.Test(req, -1)
	require.NoError(t, err)
	assert.Equal(t, fiber.StatusInternalServerError, resp.StatusCode)
}

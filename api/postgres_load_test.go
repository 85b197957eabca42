package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/api/apitest"
)

// Load of TestCrashPostgresRestartUnderLoad: writers, and how long one request may take before it counts as a hang.
const (
	loadWriters    = 8
	steadyWrites   = 25 // acknowledged per writer before, between and after the restarts
	requestTimeout = 20 * time.Second
	recoveryWithin = 60 * time.Second
)

// loadWrite is one write a writer sent and how the API answered it.
type loadWrite struct {
	writer     int
	create     bool   // a new application, else a new env value of the writer's own instance
	value      string // the new application's name, or the env value
	status     int    // 0: no answer (transport error or timeout)
	code, rid  string // the envelope's code and request ID on an error
	id         string // the created application's ID
	transport  string // the transport error, if any
	start, end time.Time
}

func (w loadWrite) acknowledged() bool { return w.status >= 200 && w.status < 300 }

// loadClient is a signed-in HTTP client that goroutines may share (apitest.Client fails the test from its own
// goroutine, which a writer must not do).
type loadClient struct {
	base string
	http *http.Client
}

func newLoadClient(t *testing.T, base, email, password string) *loadClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	lc := &loadClient{base: base, http: &http.Client{Jar: jar, Timeout: requestTimeout}}
	status, body, err := lc.send("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password})
	require.NoError(t, err)
	require.Equal(t, 200, status, "%v", body)
	return lc
}

// send sends a JSON request and decodes the JSON answer.
func (lc *loadClient) send(method, path string, body any) (int, map[string]any, error) {
	buf, _ := json.Marshal(body)
	req, err := http.NewRequest(method, lc.base+path, bytes.NewReader(buf))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := lc.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

// do sends one write and records the answer.
func (lc *loadClient) do(w loadWrite, method, path string, body any) loadWrite {
	w.start = time.Now()
	status, out, err := lc.send(method, path, body)
	w.end, w.status = time.Now(), status
	if err != nil {
		w.transport = err.Error()
	}
	w.code, _ = out["code"].(string)
	w.rid, _ = out["requestId"].(string)
	w.id, _ = out["id"].(string)
	return w
}

// loadLog collects every write of every writer.
type loadLog struct {
	mu       sync.Mutex
	writes   []loadWrite
	ackedAt  []atomic.Int64 // per writer: when its latest acknowledged write was sent (UnixNano)
	ackCount []atomic.Int64 // per writer: how many of its writes were acknowledged
}

func newLoadLog(writers int) *loadLog {
	return &loadLog{ackedAt: make([]atomic.Int64, writers), ackCount: make([]atomic.Int64, writers)}
}

func (l *loadLog) add(w loadWrite) {
	l.mu.Lock()
	l.writes = append(l.writes, w)
	l.mu.Unlock()
	if w.acknowledged() {
		l.ackedAt[w.writer].Store(w.start.UnixNano())
		l.ackCount[w.writer].Add(1)
	}
}

// allAckedSince tells whether every writer had a write acknowledged that it sent after t.
func (l *loadLog) allAckedSince(t time.Time) bool {
	for i := range l.ackedAt {
		if l.ackedAt[i].Load() <= t.UnixNano() {
			return false
		}
	}
	return true
}

// waitSteadyLoad waits until every writer has had n more writes acknowledged, so a restart meets a running load.
func (l *loadLog) waitSteadyLoad(t *testing.T, n int64) {
	t.Helper()
	from := make([]int64, len(l.ackCount))
	for i := range from {
		from[i] = l.ackCount[i].Load()
	}
	waitUntil(t, recoveryWithin, fmt.Sprintf("every writer to have %d writes acknowledged", n), func() bool {
		for i := range from {
			if l.ackCount[i].Load() < from[i]+n {
				return false
			}
		}
		return true
	})
}

// runWriter alternates creating an application and changing the env of its own instance until stop closes.
func runWriter(lc *loadClient, log *loadLog, i int, teamID, ownInstance string, stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		value := fmt.Sprintf("w%d-%d", i, n)
		if n%2 == 0 {
			log.add(lc.do(loadWrite{writer: i, create: true, value: value}, "POST", "/api/v1/teams/"+teamID+"/applications", map[string]any{"name": value}))
		} else {
			log.add(lc.do(loadWrite{writer: i, value: value}, "PATCH", "/api/v1/instances/"+ownInstance, versionEnv(value)))
		}
		time.Sleep(2 * time.Millisecond) // leave the two cores some air
	}
}

// TestCrashPostgresRestartUnderLoad restarts the throwaway Postgres twice (-m fast, then -m immediate, a crash)
// while eight writers create applications and change their instance's env through the HTTP API. Every write the API
// acknowledged is there afterwards, no write appears twice, every refused write got a 503 store_unavailable
// envelope with a request ID (never a hang), and the API serves again within a minute of each restart.
func TestCrashPostgresRestartUnderLoad(t *testing.T) {
	pg := newPGCluster(t)
	env := serveOnCluster(t, pg)
	admin := env.Client(t)
	admin.Login("owner@example.com", testPassword)
	team := admin.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Load"}).String("id")
	own := make([]string, loadWriters) // each writer's instance, in an application of its own
	for i := range own {
		app := admin.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": fmt.Sprintf("own-%d", i)}).String("id")
		in := newInstanceRow(t, env.Store, team, app, fmt.Sprintf("load-%d", i))
		require.NoError(t, env.Store.InsertInstance(context.Background(), in))
		own[i] = in.ID
	}

	lc := newLoadClient(t, env.URL, "owner@example.com", testPassword)
	log := newLoadLog(loadWriters)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range loadWriters {
		wg.Go(func() { runWriter(lc, log, i, team, own[i], stop) })
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWriters)

	var windows []restartWindow
	for _, mode := range []string{"fast", "immediate"} {
		log.waitSteadyLoad(t, steadyWrites)
		w := restartWindow{mode: mode, from: time.Now()}
		pg.pgctl("restart", "-m", mode, "-l", filepath.Join(pg.dir, "log"))
		w.up = time.Now()
		waitUntil(t, recoveryWithin, "every writer to have a write acknowledged after the "+mode+" restart", func() bool { return log.allAckedSince(w.up) })
		w.to = time.Now()
		windows = append(windows, w)
	}
	log.waitSteadyLoad(t, steadyWrites)
	stopWriters()

	checkRefusals(t, log.writes, windows)
	checkNothingLost(t, admin, team, own, log.writes)
}

// restartWindow is one Postgres restart: from the command, through Postgres answering again (up), to every
// writer having a write acknowledged again (to).
type restartWindow struct {
	mode         string
	from, up, to time.Time
}

// checkRefusals requires every write that was not acknowledged to be a clean 503 store_unavailable with a
// request ID, and reports per restart how many writes were refused and for how long.
func checkRefusals(t *testing.T, writes []loadWrite, windows []restartWindow) {
	t.Helper()
	var slowest time.Duration
	for _, w := range writes {
		slowest = max(slowest, w.end.Sub(w.start))
		if w.acknowledged() {
			continue
		}
		require.Empty(t, w.transport, "a write got no answer (hang or dropped connection) after %s", w.end.Sub(w.start))
		assert.Equal(t, 503, w.status, "a refused write answers 503: %+v", w)
		assert.Equal(t, "store_unavailable", w.code, "a refused write names the store: %+v", w)
		assert.NotEmpty(t, w.rid, "a 5xx carries a request ID: %+v", w)
	}
	for _, win := range windows {
		var refused, acked int
		var first, last time.Time
		for _, w := range writes {
			if w.start.Before(win.from) || w.start.After(win.to) {
				continue
			}
			if w.acknowledged() {
				acked++
				continue
			}
			refused++
			if first.IsZero() || w.start.Before(first) {
				first = w.start
			}
			if w.end.After(last) {
				last = w.end
			}
		}
		t.Logf("restart -m %s: pg_ctl took %s; %d writes refused with 503 over %s, %d acknowledged; all writers served again %s after the restart began",
			win.mode, win.up.Sub(win.from).Round(time.Millisecond), refused, last.Sub(first).Round(time.Millisecond), acked, win.to.Sub(win.from).Round(time.Millisecond))
	}
	t.Logf("%d writes in all, slowest answer %s", len(writes), slowest.Round(time.Millisecond))
}

// checkNothingLost reads the team's applications back: every acknowledged creation is there once under its ID,
// nothing is there twice or that no writer sent, and each writer's instance carries its last acknowledged env value
// or one sent after it (a refused write may still have committed: its answer was lost, not the write).
func checkNothingLost(t *testing.T, c *apitest.Client, team string, own []string, writes []loadWrite) {
	t.Helper()
	stored := map[string]string{} // name -> ID
	for cursor := ""; ; {
		page := c.Must(200, "GET", "/api/v1/teams/"+team+"/applications?limit=500&cursor="+cursor, nil)
		for _, it := range page.Body["items"].([]any) {
			app := it.(map[string]any)
			name := app["name"].(string)
			_, twice := stored[name]
			require.False(t, twice, "application %s was written twice", name)
			stored[name] = app["id"].(string)
		}
		if cursor = page.String("next"); cursor == "" {
			break
		}
	}
	sent := map[string]bool{}
	for i := range own {
		sent[fmt.Sprintf("own-%d", i)] = true
	}
	var acked, committedUnacked int
	for _, w := range writes {
		if !w.create {
			continue
		}
		sent[w.value] = true
		id, there := stored[w.value]
		switch {
		case w.acknowledged():
			acked++
			assert.True(t, there, "acknowledged application %s (%s) was lost", w.value, w.id)
			assert.Equal(t, w.id, id, "application %s is stored under the ID the API answered", w.value)
		case there:
			committedUnacked++
		}
	}
	for name := range stored {
		assert.True(t, sent[name], "application %s was never sent", name)
	}
	for i, id := range own {
		var got string
		for _, e := range c.Must(200, "GET", "/api/v1/instances/"+id, nil).Body["env"].([]any) {
			got = e.(map[string]any)["value"].(string)
		}
		assert.Contains(t, valuesFromLastAck(writes, i), got, "writer %d's last acknowledged env value was lost", i)
	}
	t.Logf("%d creations acknowledged and all there; %d refused creations committed all the same (their answer was lost)", acked, committedUnacked)
}

// valuesFromLastAck lists the env values writer i's instance may carry: its last acknowledged one and every one
// it sent after it.
func valuesFromLastAck(writes []loadWrite, i int) []string {
	var mine []loadWrite
	for _, w := range writes {
		if w.writer == i && !w.create {
			mine = append(mine, w)
		}
	}
	last := 0
	for j, w := range mine {
		if w.acknowledged() {
			last = j
		}
	}
	var ok []string
	for _, w := range mine[last:] {
		ok = append(ok, w.value)
	}
	return ok
}

func versionEnv(v string) map[string]any {
	return map[string]any{"env": []map[string]any{{"name": "VERSION", "value": v}}}
}

// waitUntil polls cond every 50 ms until it holds, or fails the test after within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "waited %s for %s", within, what)
		time.Sleep(50 * time.Millisecond)
	}
}

package platform_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the store's driver, to read the raw tables

	"github.com/flowyard/flowyard/api/apitest"
)

// TestNoSecretInClearAtRest runs a scenario that creates every kind of secret the platform holds (a password,
// a personal token, an instance with its runtime tokens, a snapshot with credentials, a device with its token,
// broker password and credential secret, a provisioning token), then reads every column of every table of the
// database file and checks that none of the secrets it was shown appears in clear.
func TestNoSecretInClearAtRest(t *testing.T) {
	dev := startDev(t)
	c := (&apitest.Env{URL: dev.URL}).Client(t)
	c.Login("admin@example.com", "admin-password")
	secrets := map[string]string{"admin password": "admin-password"}

	secrets["personal token"] = c.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "ci"}).String("token")
	objects := seededObjects(c)
	app := newApp(t, c, "secrets")
	id, op := postInstance(t, c, app, "secret-keeper", objects)
	require.Equal(t, "succeeded", waitOperation(t, c, op).String("status"))
	deployWithCredentials(t, c, id, "s3cr3t-broker-password")
	secrets["node credential"] = "s3cr3t-broker-password"
	c.Must(201, "POST", "/api/v1/instances/"+id+"/snapshots", map[string]any{"name": "with creds"})

	team := c.Must(200, "GET", "/api/v1/applications/"+app, nil).String("teamId")
	d := c.Must(200, "POST", "/api/v1/devices", map[string]any{"name": "gw", "type": "gateway", "team": team})
	creds := d.Body["credentials"].(map[string]any)
	secrets["device token"] = creds["token"].(string)
	secrets["device credential secret"] = creds["credentialSecret"].(string)
	if b, ok := creds["broker"].(map[string]any); ok {
		secrets["broker password"] = b["password"].(string)
	}
	secrets["provisioning token"] = c.Must(201, "POST", "/api/v1/teams/"+team+"/provisioning-tokens", map[string]any{"name": "p"}).String("token")

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dev.DataDir, "flowyard.db")+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	dump := dumpTables(t, db)
	require.Contains(t, dump, "secret-keeper", "the dump holds the scenario's rows")
	require.Contains(t, dump, `"$"`, "the instance's credentials are stored, encrypted in Node-RED's format")
	for what, secret := range secrets {
		require.NotEmpty(t, secret, what)
		assert.NotContains(t, dump, secret, "%s is stored in clear", what)
	}
}

// deployWithCredentials deploys an mqtt-broker config node with a password through the platform.
func deployWithCredentials(t *testing.T, c *apitest.Client, id, password string) {
	t.Helper()
	flows := []any{map[string]any{"id": "b1", "type": "mqtt-broker", "name": "broker", "broker": "127.0.0.1", "port": "1883",
		"credentials": map[string]any{"user": "u", "password": password}}}
	rev := c.Must(200, "GET", "/api/v1/instances/"+id+"/flows", nil).String("rev")
	c.Must(200, "PUT", "/api/v1/instances/"+id+"/flows", map[string]any{"flows": flows, "rev": rev,
		"credentials": map[string]any{"b1": map[string]any{"user": "u", "password": password}}})
}

// dumpTables renders every value of every table as text.
func dumpTables(t *testing.T, db *sql.DB) string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table'")
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Close())
	var b strings.Builder
	for _, table := range tables {
		r, err := db.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %q", table))
		require.NoError(t, err)
		cols, _ := r.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for r.Next() {
			require.NoError(t, r.Scan(ptrs...))
			for _, v := range vals {
				fmt.Fprintf(&b, "%s\n", v)
			}
		}
		require.NoError(t, r.Close())
	}
	return b.String()
}

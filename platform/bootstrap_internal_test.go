package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/config"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestAGeneratedAdminPasswordMustBeChanged: the first admin with a generated password is held to changing it,
// and the log line says so; a configured password (the operator chose it) is not.
func TestAGeneratedAdminPasswordMustBeChanged(t *testing.T) {
	ctx := context.Background()
	st := storagetest.New(t, "sqlite")
	var out bytes.Buffer
	require.NoError(t, bootstrap(ctx, config.Config{PublicURL: "http://127.0.0.1:8080"}, st, slog.New(slog.NewJSONHandler(&out, nil))))
	var line struct{ Msg, Email, Password string }
	require.NoError(t, json.Unmarshal(out.Bytes(), &line))
	assert.Contains(t, line.Msg, "generated password")
	assert.Contains(t, line.Msg, "sign in and change it")
	u, err := st.GetUserByEmail(ctx, "admin@localhost")
	require.NoError(t, err)
	assert.True(t, u.PasswordChangeRequired)
	assert.True(t, domain.CheckPassword(u.PasswordHash, line.Password))

	configured := storagetest.New(t, "sqlite")
	cfg := config.Config{AdminEmail: "ops@example.com", AdminPassword: "chosen-by-the-operator"}
	require.NoError(t, bootstrap(ctx, cfg, configured, slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil))))
	u, err = configured.GetUserByEmail(ctx, "ops@example.com")
	require.NoError(t, err)
	assert.False(t, u.PasswordChangeRequired)
}

package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestNotifications: on Postgres a notification sent right after Listen returns reaches the listener (ten
// times in a row: pgdriver does not wait for LISTEN to run, and half of them were lost before Listen waited to
// hear itself), one of another channel does not; a payload over Postgres's limit is refused before it is sent.
// SQLite has no notifications and says so.
func TestNotifications(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !st.Notifies() {
			assert.True(t, errors.Is(st.Notify(ctx, "c", "x"), storage.ErrNoNotifications))
			_, err := st.Listen(ctx, "c")
			assert.True(t, errors.Is(err, storage.ErrNoNotifications))
			return
		}
		for i := range 10 {
			ln, err := st.Listen(ctx, "at-once")
			require.NoError(t, err)
			require.NoError(t, st.Notify(ctx, "at-once", fmt.Sprint(i)))
			wait, cancel := context.WithTimeout(ctx, 5*time.Second)
			got, err := ln.Receive(wait)
			cancel()
			require.NoError(t, err, "notification %d, sent right after Listen returned", i)
			assert.Equal(t, fmt.Sprint(i), got)
			require.NoError(t, ln.Close())
		}
		ln, err := st.Listen(ctx, "wanted")
		require.NoError(t, err)
		defer ln.Close()
		require.NoError(t, st.Notify(ctx, "other", "not for us"))
		require.NoError(t, st.Notify(ctx, "wanted", "hello"))
		got, err := ln.Receive(ctx)
		require.NoError(t, err)
		assert.Equal(t, "hello", got)
		assert.Error(t, st.Notify(ctx, "wanted", strings.Repeat("x", storage.MaxNotifyBytes+1)))
		require.NoError(t, st.Notify(ctx, "wanted", strings.Repeat("x", storage.MaxNotifyBytes)), "the limit itself is accepted")
		got, err = ln.Receive(ctx)
		require.NoError(t, err)
		assert.Len(t, got, storage.MaxNotifyBytes)
	})
}

// TestDeviceReplies: an answer is stored once per request, read once by its device's request, then gone.
func TestDeviceReplies(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		req, device := domain.NewID(), domain.NewID()
		require.NoError(t, st.InsertDeviceReply(ctx, &storage.DeviceReply{ID: req, DeviceID: device, Body: "first"}))
		require.NoError(t, st.InsertDeviceReply(ctx, &storage.DeviceReply{ID: req, DeviceID: device, Body: "second"}), "a second answer is ignored")
		_, err := st.TakeDeviceReply(ctx, req, domain.NewID())
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "another device's request reads nothing")
		r, err := st.TakeDeviceReply(ctx, req, device)
		require.NoError(t, err)
		assert.Equal(t, "first", r.Body)
		_, err = st.TakeDeviceReply(ctx, req, device)
		assert.True(t, domain.IsKind(err, domain.KindNotFound), "read once")
	})
}

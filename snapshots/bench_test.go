package snapshots_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/snapshots"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// BenchmarkCaptureAndApply measures the store side of a snapshot (no runtime): Capture and Apply of flows of
// 1 MB and 10 MB, on SQLite and Postgres.
//
//	go test ./snapshots -run '^$' -bench . -benchtime 10x
func BenchmarkCaptureAndApply(b *testing.B) {
	for _, dialect := range storagetest.Dialects {
		for _, size := range []int{1 << 20, 10 << 20} {
			st := storagetest.New(b, dialect)
			f := newFixture(b, st)
			in := f.instance("bench", 0, "bench-secret")
			flows := `[{"id":"c","type":"comment","info":"` + strings.Repeat("x", size) + `"}]`
			f.deploy(in, "bench-secret", flows, map[string]any{"c": map[string]any{"password": "p"}})
			ctx := context.Background()
			snap, err := f.svc.Capture(ctx, in.ID, snapshots.Meta{Name: "base"})
			require.NoError(b, err)
			label := fmt.Sprintf("%s/%dMB", dialect, size>>20)
			b.Run("capture/"+label, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					_, err := f.svc.Capture(ctx, in.ID, snapshots.Meta{Name: "x", Auto: true})
					require.NoError(b, err)
				}
			})
			b.Run("apply/"+label, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					require.NoError(b, f.svc.Apply(ctx, snap.ID, in.ID))
				}
			})
		}
	}
}

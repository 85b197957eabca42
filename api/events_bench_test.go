package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// BenchmarkTeamEventsFanOut measures one instance state change written through the store until all of 100
// streams of its team (over real HTTP) have received it, with a 20 ms poll (1 s in production, which adds up to
// a second): go test ./api -run '^$' -bench TeamEventsFanOut -benchtime 50x
func BenchmarkTeamEventsFanOut(b *testing.B) {
	const streams = 100
	for _, dialect := range storagetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			env := apitest.Start(b, dialect, func(d *api.Deps) {
				d.Config.Live = api.LiveConfig{PollInterval: 20 * time.Millisecond}
			})
			ctx := context.Background()
			u, err := api.NewUser("bench@example.com", "Bench", "bench-password", false)
			if err != nil {
				b.Fatal(err)
			}
			if err := env.Store.InsertUser(ctx, u); err != nil {
				b.Fatal(err)
			}
			c := env.Client(b)
			c.Login("bench@example.com", "bench-password")
			team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Bench"}).String("id")
			app := c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": "app"}).String("id")
			in := storeInstance(b, env.Store, team, app, "watched")
			subs := make([]*apitest.Stream, streams)
			for i := range subs {
				subs[i] = c.Stream("/api/v1/teams/"+team+"/events", "")
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				state := fmt.Sprint("state-", i)
				if _, err := env.Store.SetInstanceState(ctx, in.ID, domain.InstanceState(state), ""); err != nil {
					b.Fatal(err)
				}
				for _, s := range subs {
					s.Until(10*time.Second, state, eventFor("instance", in.ID, state))
				}
			}
			b.ReportMetric(float64(b.N*streams)/time.Since(start).Seconds(), "events/s")
		})
	}
}

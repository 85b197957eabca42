package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// BenchmarkListApplications measures the hot read path (bearer token → membership → list) over real HTTP on
// each store: go test ./api -run '^$' -bench ListApplications -cpuprofile cpu.out
func BenchmarkListApplications(b *testing.B) {
	for _, dialect := range storagetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			env := apitest.Start(b, dialect)
			u, err := api.NewUser("bench@example.com", "Bench", "bench-password", false)
			if err != nil {
				b.Fatal(err)
			}
			if err := env.Store.InsertUser(context.Background(), u); err != nil {
				b.Fatal(err)
			}
			c := env.Client(b)
			c.Login("bench@example.com", "bench-password")
			team := c.Must(201, "POST", "/api/v1/teams", map[string]any{"name": "Bench"}).String("id")
			for i := 0; i < 10; i++ {
				c.Must(201, "POST", "/api/v1/teams/"+team+"/applications", map[string]any{"name": fmt.Sprintf("app-%d", i)})
			}
			token := c.Must(201, "POST", "/api/v1/user/tokens", map[string]any{"name": "bench"}).String("token")
			url := env.URL + "/api/v1/teams/" + team + "/applications"
			client := &fasthttp.Client{MaxConnsPerHost: 64}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(url)
				req.Header.Set("Authorization", "Bearer "+token)
				for pb.Next() {
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						b.Fatalf("request: %v %d", err, resp.StatusCode())
					}
				}
			})
		})
	}
}

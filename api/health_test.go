package api_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flowyard/flowyard/api"
	"github.com/flowyard/flowyard/api/apitest"
	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestReadyzShowsUnisolatedInstances: a degraded part (instances running without their sandbox) shows in
// /readyz with its reason while the platform stays ready; a part that is down still makes it 503.
func TestReadyzShowsUnisolatedInstances(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			unisolated := api.Checker{Name: "instances", Check: func(context.Context) error {
				return api.Degraded("not isolated: bwrap not found")
			}}
			env := apitest.Start(t, dialect, func(d *api.Deps) { d.Ready = []api.Checker{unisolated} })
			ready := env.Client(t).Must(200, "GET", "/readyz", nil)
			assert.Equal(t, "not isolated: bwrap not found", ready.String("instances"))
			assert.Equal(t, "ok", ready.String("store"))

			down := api.Checker{Name: "temporal", Check: func(context.Context) error { return errors.New("connection refused") }}
			env = apitest.Start(t, dialect, func(d *api.Deps) { d.Ready = []api.Checker{unisolated, down} })
			notReady := env.Client(t).Do("GET", "/readyz", nil)
			assert.Equal(t, 503, notReady.Status)
			assert.Equal(t, "temporal", notReady.String("detail"), "only the part that is down is named")
		})
	}
}

package mosquitto_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowyard/flowyard/broker/mosquitto"
	"github.com/flowyard/flowyard/broker/mosquitto/mosquittotest"
	"github.com/flowyard/flowyard/devices"
	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// TestMeasureDynamicSecurityBatch measures whether the accounts of many devices made in one control message cost
// the plugin one save of its file or one per command: at each size (FLOWYARD_BENCH_DYNSEC_SIZES, default 1,000
// and 5,000 accounts) it makes k accounts one message each, then k in one message, and reports the time per
// account and the broker's CPU per account of both. Only under FLOWYARD_BENCH=1.
func TestMeasureDynamicSecurityBatch(t *testing.T) {
	if os.Getenv("FLOWYARD_BENCH") != "1" {
		t.Skip("a measurement, not a test: run it with FLOWYARD_BENCH=1")
	}
	sizes := benchSizes(t, 1000, 5000)
	const k = 20
	for _, n := range sizes {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			mb := mosquittotest.StartSeeded(t, func(config map[string]any) { seedAccounts(config, n) })
			ctx := context.Background()
			b, err := mosquitto.Start(ctx, mosquitto.Config{URL: mb.URL(), Username: mb.AdminUsername, Password: mb.AdminPassword,
				Devices: &devices.Service{}, Timeout: 5 * time.Minute})
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close() })
			team := domain.NewID()
			cpu, t0 := cpuMs(t, mb.PID()), time.Now()
			for range k {
				require.NoError(t, b.Create(ctx, newDevice(team), password()))
			}
			oneMs, oneCPU := float64(time.Since(t0).Microseconds())/1000/k, (cpuMs(t, mb.PID())-cpu)/k
			ds := make([]*storage.Device, k)
			for i := range ds {
				ds[i] = newDevice(team)
			}
			cpu, t0 = cpuMs(t, mb.PID()), time.Now()
			require.NoError(t, b.CreateInOneMessage(ctx, ds, password()))
			batchMs, batchCPU := float64(time.Since(t0).Microseconds())/1000/k, (cpuMs(t, mb.PID())-cpu)/k
			t.Logf("accounts=%d k=%d: one message each %.1f ms/account (mosquitto CPU %.1f ms); all in one message %.1f ms/account (CPU %.1f ms)",
				n, k, oneMs, oneCPU, batchMs, batchCPU)
		})
	}
}

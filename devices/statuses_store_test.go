package devices

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/flowyard/flowyard/storage/storagetest"
)

// TestRecordStatusesReturnsFailedBatch: a batch the store fails to record is not dropped: RecordStatuses returns
// each device's latest status of it, to queue again (StatusQueue.Requeue).
func TestRecordStatusesReturnsFailedBatch(t *testing.T) {
	st := storagetest.New(t, "sqlite")
	s := &Service{Store: st}
	_ = st.Close() // the store fails every query
	sts := []Status{{TeamID: "t", DeviceID: "a", Payload: []byte(`{"state":"starting"}`)},
		{TeamID: "t", DeviceID: "b", Payload: []byte(`not json`)},
		{TeamID: "t", DeviceID: "a", Payload: []byte(`{"state":"running"}`)}}
	ds, rs, failed := s.RecordStatuses(context.Background(), slog.New(slog.DiscardHandler), sts, time.Now())
	assert.Empty(t, ds)
	assert.Empty(t, rs)
	assert.Equal(t, []Status{sts[2]}, failed, "a's latest status, to record again; the malformed one is dropped")
}

package devices

import (
	"context"

	"github.com/flowyard/flowyard/storage"
)

// records is what a device's documents are read from: the store, or a memo of it for a batch of devices.
type records interface {
	GetApplication(ctx context.Context, id string) (*storage.Application, error)
	GetInstance(ctx context.Context, id string) (*storage.Instance, error)
	GetSnapshotMeta(ctx context.Context, id string) (*storage.Snapshot, error)
	GetDeviceGroup(ctx context.Context, id string) (*storage.DeviceGroup, error)
}

func (s *Service) records() records {
	if s.memo != nil {
		return s.memo
	}
	return s.Store
}

// memo reads records through a store once each: the devices of one batch mostly share their application,
// target snapshot and group.
type memo struct {
	st        *storage.Store
	apps      map[string]*storage.Application
	instances map[string]*storage.Instance
	snapshots map[string]*storage.Snapshot
	groups    map[string]*storage.DeviceGroup
}

func newMemo(st *storage.Store) *memo {
	return &memo{st: st, apps: map[string]*storage.Application{}, instances: map[string]*storage.Instance{},
		snapshots: map[string]*storage.Snapshot{}, groups: map[string]*storage.DeviceGroup{}}
}

// cached returns what m holds under id, or reads it with get and keeps it.
func cached[T any](ctx context.Context, m map[string]*T, id string, get func(context.Context, string) (*T, error)) (*T, error) {
	if v, ok := m[id]; ok {
		return v, nil
	}
	v, err := get(ctx, id)
	if err != nil {
		return nil, err
	}
	m[id] = v
	return v, nil
}

func (m *memo) GetApplication(ctx context.Context, id string) (*storage.Application, error) {
	return cached(ctx, m.apps, id, m.st.GetApplication)
}

func (m *memo) GetInstance(ctx context.Context, id string) (*storage.Instance, error) {
	return cached(ctx, m.instances, id, m.st.GetInstance)
}

func (m *memo) GetSnapshotMeta(ctx context.Context, id string) (*storage.Snapshot, error) {
	return cached(ctx, m.snapshots, id, m.st.GetSnapshotMeta)
}

func (m *memo) GetDeviceGroup(ctx context.Context, id string) (*storage.DeviceGroup, error) {
	return cached(ctx, m.groups, id, m.st.GetDeviceGroup)
}

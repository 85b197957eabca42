package storage

import (
	"context"

	"github.com/flowyard/flowyard/domain"
)

// Default platform objects, so that a new user can create an instance without any admin setup.
const (
	DefaultNodeRedVersion = "4.1.15"
	defaultMemoryMB       = 256
	defaultCPUPercent     = 50
)

// SeedDefaults creates one team type, instance type, stack and template when the platform has none. It is
// safe to run on every start.
func (s *Store) SeedDefaults(ctx context.Context) error {
	return s.RunInTx(ctx, func(ctx context.Context, tx *Store) error {
		n, err := count(tx.db.NewSelect().Model((*TeamType)(nil)).Count(ctx))
		if err != nil || n > 0 {
			return err
		}
		it := &InstanceType{ID: domain.NewID(), Name: "Standard", Description: "A Node-RED instance.", Active: true, Properties: map[string]any{}, ContextLimitKB: DefaultContextLimitKB}
		steps := []func() error{
			func() error { return InsertObject(ctx, tx, it) },
			func() error {
				return InsertObject(ctx, tx, &TeamType{ID: domain.NewID(), Name: "Starter", Description: "Small teams.", Active: true, SelfService: true,
					Properties: domain.TeamTypeProperties{Limits: domain.TeamLimits{Members: 20, Instances: 10, Devices: 100}}})
			},
			func() error {
				return InsertObject(ctx, tx, &Stack{ID: domain.NewID(), Name: "node-red-4.1", NodeRedVersion: DefaultNodeRedVersion,
					MemoryMB: defaultMemoryMB, CPUPercent: defaultCPUPercent, InstanceTypeID: &it.ID, Active: true})
			},
			func() error {
				return InsertObject(ctx, tx, &Template{ID: domain.NewID(), Name: "Default", Description: "Node-RED with the editor on.", Active: true,
					Settings: map[string]any{"codeEditor": "monaco", "timeZone": "UTC", "pageTitle": "Flowyard", "headerTitle": "Flowyard"},
					Policy:   map[string]bool{"pageTitle": false}, Env: []domain.EnvVar{}})
			},
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
}

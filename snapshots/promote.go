package snapshots

import (
	"context"
	"strings"

	"github.com/flowyard/flowyard/domain"
)

// Promote writes a snapshot into an instance as a pipeline promotion: like Apply (flows, credentials
// re-encrypted to the instance's secret, settings, modules), but env merges by PromotedEnv.
func (s *Service) Promote(ctx context.Context, snapshotID, instanceID string) error {
	return s.apply(ctx, snapshotID, instanceID, true)
}

// PromotedEnv is the env an instance holds after a promotion: every key it has already (its own or its
// template's) keeps the instance's value; a key only the snapshot has is added with the snapshot's value; the
// platform's FF_* variables are never carried from one instance to another.
func PromotedEnv(own, template, snapshot []domain.EnvVar) []domain.EnvVar {
	existing := map[string]bool{}
	for _, e := range own {
		existing[e.Name] = true
	}
	for _, e := range template {
		existing[e.Name] = true
	}
	out := append([]domain.EnvVar{}, own...)
	for _, e := range snapshot {
		if existing[e.Name] || strings.HasPrefix(e.Name, "FF_") {
			continue
		}
		existing[e.Name] = true
		out = append(out, domain.EnvVar{Name: e.Name, Value: e.Value})
	}
	return out
}

package api

import (
	"context"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// A request body that names an object (a device's group, a token's application, a rollout's snapshot) may name
// only one of the caller's team, and of the application where the model says so. Each handler loads what the
// body names with the functions here, inside the transaction that stores the reference, so the check and the
// write see the same rows. One of another team answers exactly as one that does not exist. The schema refuses
// what a handler might miss (storage/guards.go).

func unknownReference(field string) error {
	return domain.Unprocessable("unknown_reference", "The "+field+" names nothing that exists.", domain.FieldError{Field: field, Detail: "does not exist"})
}

// teamObject loads the object a request field names for a team.
func teamObject[T storage.TeamOwned](ctx context.Context, get func(context.Context, string) (T, error), field, teamID, id string) (T, error) {
	obj, err := get(ctx, id)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && obj.OwnerTeam() != teamID {
		var none T
		return none, unknownReference(field)
	}
	return obj, err
}

// groupOfOtherApplication refuses a group for a device that is not (or would not be) of the group's application.
func groupOfOtherApplication(field string) error {
	return domain.Unprocessable("device_in_other_application", "A device group holds devices of its own application only.",
		domain.FieldError{Field: field, Detail: "is a group of another application than the device's"})
}

// applicationSnapshot loads the snapshot a request field names, which must be one of the application: a
// snapshot of another application, of another team or none at all answers alike.
func applicationSnapshot(ctx context.Context, tx *storage.Store, field, applicationID, id string) (*storage.Snapshot, error) {
	snap, err := tx.GetSnapshotMeta(ctx, id)
	if domain.IsKind(err, domain.KindNotFound) || err == nil && snap.ApplicationID != applicationID {
		return nil, domain.Unprocessable("snapshot_of_other_application", "The snapshot is not one of this application's.",
			domain.FieldError{Field: field, Detail: "is not a snapshot of this application"})
	}
	return snap, err
}

// usableStack refuses a stack an instance of the type may not take (storage.UsableStack).
func usableStack(ctx context.Context, st *storage.Store, stackID, instanceTypeID string) error {
	_, err := storage.UsableStack(ctx, st, stackID, instanceTypeID)
	return err
}

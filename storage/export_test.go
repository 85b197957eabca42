package storage

import (
	"context"
	"io/fs"
	"strings"
	"testing/fstest"
)

// MigrateUpTo applies the migrations numbered up to last ("000010"): a database as an older release left it.
func (s *Store) MigrateUpTo(ctx context.Context, last string) error {
	older := fstest.MapFS{}
	err := fs.WalkDir(migrationFiles, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.TrimPrefix(path, "migrations/") > last+"_~" {
			return err
		}
		b, err := fs.ReadFile(migrationFiles, path)
		older[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		return err
	}
	_, err = s.migrate(ctx, older)
	return err
}

// ExecRaw runs one statement below the store's queries (rows an older release could have written).
func (s *Store) ExecRaw(ctx context.Context, query string, args ...any) error {
	_, err := s.db.NewRaw(query, args...).Exec(ctx)
	return err
}

// CountAll counts every row of table.
func (s *Store) CountAll(ctx context.Context, table string) (int, error) {
	n, err := s.db.NewSelect().Table(table).Count(ctx)
	return int(n), err
}

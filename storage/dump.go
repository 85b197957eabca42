package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
)

// DumpTables renders every row of every table as one line of its column values, rows sorted, keyed by table.
// The tables come from the database's own catalog, so a table added by a later migration is included without
// a change here. Tests use it to search the whole database (secrets at rest) or to compare it before and
// after a refused request (nothing written).
func (s *Store) DumpTables(ctx context.Context) (map[string][]string, error) {
	tables, err := s.tableNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(tables))
	for _, table := range tables {
		rows, err := s.dumpTable(ctx, table)
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", table, err)
		}
		out[table] = rows
	}
	return out, nil
}

func (s *Store) tableNames(ctx context.Context) ([]string, error) {
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if s.Dialect() == "pg" {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	}
	var names []string
	if err := s.db.NewRaw(q).Scan(ctx, &names); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

func (s *Store) dumpTable(ctx context.Context, table string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.NewSelect().TableExpr("?", bun.Ident(table)).ColumnExpr("*").String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		fields := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fields[i] = fmt.Sprintf("%s=%v", cols[i], v)
		}
		out = append(out, strings.Join(fields, "\t"))
	}
	slices.Sort(out)
	return out, rows.Err()
}

package storage

import (
	"database/sql"

	"github.com/flowyard/flowyard/domain"
)

// mustAffect turns "no row changed" into not found.
func mustAffect(res sql.Result, err error, what string) error {
	if err != nil {
		return classify(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return domain.NotFound(what)
	}
	return nil
}

// count narrows bun's int64 counts; counts here are far below 2^31.
func count(n int64, err error) (int, error) { return int(n), err }

// affectedOne reports whether a statement changed exactly one row: the statement held its condition, so the
// caller won a race for that row.
func affectedOne(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

package storage

import (
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flowyard/flowyard/domain"
)

// Reference guards: every row that names another object (a device its group, a stage its targets, a token its
// scopes) may name only objects of its own team, and of its own application where the model says so. The API
// checks that in the transaction that writes the row; the schema refuses it as well, with a trigger per table
// that the migrations declare once, in SQL both databases run, through the helpers below. (SQLite cannot add a
// foreign key to an existing table, and a composite foreign key cannot set one column to NULL when its parent
// goes.)
//
// Migrations are Go templates executed with migrationTemplate as their data:
//
//	{{.Guard "devices_refs" "devices" "team_id, device_group_id" `<a condition on NEW that must hold>`}}
//
// declares the trigger(s) that refuse an INSERT, or an UPDATE of one of the columns, of a row for which the
// condition does not hold. Write conditions as NOT EXISTS (a row of another team) or IS NULL OR EXISTS (…),
// which are never NULL: a condition that is NULL passes.

// referenceGuardMessage starts the error a guard raises; isReferenceViolation finds it in either database's error.
const referenceGuardMessage = "reference_guard:"

// migrationTemplate is the data migrations are executed with.
type migrationTemplate struct {
	dialect string // "sqlite" or "pg"
}

func (m migrationTemplate) postgres() bool { return m.dialect == "pg" }

// split separates statements for bun's migrator.
const split = "\n--bun:split\n"

// Guard declares the trigger(s) refusing a row of table for which condition (an SQL expression over NEW) does
// not hold, on INSERT and on an UPDATE of one of columns.
func (m migrationTemplate) Guard(name, table, columns, condition string) string {
	check := "NOT COALESCE((" + condition + "), FALSE)"
	if m.postgres() {
		return fmt.Sprintf("CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $guard$\nBEGIN\n"+
			"IF %[2]s THEN\nRAISE EXCEPTION '%[3]s%[1]s' USING ERRCODE = 'foreign_key_violation';\nEND IF;\nRETURN NEW;\nEND $guard$"+
			split+"CREATE TRIGGER %[1]s BEFORE INSERT OR UPDATE OF %[4]s ON %[5]s FOR EACH ROW EXECUTE FUNCTION %[1]s()",
			name, check, referenceGuardMessage, columns, table)
	}
	raise := fmt.Sprintf("BEGIN SELECT RAISE(ABORT, '%s%s'); END", referenceGuardMessage, name)
	return fmt.Sprintf("CREATE TRIGGER %[1]s_insert BEFORE INSERT ON %[2]s FOR EACH ROW WHEN %[3]s %[4]s"+
		split+"CREATE TRIGGER %[1]s_update BEFORE UPDATE OF %[5]s ON %[2]s FOR EACH ROW WHEN %[3]s %[4]s",
		name, table, check, raise, columns)
}

// DropGuard removes what Guard declared.
func (m migrationTemplate) DropGuard(name, table string) string {
	if m.postgres() {
		return fmt.Sprintf("DROP TRIGGER %[1]s ON %[2]s"+split+"DROP FUNCTION %[1]s()", name, table)
	}
	return fmt.Sprintf("DROP TRIGGER %[1]s_insert"+split+"DROP TRIGGER %[1]s_update", name)
}

// AfterDelete declares a trigger that runs statement (over OLD) after each row of table is deleted: what a
// foreign key's ON DELETE would do for a column that has none.
func (m migrationTemplate) AfterDelete(name, table, statement string) string {
	if m.postgres() {
		return fmt.Sprintf("CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $after$\nBEGIN\n%[2]s;\nRETURN OLD;\nEND $after$"+
			split+"CREATE TRIGGER %[1]s AFTER DELETE ON %[3]s FOR EACH ROW EXECUTE FUNCTION %[1]s()", name, statement, table)
	}
	return fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s FOR EACH ROW BEGIN %s; END", name, table, statement)
}

// DropAfterDelete removes what AfterDelete declared.
func (m migrationTemplate) DropAfterDelete(name, table string) string {
	if m.postgres() {
		return fmt.Sprintf("DROP TRIGGER %[1]s ON %[2]s"+split+"DROP FUNCTION %[1]s()", name, table)
	}
	return "DROP TRIGGER " + name
}

// JSONStrings is a table expression with one row, column value, per string of the JSON array in expr (a text
// column such as NEW.scopes).
func (m migrationTemplate) JSONStrings(expr string) string {
	if m.postgres() {
		return "(SELECT x.value FROM jsonb_array_elements_text((" + expr + ")::jsonb) AS x(value))"
	}
	return "(SELECT value FROM json_each(" + expr + "))"
}

// JSONFields is a table expression with one row per object of the JSON array in expr, and one text column per
// field named.
func (m migrationTemplate) JSONFields(expr string, fields ...string) string {
	cols := make([]string, len(fields))
	for i, f := range fields {
		if m.postgres() {
			cols[i] = "x.value->>'" + f + "' AS " + f
		} else {
			cols[i] = "json_extract(value, '$." + f + "') AS " + f
		}
	}
	if m.postgres() {
		return "(SELECT " + strings.Join(cols, ", ") + " FROM jsonb_array_elements((" + expr + ")::jsonb) AS x(value))"
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM json_each(" + expr + "))"
}

// isReferenceViolation tells a guard's refusal, or a foreign key's, from other errors.
func isReferenceViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		return pgErr.Field('C') == "23503"
	}
	msg := err.Error()
	return strings.Contains(msg, referenceGuardMessage) || strings.Contains(msg, "FOREIGN KEY constraint failed")
}

// errForeignReference is what a write refused by a guard or a foreign key answers: the API checks every
// reference before it writes, so this is the schema catching a check the API missed.
func errForeignReference(what string) error {
	return domain.Unprocessable("unknown_reference", "The "+what+" names an object that does not exist or belongs to another team or application.")
}

DROP TABLE periodic_runs;
--bun:split
DROP INDEX second_factor_challenges_expires_at;
--bun:split
DROP INDEX email_verifications_expires_at;
--bun:split
DROP INDEX password_resets_expires_at;
--bun:split
DROP INDEX sessions_expires_at;
--bun:split
{{.DropGuard "alert_held_refs" "alert_held"}}
--bun:split
DROP TABLE alert_held;
--bun:split
DROP TABLE alert_throttles;
--bun:split
ALTER TABLE alert_events DROP COLUMN summary_count;
--bun:split
ALTER TABLE alert_rules DROP COLUMN throttle_minutes;

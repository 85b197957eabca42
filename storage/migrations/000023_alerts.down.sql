DROP TABLE instance_samples;
--bun:split
{{.DropGuard "alert_deliveries_refs" "alert_deliveries"}}
--bun:split
{{.DropGuard "alert_events_refs" "alert_events"}}
--bun:split
{{.DropGuard "alert_rules_refs" "alert_rules"}}
--bun:split
DROP TABLE alert_deliveries;
--bun:split
DROP TABLE alert_events;
--bun:split
DROP TABLE alert_rules;
--bun:split
DROP TABLE alert_webhooks;

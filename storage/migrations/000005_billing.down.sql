DROP TABLE stripe_events;
--bun:split
DROP TABLE subscriptions;

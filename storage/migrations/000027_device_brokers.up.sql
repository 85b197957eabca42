-- Which embedded broker holds each connected device (one `flowyard serve` process's broker, by the id it takes
-- when it starts), and when each broker last said it is alive: a broker that starts, and every broker now and
-- then, marks disconnected only the devices of brokers that are gone, never those connected to another replica.
ALTER TABLE devices ADD COLUMN broker_id TEXT;
--bun:split
CREATE TABLE brokers (
    id      TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);

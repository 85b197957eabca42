DROP TABLE brokers;
--bun:split
ALTER TABLE devices DROP COLUMN broker_id;

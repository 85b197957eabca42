DROP TABLE device_snapshots;
--bun:split
DROP TABLE devices;

DROP TABLE rollout_devices;
--bun:split
DROP TABLE rollouts;
--bun:split
DROP INDEX devices_group;
--bun:split
DROP TABLE device_groups;

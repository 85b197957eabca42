DROP TABLE instance_library;
--bun:split
DROP TABLE instance_storage;
--bun:split
DROP TABLE instances;

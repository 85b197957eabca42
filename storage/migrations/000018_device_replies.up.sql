-- A device's answer to a command that expects one (the flows of `upload`), written by the process that holds the
-- device's broker connection for the process that asked, which may be another API replica: a notification
-- carries only the request's id, the answer waits here. The asking process deletes the row when it reads it;
-- rows nobody read (the asker stopped meanwhile) are deleted when later answers are written.
CREATE TABLE device_replies (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX device_replies_created ON device_replies (created_at);

-- Live events: a device that checks in over HTTP goes offline by time (no row changes when it does); the API's
-- team poller finds the devices whose last check-in just left the offline window.
CREATE INDEX devices_team_last_seen ON devices (team_id, last_seen_at);

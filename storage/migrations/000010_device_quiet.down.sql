DROP INDEX devices_team_last_seen;

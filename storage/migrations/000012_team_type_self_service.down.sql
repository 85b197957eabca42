ALTER TABLE team_types DROP COLUMN self_service;

DROP TABLE editor_grants;

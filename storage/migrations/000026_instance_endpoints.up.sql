-- Each instance's flows serve their http-in endpoints at the root of <name>.<apps domain>, through the API's app
-- proxy. endpoints_protected makes that address ask for a signed-in member of the instance's team (an
-- instance-scoped session of that origin, rows of editor_grants of kinds 'app_code' and 'app_session') or a
-- bearer token an owner created (rows of tokens of kind 'endpoint', owned by the instance); FALSE: anyone.
ALTER TABLE instances ADD COLUMN endpoints_protected BOOLEAN NOT NULL DEFAULT FALSE;

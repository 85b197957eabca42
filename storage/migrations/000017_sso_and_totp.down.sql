DROP TABLE second_factor_challenges;
--bun:split
DROP TABLE recovery_codes;
--bun:split
DROP TABLE user_totp;
--bun:split
DROP TABLE sso_configs;

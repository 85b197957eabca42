-- Single sign-on: the users of an e-mail domain sign in through their organisation's OpenID provider. The client
-- secret is sealed with the platform's key; nothing of a sign-in in progress is stored here (its state, nonce and
-- PKCE verifier travel sealed in a cookie, so any API replica finishes what another began).
CREATE TABLE sso_configs (
    id            TEXT PRIMARY KEY,
    domain        TEXT NOT NULL UNIQUE,
    issuer_url    TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
--bun:split
-- A user's authenticator (TOTP, RFC 6238). The shared secret is sealed with the platform's key; confirmed_at is
-- empty until the first code proves the authenticator holds it, and only then does sign-in ask for codes.
-- last_step is the time step of the latest code accepted: no code of that step or before is accepted again.
CREATE TABLE user_totp (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    confirmed_at TIMESTAMPTZ,
    last_step    BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
--bun:split
-- Recovery codes stand in for the authenticator once each. Only their SHA-256 digests are stored (80 random
-- bits each); a used one is deleted.
CREATE TABLE recovery_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX recovery_codes_user_id ON recovery_codes (user_id);
--bun:split
-- A sign-in whose password was right and whose second factor is awaited: no session yet, only this short-lived,
-- single-use row named by a cookie's digest. attempts counts wrong codes, so a few end it.
CREATE TABLE second_factor_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempts   BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE INDEX second_factor_challenges_user_id ON second_factor_challenges (user_id);

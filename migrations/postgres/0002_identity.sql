-- Tenants, accounts, sessions, one-time tokens, API keys, audit trail, email outbox.
CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    industry    TEXT,
    website     TEXT,
    status      TEXT NOT NULL,               -- pending | active | suspended
    bot_config  TEXT NOT NULL DEFAULT '{}',  -- JSON
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id                TEXT PRIMARY KEY,
    org_id            TEXT REFERENCES orgs(id) ON DELETE CASCADE,
    email             TEXT NOT NULL UNIQUE,   -- lower-cased
    password_hash     TEXT NOT NULL,
    role              TEXT NOT NULL,          -- owner | staff | member | superuser
    status            TEXT NOT NULL,          -- pending | active | disabled
    display_name      TEXT,
    preferences       TEXT NOT NULL DEFAULT '{}',
    email_verified_at BIGINT,
    failed_logins     BIGINT NOT NULL DEFAULT 0,
    locked_until      BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX users_org ON users (org_id, created_at);

-- A login session: the family of rotating refresh tokens; access tokens name it in `sid`.
CREATE TABLE auth_sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    revoke_reason TEXT
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES auth_sessions(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE one_time_tokens (
    id          TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,               -- verify_email | password_reset | invitation
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    org_id      TEXT REFERENCES orgs(id) ON DELETE CASCADE,
    email       TEXT,
    role        TEXT,
    created_by  TEXT,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    cancelled_at BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX one_time_tokens_org ON one_time_tokens (org_id, purpose, created_at);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,              -- publishable | secret
    prefix       TEXT NOT NULL,
    last4        TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT                      -- set when rotated out: valid until then (grace)
);
CREATE INDEX api_keys_org ON api_keys (org_id, kind);

CREATE TABLE audit_logs (
    id            TEXT PRIMARY KEY,
    org_id        TEXT,
    actor_id      TEXT,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL
);
CREATE INDEX audit_logs_org ON audit_logs (org_id, created_at);

CREATE TABLE email_outbox (
    id          TEXT PRIMARY KEY,
    to_address  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    next_attempt_at BIGINT NOT NULL,
    sent_at     BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX email_outbox_pending ON email_outbox (sent_at, next_attempt_at);

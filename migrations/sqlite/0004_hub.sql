-- Live sessions (guided and chat), their numbered frames, idempotency keys, credits, generation jobs
-- and the content they produce.
CREATE TABLE conversation_sessions (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,              -- guided | chat
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id       TEXT REFERENCES users(id) ON DELETE CASCADE,
    content_type  TEXT,
    state         TEXT NOT NULL,
    checkpoint    TEXT NOT NULL DEFAULT '{}', -- the state machine, JSON
    last_seq      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    closed_at     BIGINT
);
CREATE INDEX conversation_sessions_user ON conversation_sessions (user_id, created_at);

-- Every numbered server frame, kept for exact resume.
CREATE TABLE session_frames (
    session_id  TEXT NOT NULL REFERENCES conversation_sessions(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    frame       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- Client message ids already processed, so a resent message is not processed twice.
CREATE TABLE session_client_messages (
    session_id        TEXT NOT NULL REFERENCES conversation_sessions(id) ON DELETE CASCADE,
    client_message_id TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (session_id, client_message_id)
);

-- Append-only credit ledger; the balance row is the serialisation point for spending.
CREATE TABLE credit_balances (
    user_id     TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    balance     BIGINT NOT NULL CHECK (balance >= 0),
    updated_at  BIGINT NOT NULL
);

CREATE TABLE credit_transactions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,              -- grant | consumption | purchase | refund
    amount        BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    reference     TEXT NOT NULL,              -- what caused it (job id, payment id…): unique per kind
    created_at    BIGINT NOT NULL,
    UNIQUE (kind, reference)
);
CREATE INDEX credit_transactions_user ON credit_transactions (user_id, created_at);

CREATE TABLE generation_jobs (
    id            TEXT PRIMARY KEY,           -- <session id>:<attempt>, so a retried start is one job
    session_id    TEXT NOT NULL REFERENCES conversation_sessions(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id        TEXT NOT NULL,
    status        TEXT NOT NULL,              -- queued | running | succeeded | failed | cancelled
    spec          TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    content_id    TEXT,
    error         TEXT,
    run_after     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX generation_jobs_status ON generation_jobs (status, run_after);

CREATE TABLE content_items (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id           TEXT REFERENCES users(id) ON DELETE CASCADE,
    content_type      TEXT NOT NULL,
    title             TEXT NOT NULL,
    body              TEXT NOT NULL,
    depth             TEXT,
    duration_minutes  BIGINT,
    time_preference   TEXT,
    intent            TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    source_session_id TEXT,
    generated_by      TEXT,
    play_count        BIGINT NOT NULL DEFAULT 0,
    last_played_at    BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    deleted_at        BIGINT
);
CREATE INDEX content_items_user ON content_items (user_id, created_at);

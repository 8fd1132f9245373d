-- Chat-widget sessions: the visitor's session token (as a digest), the key that opened the session,
-- the conversation's messages with the sources each answer used, and visitor feedback.
CREATE TABLE chat_sessions (
    session_id        TEXT PRIMARY KEY REFERENCES conversation_sessions(id) ON DELETE CASCADE,
    org_id            TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    api_key_id        TEXT NOT NULL,
    token_digest      TEXT NOT NULL UNIQUE,
    token_expires_at  BIGINT NOT NULL,
    visitor_id        TEXT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX chat_sessions_org ON chat_sessions (org_id, created_at);

CREATE TABLE chat_messages (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES conversation_sessions(id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    role         TEXT NOT NULL,              -- user | assistant
    content      TEXT NOT NULL,
    citations    TEXT NOT NULL DEFAULT '[]', -- JSON [{kb_id, title, position}]
    grounded     BIGINT,                     -- assistant: 1 answered from the knowledge base, 0 fallback
    in_reply_to  TEXT,                       -- assistant: the user message it answers
    created_at   BIGINT NOT NULL
);
CREATE INDEX chat_messages_session ON chat_messages (session_id, created_at, id);
CREATE INDEX chat_messages_org ON chat_messages (org_id, created_at);

-- One rating per session (target '') and per assistant message; rating again replaces it.
CREATE TABLE chat_feedback (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES conversation_sessions(id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    target      TEXT NOT NULL,
    rating      BIGINT NOT NULL,             -- 1 up, -1 down
    comment     TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (session_id, target)
);
CREATE INDEX chat_feedback_org ON chat_feedback (org_id, created_at);

-- Which node runs a session's actor, and until when: a session is live on one node at a time.
ALTER TABLE conversation_sessions ADD COLUMN lease_node TEXT;
ALTER TABLE conversation_sessions ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;

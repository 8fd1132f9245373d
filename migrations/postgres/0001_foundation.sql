-- Facts about this installation (first start, schema generation).
CREATE TABLE installation (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Vector search for knowledge bases (pgvector).
CREATE EXTENSION IF NOT EXISTS vector;

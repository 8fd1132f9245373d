-- Knowledge bases: uploaded documents, their chunks and vectors, and the durable ingestion jobs.
CREATE TABLE knowledge_bases (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    title               TEXT NOT NULL,
    source              TEXT NOT NULL,              -- text | file
    filename            TEXT,
    document_kind       TEXT,                       -- pdf | html | markdown | plain_text (detected)
    content             BYTEA NOT NULL,             -- the raw upload, re-read by every (re)ingestion
    byte_size           BIGINT NOT NULL,
    version             BIGINT NOT NULL DEFAULT 1,  -- bumped by every replacement; stale jobs stop
    status              TEXT NOT NULL,              -- pending | processing | ready | failed
    progress            BIGINT NOT NULL DEFAULT 0,  -- percent while processing
    error               TEXT,
    chunk_count         BIGINT NOT NULL DEFAULT 0,
    chunked_version     BIGINT,                     -- version whose chunks are stored
    embedding_model     TEXT,
    embedding_dimension BIGINT,
    created_by          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX knowledge_bases_org ON knowledge_bases (org_id, created_at, id);

-- `embedding` has no fixed dimension so several models can coexist; each model gets its own HNSW
-- index over `embedding::vector(dim)` restricted to its rows (created at start-up for the
-- configured model, see src/storage/knowledge/postgres.rs).
CREATE TABLE knowledge_chunks (
    id                  TEXT PRIMARY KEY,
    kb_id               TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    org_id              TEXT NOT NULL,
    chunk_index         BIGINT NOT NULL,
    text                TEXT NOT NULL,
    token_count         BIGINT NOT NULL,
    heading_path        TEXT NOT NULL,              -- JSON array of strings
    position            TEXT NOT NULL,              -- JSON source position
    embedding_model     TEXT,
    embedding_dimension BIGINT,
    embedding           vector,
    tsv                 tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at          BIGINT NOT NULL,
    UNIQUE (kb_id, chunk_index)
);
CREATE INDEX knowledge_chunks_org_model ON knowledge_chunks (org_id, embedding_model);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);

CREATE TABLE knowledge_jobs (
    id          TEXT PRIMARY KEY,
    kb_id       TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,                      -- ingest | rebuild | embed
    kb_version  BIGINT NOT NULL,
    status      TEXT NOT NULL,                      -- queued | running | succeeded | failed | cancelled
    attempts    BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    run_after   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX knowledge_jobs_due ON knowledge_jobs (status, run_after);
CREATE INDEX knowledge_jobs_kb ON knowledge_jobs (kb_id, status);

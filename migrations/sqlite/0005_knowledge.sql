-- Knowledge bases: uploaded documents, their chunks and vectors, and the durable ingestion jobs.
CREATE TABLE knowledge_bases (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    title               TEXT NOT NULL,
    source              TEXT NOT NULL,              -- text | file
    filename            TEXT,
    document_kind       TEXT,                       -- pdf | html | markdown | plain_text (detected)
    content             BLOB NOT NULL,              -- the raw upload, re-read by every (re)ingestion
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

-- `seq` gives FTS5 a stable integer rowid to reference (an implicit rowid may change on VACUUM).
CREATE TABLE knowledge_chunks (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    kb_id               TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    org_id              TEXT NOT NULL,
    chunk_index         BIGINT NOT NULL,
    text                TEXT NOT NULL,
    token_count         BIGINT NOT NULL,
    heading_path        TEXT NOT NULL,              -- JSON array of strings
    position            TEXT NOT NULL,              -- JSON source position
    embedding_model     TEXT,
    embedding_dimension BIGINT,
    embedding           BLOB,                       -- little-endian f32, L2-normalised
    created_at          BIGINT NOT NULL,
    UNIQUE (kb_id, chunk_index)
);
CREATE INDEX knowledge_chunks_org_model ON knowledge_chunks (org_id, embedding_model);

CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(
    text, content = 'knowledge_chunks', content_rowid = 'seq', tokenize = 'porter unicode61'
);
CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;

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

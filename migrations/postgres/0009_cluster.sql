-- Commands one node forwards to the node running a session (PostgreSQL deployments with several
-- nodes): written here, announced with NOTIFY, taken and deleted by the receiving node.
CREATE TABLE hub_commands (
    id          TEXT PRIMARY KEY,
    to_node     TEXT NOT NULL,
    from_node   TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX hub_commands_created ON hub_commands (created_at);

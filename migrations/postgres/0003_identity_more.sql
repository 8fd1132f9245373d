-- Audit-log queries filter by actor, resource type and time range; the platform summary counts
-- recent logins and sign-ups.
CREATE INDEX audit_logs_created ON audit_logs (created_at, id);
CREATE INDEX audit_logs_actor ON audit_logs (actor_id, created_at);
CREATE INDEX audit_logs_action ON audit_logs (action, created_at);
CREATE INDEX users_created ON users (created_at);
CREATE INDEX orgs_created ON orgs (created_at, id);

//! Cross-node messages of a PostgreSQL deployment: forwarded commands (a row plus a `NOTIFY`),
//! replies and frame announcements (`NOTIFY` payloads), and who holds a session's lease.

use super::{new_id, now_ms, Db};

/// `"<session_id> <seq>"`: frames up to `seq` are stored.
pub const FRAMES_CHANNEL: &str = "rapport_frames";
/// `"<to_node> <command_id>"`: a command waits in `hub_commands`.
pub const COMMANDS_CHANNEL: &str = "rapport_commands";
/// `"<to_node> <request_id> <json>"`: the answer to a forwarded command.
pub const REPLIES_CHANNEL: &str = "rapport_replies";

/// A NOTIFY payload must stay under 8000 bytes.
pub const MAX_NOTIFY_BYTES: usize = 7_900;

/// Commands nobody took within this long are dropped (their node is gone).
const STALE_COMMAND_MS: i64 = 60_000;

pub struct ForwardedCommand {
    pub from_node: String,
    pub session_id: String,
    pub payload: String,
}

impl Db {
    /// The node holding a session's lease and until when (ms), if any.
    pub async fn session_lease(&self, id: &str) -> sqlx::Result<Option<(String, i64)>> {
        let row: Option<(Option<String>, i64)> = sqlx::query_as(
            "SELECT lease_node, lease_until FROM conversation_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(node, until)| node.map(|n| (n, until))))
    }

    /// Stores a command for `to_node` and tells it (on commit).
    pub async fn forward_command(
        &self,
        to_node: &str,
        from_node: &str,
        session_id: &str,
        payload: &str,
    ) -> sqlx::Result<()> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM hub_commands WHERE created_at < $1")
            .bind(now - STALE_COMMAND_MS)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO hub_commands (id, to_node, from_node, session_id, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(to_node)
        .bind(from_node)
        .bind(session_id)
        .bind(payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(COMMANDS_CHANNEL)
            .bind(format!("{to_node} {id}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Takes (and removes) a command addressed to this node.
    pub async fn take_command(
        &self,
        id: &str,
        to_node: &str,
    ) -> sqlx::Result<Option<ForwardedCommand>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "DELETE FROM hub_commands WHERE id = $1 AND to_node = $2 \
             RETURNING from_node, session_id, payload",
        )
        .bind(id)
        .bind(to_node)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(from_node, session_id, payload)| ForwardedCommand {
                from_node,
                session_id,
                payload,
            }),
        )
    }

    pub async fn notify(&self, channel: &str, payload: &str) -> sqlx::Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

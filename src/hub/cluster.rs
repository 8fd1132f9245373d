//! Several nodes on one PostgreSQL database. A session runs on the node holding its lease; a client
//! that reaches another node is served there by a [`super::remote::RemoteSession`], which forwards
//! its commands to the running node and follows the frames that node stores.
//!
//! Everything travels through PostgreSQL `LISTEN/NOTIFY` (see `storage/cluster.rs` for the
//! channels): no node talks to another directly, and frames are always read from storage, so a
//! remote follower sees exactly what a local one sees, in order.

use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgNotification};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::actor::{Command, MessageRequest};
use super::frames::ErrorCode;
use super::{Hub, HubError};
use crate::storage::cluster::{
    COMMANDS_CHANNEL, FRAMES_CHANNEL, MAX_NOTIFY_BYTES, REPLIES_CHANNEL,
};

/// How long a forwarded command may take before the caller is told to retry.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one node asks of the node running a session.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RemoteOp {
    /// Announce this session's frames to the asking node; answered with the last `seq`, once every
    /// frame up to it is stored.
    Follow,
    Message {
        content: String,
        client_message_id: String,
    },
    Cancel,
    Complete {
        confirm: bool,
    },
    Close,
    Snapshot,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    request_id: String,
    op: RemoteOp,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RemoteResult {
    Ok(serde_json::Value),
    Err {
        code: ErrorCode,
        message: String,
    },
    /// The session does not run on the asked node (any more).
    Moved,
}

/// Requests waiting for their answers.
#[derive(Default)]
pub struct Cluster {
    pending: DashMap<String, oneshot::Sender<RemoteResult>>,
}

/// Forwards `op` for `session_id` to `node` and waits for its answer: the outer error says the
/// node did not answer or no longer runs the session, the inner one that it refused the command.
pub async fn request(
    hub: &Hub,
    node: &str,
    session_id: &str,
    op: RemoteOp,
) -> Result<Result<serde_json::Value, HubError>, HubError> {
    let cluster =
        hub.inner.cluster.as_ref().ok_or_else(|| {
            HubError::new(ErrorCode::Busy, "this session is live on another server")
        })?;
    let request_id = crate::storage::new_id();
    let (tx, rx) = oneshot::channel();
    cluster.pending.insert(request_id.clone(), tx);
    let payload = serde_json::to_string(&Envelope {
        request_id: request_id.clone(),
        op,
    })
    .map_err(|_| HubError::new(ErrorCode::Internal, "request encoding"))?;
    let sent = hub
        .db()
        .forward_command(node, &hub.inner.node_id, session_id, &payload)
        .await;
    if let Err(error) = sent {
        cluster.pending.remove(&request_id);
        return Err(error.into());
    }
    let moved = || {
        HubError::new(
            ErrorCode::Busy,
            "the session is moving between servers; retry",
        )
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
        Ok(Ok(RemoteResult::Ok(value))) => Ok(Ok(value)),
        Ok(Ok(RemoteResult::Err { code, message })) => Ok(Err(HubError::new(code, message))),
        Ok(Ok(RemoteResult::Moved)) => Err(moved()),
        _ => {
            cluster.pending.remove(&request_id);
            Err(HubError::new(
                ErrorCode::Busy,
                "the server running this session did not answer; retry",
            ))
        }
    }
}

/// Tells followers on other nodes that the session no longer runs here (`seq` -1).
pub(super) async fn announce_moved(hub: &Hub, session_id: &str) {
    let payload = format!("{session_id} -1");
    if let Err(error) = hub.db().notify(FRAMES_CHANNEL, &payload).await {
        tracing::warn!(%session_id, %error, "followers not told the session moved");
    }
}

/// Starts this node's listener (PostgreSQL only).
pub(super) fn spawn_listener(hub: Hub) {
    let tasks = hub.inner.tasks.clone();
    tasks.spawn(listen(hub));
}

async fn listen(hub: Hub) {
    let draining = hub.inner.draining.clone();
    loop {
        let connected = async {
            let mut listener = PgListener::connect(hub.db().url()).await?;
            listener
                .listen_all([FRAMES_CHANNEL, COMMANDS_CHANNEL, REPLIES_CHANNEL])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            () = draining.cancelled() => return,
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cluster listener cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        // Announcements may have been missed while disconnected: followers catch up from storage.
        catch_up_all(&hub);
        loop {
            let received = tokio::select! {
                () = draining.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => dispatch(&hub, &notification),
                Ok(None) => catch_up_all(&hub),
                Err(error) => {
                    tracing::warn!(%error, "cluster listener lost its connection");
                    break;
                }
            }
        }
    }
}

fn catch_up_all(hub: &Hub) {
    for entry in hub.inner.registry.iter() {
        let _ = entry
            .value()
            .try_send(Command::RemoteFrames { upto: i64::MAX });
    }
}

fn dispatch(hub: &Hub, notification: &PgNotification) {
    let payload = notification.payload();
    match notification.channel() {
        FRAMES_CHANNEL => {
            let Some((session_id, seq)) = payload.split_once(' ') else {
                return;
            };
            let Ok(upto) = seq.parse::<i64>() else { return };
            if let Some(tx) = hub.inner.registry.get(session_id).map(|t| t.clone()) {
                // The listener never waits on one session; a full mailbox gets the news later.
                if let Err(TrySendError::Full(command)) =
                    tx.try_send(Command::RemoteFrames { upto })
                {
                    tokio::spawn(async move {
                        let _ = tx.send(command).await;
                    });
                }
            }
        }
        COMMANDS_CHANNEL => {
            let Some((to, command_id)) = payload.split_once(' ') else {
                return;
            };
            if to == hub.inner.node_id {
                let hub = hub.clone();
                let command_id = command_id.to_string();
                hub.inner.tasks.clone().spawn(execute(hub, command_id));
            }
        }
        REPLIES_CHANNEL => {
            let mut parts = payload.splitn(3, ' ');
            let (Some(to), Some(request_id), Some(json)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            if to != hub.inner.node_id {
                return;
            }
            let Some(cluster) = hub.inner.cluster.as_ref() else {
                return;
            };
            if let Some((_, waiting)) = cluster.pending.remove(request_id) {
                let result = serde_json::from_str(json).unwrap_or(RemoteResult::Err {
                    code: ErrorCode::Internal,
                    message: "unreadable reply".into(),
                });
                let _ = waiting.send(result);
            }
        }
        _ => {}
    }
}

/// Runs a command another node forwarded, on the session's local actor, and answers it.
async fn execute(hub: Hub, command_id: String) {
    let command = match hub.db().take_command(&command_id, &hub.inner.node_id).await {
        Ok(Some(command)) => command,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "forwarded command not read");
            return;
        }
    };
    let Ok(envelope) = serde_json::from_str::<Envelope>(&command.payload) else {
        tracing::warn!("unreadable forwarded command");
        return;
    };
    let result = match hub.local_handle(&command.session_id).await {
        Err(_) => RemoteResult::Moved,
        Ok(tx) => match run(tx, &command.from_node, envelope.op).await {
            Ok(value) => RemoteResult::Ok(value),
            Err(error) => RemoteResult::Err {
                code: error.code,
                message: error.message,
            },
        },
    };
    let mut json = serde_json::to_string(&result).unwrap_or_default();
    if json.len() > MAX_NOTIFY_BYTES {
        json = serde_json::to_string(&RemoteResult::Err {
            code: ErrorCode::Internal,
            message: "the answer is too large to forward".into(),
        })
        .unwrap_or_default();
    }
    let reply = format!("{} {} {json}", command.from_node, envelope.request_id);
    if let Err(error) = hub.db().notify(REPLIES_CHANNEL, &reply).await {
        tracing::warn!(%error, "reply to a forwarded command not sent");
    }
}

/// Runs a forwarded command on the session's actor here (never forwarded again).
async fn run(
    tx: tokio::sync::mpsc::Sender<Command>,
    from_node: &str,
    op: RemoteOp,
) -> Result<serde_json::Value, HubError> {
    let ask = |command: Command| {
        let tx = tx.clone();
        async move {
            tx.send(command)
                .await
                .map_err(|_| HubError::new(ErrorCode::Busy, "the session is moving; retry"))
        }
    };
    let gone = |_| HubError::new(ErrorCode::Busy, "the session is moving; retry");
    let json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|_| HubError::new(ErrorCode::Internal, "reply encoding"))
    };
    // Whoever sends a command follows the session: what it causes is announced to that node, also
    // when the actor was just reloaded here.
    let (reply, answer) = oneshot::channel();
    ask(Command::RemoteFollow {
        node: from_node.to_string(),
        reply,
    })
    .await?;
    let last_seq = answer.await.map_err(gone)?;
    match op {
        RemoteOp::Follow => json(serde_json::to_value(last_seq)),
        RemoteOp::Message {
            content,
            client_message_id,
        } => {
            let (reply, answer) = oneshot::channel();
            ask(Command::Message(Box::new(MessageRequest {
                content,
                client_message_id,
                reply,
            })))
            .await?;
            let duplicate = answer.await.map_err(gone)??;
            json(serde_json::to_value(duplicate))
        }
        RemoteOp::Cancel => {
            ask(Command::Cancel).await?;
            Ok(serde_json::Value::Null)
        }
        RemoteOp::Complete { confirm } => {
            let (reply, answer) = oneshot::channel();
            ask(Command::Complete { confirm, reply }).await?;
            json(serde_json::to_value(answer.await.map_err(gone)??))
        }
        RemoteOp::Close => {
            let (reply, answer) = oneshot::channel();
            ask(Command::Close { reply }).await?;
            json(serde_json::to_value(answer.await.map_err(gone)??))
        }
        RemoteOp::Snapshot => {
            let (reply, answer) = oneshot::channel();
            ask(Command::Snapshot { reply }).await?;
            json(serde_json::to_value(answer.await.map_err(gone)?))
        }
    }
}

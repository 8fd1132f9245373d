//! The connection hub: long-lived sessions, each owned by one actor task, reached from WebSocket
//! connections and the REST mirror alike.
//!
//! ```text
//! connection (ws) ──┐                       ┌── frame log (group-committed to storage)
//! REST mirror ──────┼─ registry ─ actor ────┼── LLM stream task (tokens back as commands)
//! generation job ───┘   (DashMap)           └── generation jobs (durable, credits)
//! ```

pub mod actor;
pub mod cluster;
pub mod connection;
pub mod frame_log;
pub mod frames;
pub mod generation;
pub mod remote;
pub mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::Responder;
use crate::conversation::{ContentType, Conversation};
use crate::llm::ChatProvider;
use crate::storage::conversations::{NewSession, SessionRow};
use crate::storage::{new_id, Db};
use actor::{Command, SessionActor};
use frame_log::FrameLog;
use frames::ErrorCode;

/// How long a session lease lasts; the actor renews it at a third of that.
pub const LEASE_MS: i64 = 30_000;

/// Limits and timings of the hub (documented in `protocol/README.md`).
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Frames queued for one connection before it is treated as a slow consumer and dropped.
    pub outbound_queue: usize,
    pub max_frame_bytes: usize,
    /// Numbered frames kept per session for resume.
    pub retained_frames: i64,
    /// An actor with no connection and nothing running is dropped from memory after this long.
    pub idle_evict: Duration,
    pub heartbeat: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    pub auth_deadline: Duration,
    /// Inbound frames allowed per connection per 10 seconds; twice as many close the connection.
    pub frames_per_10s: u32,
    /// Credits granted to a new account.
    pub free_credits: i64,
    /// What `reconnect.after_ms` tells clients on drain.
    pub reconnect_after_ms: u64,
    /// A frame the client does not take within this long ends the connection.
    pub send_timeout: Duration,
    /// Ask a real model to extract slots from each message (the offline parser is the fallback).
    pub model_slot_extraction: bool,
    /// A chat session token expires after this long without use.
    pub chat_token_ttl: Duration,
    /// Longest visitor message in a chat session, in characters.
    pub chat_max_message_chars: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            outbound_queue: 256,
            max_frame_bytes: 64 * 1024,
            retained_frames: 1000,
            idle_evict: Duration::from_secs(120),
            heartbeat: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            auth_deadline: Duration::from_secs(10),
            frames_per_10s: 20,
            free_credits: 3,
            reconnect_after_ms: 1000,
            send_timeout: Duration::from_secs(10),
            model_slot_extraction: true,
            chat_token_ttl: Duration::from_secs(3600),
            chat_max_message_chars: 2000,
        }
    }
}

/// A refusal from the hub, carried to the client as an `error` frame or a problem document.
#[derive(Debug, Clone)]
pub struct HubError {
    pub code: ErrorCode,
    pub message: String,
}

impl HubError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::SessionNotFound, "no such session")
    }

    fn gone() -> Self {
        Self::new(ErrorCode::Internal, "the session is restarting; retry")
    }
}

impl From<sqlx::Error> for HubError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "hub storage error");
        Self::new(ErrorCode::Internal, "storage error")
    }
}

/// Who is talking to a session: an account, or a widget visitor bound to one chat session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User { user_id: String, org_id: String },
    Visitor { session_id: String, org_id: String },
}

impl Owner {
    /// Whether this caller may use the session described by `kind`, `id`, its account and org.
    pub fn owns(&self, kind: &str, id: &str, user: Option<&str>, org: &str) -> bool {
        match self {
            Self::User { user_id, org_id } => user == Some(user_id.as_str()) && org_id == org,
            Self::Visitor { session_id, org_id } => {
                kind == "chat" && session_id == id && org_id == org
            }
        }
    }

    pub fn org_id(&self) -> &str {
        match self {
            Self::User { org_id, .. } | Self::Visitor { org_id, .. } => org_id,
        }
    }
}

pub(crate) struct HubInner {
    pub db: Db,
    pub settings: HubSettings,
    pub llm: Arc<dyn ChatProvider>,
    pub responder: Arc<Responder>,
    pub frame_log: FrameLog,
    registry: DashMap<String, mpsc::Sender<Command>>,
    /// Session actors; waited for on shutdown before the frame log stops.
    actors: TaskTracker,
    /// Cancelled first on shutdown: actors checkpoint and end, connections are told to reconnect.
    pub draining: CancellationToken,
    frame_log_stop: CancellationToken,
    pub tasks: TaskTracker,
    pub schema: validate::ClientSchema,
    next_connection: AtomicU64,
    /// This process's identity in session leases.
    pub node_id: String,
    /// Generation jobs running in this process, to stop them on cancel.
    pub running_jobs: DashMap<String, CancellationToken>,
    /// Cross-node requests (PostgreSQL deployments); `None` on SQLite, which is one node.
    pub cluster: Option<cluster::Cluster>,
    /// Sessions in the registry that run on another node (served here by a remote follower).
    pub remote: DashMap<String, ()>,
}

/// Cheap to clone; lives in the application state.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl Hub {
    pub fn new(
        db: Db,
        settings: HubSettings,
        llm: Arc<dyn ChatProvider>,
        responder: Arc<Responder>,
        tasks: TaskTracker,
    ) -> anyhow::Result<Self> {
        let clustered = db.backend == crate::storage::Backend::Postgres;
        let frame_log_stop = CancellationToken::new();
        let frame_log = FrameLog::spawn(db.clone(), &tasks, frame_log_stop.clone());
        let hub = Self {
            inner: Arc::new(HubInner {
                db,
                settings,
                llm,
                responder,
                frame_log,
                registry: DashMap::new(),
                actors: TaskTracker::new(),
                draining: CancellationToken::new(),
                frame_log_stop,
                tasks,
                schema: validate::ClientSchema::load()?,
                next_connection: AtomicU64::new(1),
                node_id: uuid::Uuid::new_v4().to_string(),
                running_jobs: DashMap::new(),
                cluster: clustered.then(cluster::Cluster::default),
                remote: DashMap::new(),
            }),
        };
        generation::spawn_worker(hub.clone());
        if hub.inner.cluster.is_some() {
            cluster::spawn_listener(hub.clone());
        }
        Ok(hub)
    }

    pub fn settings(&self) -> &HubSettings {
        &self.inner.settings
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn llm(&self) -> &Arc<dyn ChatProvider> {
        &self.inner.llm
    }

    pub fn next_connection_id(&self) -> u64 {
        self.inner.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub fn live_sessions(&self) -> usize {
        self.inner.registry.len()
    }

    /// Creates a guided session for an account and starts its actor.
    pub async fn start_guided(
        &self,
        user_id: &str,
        org_id: &str,
        content_type: ContentType,
        intent: Option<String>,
    ) -> Result<String, HubError> {
        let (conversation, _) = Conversation::start(content_type, intent);
        let checkpoint = serde_json::to_string(&conversation)
            .map_err(|_| HubError::new(ErrorCode::Internal, "checkpoint failed"))?;
        let id = new_id();
        self.inner
            .db
            .insert_session(NewSession {
                id: &id,
                kind: "guided",
                org_id,
                user_id: Some(user_id),
                content_type: Some(content_type.as_str()),
                state: conversation.state().as_str(),
                checkpoint: &checkpoint,
            })
            .await?;
        Ok(id)
    }

    /// The actor of a session, loading it from storage when it is not in memory, or a follower of
    /// it when it runs on another node.
    pub(crate) async fn handle(&self, session_id: &str) -> Result<mpsc::Sender<Command>, HubError> {
        self.handle_on(session_id, true).await
    }

    /// The session's actor on this node only (for commands forwarded by other nodes).
    pub(crate) async fn local_handle(
        &self,
        session_id: &str,
    ) -> Result<mpsc::Sender<Command>, HubError> {
        self.handle_on(session_id, false).await
    }

    async fn handle_on(
        &self,
        session_id: &str,
        allow_remote: bool,
    ) -> Result<mpsc::Sender<Command>, HubError> {
        let elsewhere = || HubError::new(ErrorCode::Busy, "this session runs on another server");
        if let Some(tx) = self.inner.registry.get(session_id) {
            if !tx.is_closed() {
                if !allow_remote && self.inner.remote.contains_key(session_id) {
                    return Err(elsewhere());
                }
                return Ok(tx.clone());
            }
        }
        if self.inner.draining.is_cancelled() {
            return Err(HubError::new(
                ErrorCode::Internal,
                "the server is shutting down",
            ));
        }
        let row = self
            .inner
            .db
            .session(session_id)
            .await?
            .ok_or_else(HubError::not_found)?;
        // One node at a time runs a session: frames are numbered by exactly one actor.
        let until = crate::storage::now_ms() + LEASE_MS;
        if !self
            .inner
            .db
            .acquire_session_lease(session_id, &self.inner.node_id, until)
            .await?
        {
            if allow_remote && self.inner.cluster.is_some() {
                return self.follow_remote(row).await;
            }
            return Err(HubError::new(
                ErrorCode::Busy,
                "this session is live on another server; retry in a few seconds",
            ));
        }
        let highest = self.inner.db.highest_frame(session_id).await?;
        let (tx, rx) = mpsc::channel(64);
        let entry = self.inner.registry.entry(session_id.to_string());
        let tx = match entry {
            dashmap::mapref::entry::Entry::Occupied(mut occupied) => {
                if !occupied.get().is_closed() {
                    return Ok(occupied.get().clone());
                }
                occupied.insert(tx.clone());
                tx
            }
            dashmap::mapref::entry::Entry::Vacant(vacant) => {
                vacant.insert(tx.clone());
                tx
            }
        };
        let actor = SessionActor::restore(self.clone(), row, highest.max(0), tx.clone())?;
        self.inner.actors.spawn(actor.run(rx));
        Ok(tx)
    }

    /// Serves a session another node runs through a follower here.
    async fn follow_remote(&self, row: SessionRow) -> Result<mpsc::Sender<Command>, HubError> {
        let lease = self.inner.db.session_lease(&row.id).await?;
        let Some((node, _)) = lease.filter(|(node, until)| {
            *node != self.inner.node_id && *until > crate::storage::now_ms()
        }) else {
            return Err(HubError::new(
                ErrorCode::Busy,
                "this session is moving between servers; retry",
            ));
        };
        let session_id = row.id.clone();
        let (tx, rx) = mpsc::channel(64);
        match self.inner.registry.entry(session_id.clone()) {
            dashmap::mapref::entry::Entry::Occupied(mut occupied) => {
                if !occupied.get().is_closed() {
                    return Ok(occupied.get().clone());
                }
                occupied.insert(tx.clone());
            }
            dashmap::mapref::entry::Entry::Vacant(vacant) => {
                vacant.insert(tx.clone());
            }
        }
        self.inner.remote.insert(session_id, ());
        let follower = remote::RemoteSession::new(self.clone(), row, node, tx.clone());
        self.inner.actors.spawn(follower.run(rx));
        Ok(tx)
    }

    /// Sends a command to a session, loading it if needed and retrying once if it was just evicted.
    pub(crate) async fn send(&self, session_id: &str, command: Command) -> Result<(), HubError> {
        let tx = self.handle(session_id).await?;
        match tx.send(command).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(command)) => {
                self.forget(session_id, &tx);
                let tx = self.handle(session_id).await?;
                tx.send(command).await.map_err(|_| HubError::gone())
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub(crate) async fn ask<T>(
        &self,
        session_id: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, HubError> {
        let (reply, answer) = oneshot::channel();
        self.send(session_id, make(reply)).await?;
        answer.await.map_err(|_| HubError::gone())
    }

    /// Removes a registry entry if it still points at this (ended) actor.
    pub(crate) fn forget(&self, session_id: &str, tx: &mpsc::Sender<Command>) {
        self.inner
            .registry
            .remove_if(session_id, |_, current| current.same_channel(tx));
    }

    /// Drain: tells connections to reconnect, lets every actor checkpoint and end, then flushes the
    /// frame log.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        self.inner.draining.cancel();
        self.inner.actors.close();
        if tokio::time::timeout_at(deadline, self.inner.actors.wait())
            .await
            .is_err()
        {
            tracing::warn!("session actors still running at the drain deadline");
        }
        self.inner.frame_log_stop.cancel();
    }
}

/// A temporary follower of a session's live frames (the REST mirror uses one per request).
pub struct Follower {
    pub frames: mpsc::Receiver<Arc<str>>,
    pub snapshot_seq: i64,
    hub: Hub,
    session_id: String,
    id: u64,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let hub = self.hub.clone();
        let session_id = std::mem::take(&mut self.session_id);
        let subscriber_id = self.id;
        if let Some(tx) = hub.inner.registry.get(&session_id).map(|t| t.clone()) {
            let _ = tx.try_send(Command::Detach { subscriber_id });
        }
    }
}

impl Hub {
    /// Follows a session's live frames from now on, after checking the owner.
    pub async fn follow(&self, session_id: &str, owner: &Owner) -> Result<Follower, HubError> {
        let (tx, rx) = mpsc::channel(self.inner.settings.outbound_queue.max(1024));
        let id = self.next_connection_id();
        let subscriber = actor::Subscriber {
            id,
            tx,
            kicked: CancellationToken::new(),
        };
        let attached = self
            .ask(session_id, |reply| {
                Command::Attach(Box::new(actor::AttachRequest {
                    owner: owner.clone(),
                    subscriber,
                    mode: actor::AttachMode::Live,
                    reply,
                }))
            })
            .await??;
        Ok(Follower {
            frames: rx,
            snapshot_seq: attached.last_seq,
            hub: self.clone(),
            session_id: session_id.to_string(),
            id,
        })
    }

    /// Submits a user message; true when the id had already been processed.
    pub async fn message(
        &self,
        session_id: &str,
        content: String,
        client_message_id: String,
    ) -> Result<bool, HubError> {
        self.ask(session_id, |reply| {
            Command::Message(Box::new(actor::MessageRequest {
                content,
                client_message_id,
                reply,
            }))
        })
        .await?
    }

    pub async fn complete(
        &self,
        session_id: &str,
        confirm: bool,
    ) -> Result<Option<actor::CompleteStarted>, HubError> {
        self.ask(session_id, |reply| Command::Complete { confirm, reply })
            .await?
    }

    pub async fn snapshot(&self, session_id: &str) -> Result<actor::Snapshot, HubError> {
        self.ask(session_id, |reply| Command::Snapshot { reply })
            .await
    }

    pub async fn cancel(&self, session_id: &str) -> Result<(), HubError> {
        self.send(session_id, Command::Cancel).await
    }

    /// Closes a chat session: a running answer stops and further messages are refused.
    pub async fn close(&self, session_id: &str) -> Result<i64, HubError> {
        self.ask(session_id, |reply| Command::Close { reply })
            .await?
    }
}

impl Hub {
    /// Waits until every frame emitted so far is in storage.
    pub async fn flush_frames(&self) {
        self.inner.frame_log.barrier().await;
    }
}

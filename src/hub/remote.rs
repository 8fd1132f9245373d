//! A session that runs on another node, as seen from this one: it takes the same commands as a
//! local actor, forwards them to the running node, and fans out that node's frames (read from
//! storage when announced) to the connections attached here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::actor::{
    fan_out, AttachRequest, Attached, Command, CompleteStarted, MessageRequest, Replay, Snapshot,
    Subscriber,
};
use super::cluster::{self, RemoteOp};
use super::frames::{ConnectionFrame, ErrorCode};
use super::{Hub, HubError, Owner};
use crate::storage::conversations::SessionRow;

/// How often a follower renews its interest and checks the session has not moved.
const REFRESH: Duration = Duration::from_secs(10);
/// How long to wait for frames the running node reported as stored.
const STORED_WAIT: Duration = Duration::from_secs(2);

pub struct RemoteSession {
    hub: Hub,
    row: SessionRow,
    id: Arc<str>,
    /// The node running the session.
    node: String,
    subscribers: Vec<Subscriber>,
    /// Highest `seq` fanned out to the subscribers here.
    delivered: i64,
    me: mpsc::Sender<Command>,
    /// Cancelled when the running node stopped answering or said the session left it.
    moved: CancellationToken,
}

/// Forwards `op`; when the running node does not answer, this follower ends so the next request
/// finds where the session runs now.
async fn forward(
    hub: &Hub,
    node: &str,
    session_id: &str,
    moved: &CancellationToken,
    op: RemoteOp,
) -> Result<serde_json::Value, HubError> {
    match cluster::request(hub, node, session_id, op).await {
        Ok(answer) => answer,
        Err(unreachable) => {
            moved.cancel();
            Err(unreachable)
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, HubError> {
    serde_json::from_value(value)
        .map_err(|_| HubError::new(ErrorCode::Internal, "unreadable reply from another server"))
}

impl RemoteSession {
    pub fn new(hub: Hub, row: SessionRow, node: String, me: mpsc::Sender<Command>) -> Self {
        Self {
            hub,
            id: row.id.clone().into(),
            row,
            node,
            subscribers: Vec::new(),
            delivered: 0,
            me,
            moved: CancellationToken::new(),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let idle_evict = self.hub.settings().idle_evict;
        let draining = self.hub.inner.draining.clone();
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
        loop {
            let idle = self.subscribers.is_empty();
            tokio::select! {
                command = rx.recv() => match command {
                    Some(command) => Box::pin(self.handle(command)).await,
                    None => break,
                },
                _ = refresh.tick() => {
                    if !Box::pin(self.still_running_there()).await {
                        break;
                    }
                }
                () = tokio::time::sleep(idle_evict), if idle => break,
                () = draining.cancelled() => break,
                () = self.moved.cancelled() => break,
            }
        }
        rx.close();
        self.hub.forget(&self.id, &self.me);
        self.hub.inner.remote.remove(&*self.id);
        // Connections still here reconnect and resume wherever the session now runs (protocol §7);
        // REST requests following an answer see their stream end.
        let reconnect: Arc<str> = ConnectionFrame::Reconnect {
            after_ms: self.hub.settings().reconnect_after_ms,
        }
        .encode()
        .into();
        for subscriber in &self.subscribers {
            if subscriber.tx.try_send(reconnect.clone()).is_err() {
                subscriber.kicked.cancel();
            }
        }
    }

    /// Renews the follow while anyone listens here; false once the session left that node.
    async fn still_running_there(&mut self) -> bool {
        let lease = self.hub.db().session_lease(&self.id).await;
        let running = matches!(lease, Ok(Some((node, until)))
            if node == self.node && until > crate::storage::now_ms());
        if !running {
            return false;
        }
        if self.subscribers.is_empty() {
            return true;
        }
        match self.forward(RemoteOp::Follow).await {
            Ok(value) => {
                let last: i64 = decode(value).unwrap_or(self.delivered);
                self.deliver_upto(last).await;
                true
            }
            Err(_) => false,
        }
    }

    async fn forward(&self, op: RemoteOp) -> Result<serde_json::Value, HubError> {
        forward(&self.hub, &self.node, &self.id, &self.moved, op).await
    }

    fn owned_by(&self, owner: &Owner) -> bool {
        let row = &self.row;
        owner.owns(&row.kind, &row.id, row.user_id.as_deref(), &row.org_id)
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Attach(request) => self.attach(*request).await,
            Command::Detach { subscriber_id } => {
                self.subscribers.retain(|s| s.id != subscriber_id);
            }
            Command::RemoteFrames { upto } if upto < 0 => self.moved.cancel(),
            Command::RemoteFrames { upto } => self.deliver_upto(upto).await,
            Command::Message(request) => {
                let MessageRequest {
                    content,
                    client_message_id,
                    reply,
                } = *request;
                let op = RemoteOp::Message {
                    content,
                    client_message_id,
                };
                self.answer_later(op, reply, decode::<bool>);
            }
            Command::Cancel => {
                let hub = self.hub.clone();
                let (node, id, moved) = (self.node.clone(), self.id.clone(), self.moved.clone());
                tokio::spawn(async move {
                    let _ = forward(&hub, &node, &id, &moved, RemoteOp::Cancel).await;
                });
            }
            Command::Complete { confirm, reply } => {
                let op = RemoteOp::Complete { confirm };
                self.answer_later(op, reply, decode::<Option<CompleteStarted>>);
            }
            Command::Close { reply } => {
                self.answer_later(RemoteOp::Close, reply, decode::<i64>);
            }
            Command::Snapshot { reply } => {
                let hub = self.hub.clone();
                let (node, id, moved) = (self.node.clone(), self.id.clone(), self.moved.clone());
                tokio::spawn(async move {
                    let answer = forward(&hub, &node, &id, &moved, RemoteOp::Snapshot).await;
                    if let Ok(snapshot) = answer.and_then(decode::<Snapshot>) {
                        let _ = reply.send(snapshot);
                    }
                });
            }
            Command::RemoteFollow { reply, .. } => {
                // Never chained: only the running node follows for others.
                drop(reply);
            }
            Command::Stream { .. } | Command::StreamOpened { .. } | Command::Generation(_) => {}
        }
    }

    /// Forwards `op` beside the loop (frames keep flowing meanwhile) and answers `reply`.
    fn answer_later<T: Send + 'static>(
        &self,
        op: RemoteOp,
        reply: oneshot::Sender<Result<T, HubError>>,
        read: impl FnOnce(serde_json::Value) -> Result<T, HubError> + Send + 'static,
    ) {
        let hub = self.hub.clone();
        let (node, id, moved) = (self.node.clone(), self.id.clone(), self.moved.clone());
        tokio::spawn(async move {
            let answer = forward(&hub, &node, &id, &moved, op).await.and_then(read);
            let _ = reply.send(answer);
        });
    }

    async fn attach(&mut self, request: AttachRequest) {
        let AttachRequest {
            owner,
            subscriber,
            mode,
            reply,
        } = request;
        if !self.owned_by(&owner) {
            let _ = reply.send(Err(HubError::not_found()));
            return;
        }
        let highest = match self.forward(RemoteOp::Follow).await.and_then(decode::<i64>) {
            Ok(highest) => highest,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        // Subscribers already here get everything up to now before the newcomer is added.
        self.deliver_upto(highest).await;
        let replay = match mode.replay(highest, self.hub.settings().retained_frames) {
            Ok(replay) => replay,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let mut attached = Attached {
            kind: if self.row.kind == "chat" {
                "chat"
            } else {
                "guided"
            },
            replay: Vec::new(),
            last_seq: highest,
            resumed: false,
            resume_failed: None,
        };
        match replay {
            Replay::Nothing => {}
            Replay::After(from) => {
                match self.hub.db().frames_between(&self.id, from, highest).await {
                    Ok(frames) => {
                        attached.replay = frames.into_iter().map(|(_, f)| f.into()).collect();
                        attached.resumed = true;
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error.into()));
                        return;
                    }
                }
            }
            Replay::Expired { oldest } => attached.resume_failed = Some(oldest),
        }
        self.subscribers.push(subscriber);
        let _ = reply.send(Ok(attached));
    }

    /// Fans out the stored frames after `delivered` up to `upto` (or all stored, for `i64::MAX`).
    async fn deliver_upto(&mut self, upto: i64) {
        if upto <= self.delivered {
            return;
        }
        if self.subscribers.is_empty() {
            // Nobody to tell: the next attach starts from what is stored then.
            if upto != i64::MAX {
                self.delivered = upto;
            }
            return;
        }
        let deadline = tokio::time::Instant::now() + STORED_WAIT;
        let mut frames = Vec::new();
        loop {
            match self
                .hub
                .db()
                .frames_between(&self.id, self.delivered, upto)
                .await
            {
                Ok(read) => frames = read,
                Err(error) => tracing::warn!(session_id = %self.id, %error, "frames not read"),
            }
            // Announced frames are stored before the announcement; a gap means a write in flight.
            let complete = upto == i64::MAX
                || frames.last().is_some_and(|(seq, _)| *seq >= upto)
                    && frames.len() as i64 == upto - self.delivered;
            if complete || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (seq, frame) in frames {
            if seq != self.delivered + 1 {
                tracing::warn!(session_id = %self.id, seq, "frames missing; followers resume");
                for subscriber in &self.subscribers {
                    subscriber.kicked.cancel();
                }
                self.subscribers.clear();
            }
            self.delivered = seq;
            fan_out(&mut self.subscribers, &frame.into());
        }
    }
}

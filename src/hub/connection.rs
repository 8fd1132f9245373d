//! One WebSocket connection: authentication, inbound validation, and a single `select!` loop over
//! the socket, the session's frames, the heartbeat and the drain signal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::actor::{AttachMode, AttachRequest, Attached, Command, MessageRequest, Subscriber};
use super::frames::{ClientFrame, ConnectionFrame, ErrorCode, PrincipalInfo};
use super::{Hub, HubError, Owner};

pub const PROTOCOL: &str = "rapport.v1";

/// Close codes of protocol v1.
mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const AUTH_TIMEOUT: u16 = 4408;
}

/// What authenticated the connection.
#[derive(Debug, Clone)]
pub struct Identity {
    pub owner: Owner,
    pub info: PrincipalInfo,
    /// Account id for per-account rate limits.
    pub account: Option<String>,
}

/// Resolves a credential (from the header or an `auth` frame) into an identity.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn bearer(&self, token: &str) -> Result<Identity, HubError>;
    async fn widget(&self, api_key: &str, session_token: &str) -> Result<Identity, HubError>;
    /// How long this caller must wait before its next message, if it is over its limit.
    fn throttle(&self, identity: &Identity) -> Option<Duration>;
}

/// A header credential, already checked by the upgrade handler.
pub enum Credential {
    None,
    Accepted(Identity),
    Refused(HubError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rate {
    Within,
    Over,
    Abusive,
}

struct Connection {
    hub: Hub,
    id: u64,
    identity: Option<Identity>,
    attached: Option<String>,
    live_tx: mpsc::Sender<Arc<str>>,
    kicked: CancellationToken,
    auth: Arc<dyn Authenticator>,
    window_start: Instant,
    frames_in_window: u32,
    oversized: u32,
}

pub async fn serve(
    mut socket: WebSocket,
    hub: Hub,
    credential: Credential,
    auth: Arc<dyn Authenticator>,
) {
    let settings = hub.settings().clone();
    let (live_tx, mut live_rx) = mpsc::channel::<Arc<str>>(settings.outbound_queue);
    let mut conn = Connection {
        id: hub.next_connection_id(),
        hub: hub.clone(),
        identity: None,
        attached: None,
        live_tx,
        kicked: CancellationToken::new(),
        auth,
        window_start: Instant::now(),
        frames_in_window: 0,
        oversized: 0,
    };
    match credential {
        Credential::Accepted(identity) => {
            let ok = ConnectionFrame::AuthOk {
                protocol: PROTOCOL,
                principal: identity.info.clone(),
            };
            conn.identity = Some(identity);
            if Box::pin(send(&mut socket, &ok.encode())).await.is_err() {
                return;
            }
        }
        Credential::Refused(error) => {
            let frame = ConnectionFrame::error(error.code, error.message, None);
            let _ = Box::pin(send(&mut socket, &frame.encode())).await;
            let _ = Box::pin(close_with(&mut socket, close::UNAUTHORIZED, "unauthorized")).await;
            return;
        }
        Credential::None => {}
    }

    let auth_deadline = tokio::time::sleep(settings.auth_deadline);
    tokio::pin!(auth_deadline);
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.tick().await;
    let mut last_inbound = Instant::now();
    let draining = hub.inner.draining.clone();
    let kicked = conn.kicked.clone();

    loop {
        tokio::select! {
            () = kicked.cancelled() => {
                let _ = Box::pin(close_with(&mut socket, close::POLICY, "too slow: frames were not read")).await;
                break;
            }
            () = draining.cancelled() => {
                let frame = ConnectionFrame::Reconnect { after_ms: settings.reconnect_after_ms };
                let _ = Box::pin(send(&mut socket, &frame.encode())).await;
                let _ = Box::pin(close_with(&mut socket, close::GOING_AWAY, "server restarting")).await;
                break;
            }
            Some(frame) = live_rx.recv() => {
                if Box::pin(send_queued(&mut socket, frame, &mut live_rx, settings.send_timeout)).await.is_err() {
                    break;
                }
            }
            inbound = socket.recv() => {
                last_inbound = Instant::now();
                let Some(Ok(message)) = inbound else { break };
                let keep_open = match message {
                    // Boxed: the handling future is large and only lives while a frame is handled,
                    // so an idle connection's task stays small.
                    Message::Text(text) => Box::pin(conn.on_text(&mut socket, text.as_str())).await,
                    Message::Binary(_) => {
                        conn.reply(&mut socket, ConnectionFrame::error(
                            ErrorCode::UnsupportedFrame, "binary frames are not part of the protocol", None,
                        )).await
                    }
                    Message::Close(_) => false,
                    Message::Ping(_) | Message::Pong(_) => true,
                };
                if !keep_open {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                if last_inbound.elapsed() > settings.idle_timeout {
                    let _ = Box::pin(close_with(&mut socket, close::POLICY, "idle")).await;
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            () = &mut auth_deadline, if conn.identity.is_none() => {
                let frame = ConnectionFrame::error(ErrorCode::AuthTimeout, "authenticate within the deadline", None);
                let _ = Box::pin(send(&mut socket, &frame.encode())).await;
                let _ = Box::pin(close_with(&mut socket, close::AUTH_TIMEOUT, "auth timeout")).await;
                break;
            }
        }
    }
    if let Some(session_id) = conn.attached.take() {
        let detach = Command::Detach {
            subscriber_id: conn.id,
        };
        let _ = Box::pin(conn.hub.send(&session_id, detach)).await;
    }
}

/// Writes a frame; a client that does not take it within the bound is treated as gone.
async fn send(socket: &mut WebSocket, text: &str) -> Result<(), ()> {
    send_within(socket, text, Duration::from_secs(10)).await
}

async fn send_within(socket: &mut WebSocket, text: &str, limit: Duration) -> Result<(), ()> {
    let message = Message::Text(Utf8Bytes::from(text));
    match tokio::time::timeout(limit, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Writes `first` and whatever else is already queued with one flush, so a busy stream costs one
/// socket write per batch rather than per frame.
async fn send_queued(
    socket: &mut WebSocket,
    first: Arc<str>,
    queue: &mut mpsc::Receiver<Arc<str>>,
    limit: Duration,
) -> Result<(), ()> {
    use futures::SinkExt;
    let write = async {
        socket.feed(Message::Text(Utf8Bytes::from(&*first))).await?;
        for _ in 0..63 {
            match queue.try_recv() {
                Ok(frame) => socket.feed(Message::Text(Utf8Bytes::from(&*frame))).await?,
                Err(_) => break,
            }
        }
        socket.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), ()> {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(Message::Close(Some(frame))),
    )
    .await
    .map_err(|_| ())?
    .map_err(|_| ())
}

impl Connection {
    /// Sends a connection-level frame; false when the socket is gone.
    async fn reply(&mut self, socket: &mut WebSocket, frame: ConnectionFrame) -> bool {
        send(socket, &frame.encode()).await.is_ok()
    }

    /// Counts a frame against the 10-second window: over the limit it is refused, at twice the
    /// limit the connection is closed.
    fn rate(&mut self) -> Rate {
        if self.window_start.elapsed() > Duration::from_secs(10) {
            self.window_start = Instant::now();
            self.frames_in_window = 0;
        }
        self.frames_in_window += 1;
        let limit = self.hub.settings().frames_per_10s;
        if self.frames_in_window >= limit.saturating_mul(2) {
            Rate::Abusive
        } else if self.frames_in_window > limit {
            Rate::Over
        } else {
            Rate::Within
        }
    }

    /// Handles one text frame; false closes the connection.
    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> bool {
        let rate = self.rate();
        if rate != Rate::Within {
            let wait = Duration::from_secs(10).saturating_sub(self.window_start.elapsed());
            let frame = ConnectionFrame::Error {
                code: ErrorCode::RateLimited,
                message: "too many frames; slow down".into(),
                reference: None,
                retry_after_ms: Some(wait.as_millis().max(1) as u64),
            };
            let open = self.reply(socket, frame).await;
            if rate == Rate::Abusive {
                let _ = close_with(socket, close::POLICY, "rate limited").await;
                return false;
            }
            return open;
        }
        if text.len() > self.hub.settings().max_frame_bytes {
            self.oversized += 1;
            let frame = ConnectionFrame::error(
                ErrorCode::FrameTooLarge,
                format!(
                    "frames are limited to {} bytes",
                    self.hub.settings().max_frame_bytes
                ),
                None,
            );
            let open = self.reply(socket, frame).await;
            if self.oversized >= 3 {
                let _ = close_with(socket, close::TOO_BIG, "repeatedly oversized frames").await;
                return false;
            }
            return open;
        }
        let inbound = match self.hub.inner.schema.check(text) {
            Ok(inbound) => inbound,
            Err(rejection) => {
                let frame =
                    ConnectionFrame::error(rejection.code, rejection.message, rejection.reference);
                return self.reply(socket, frame).await;
            }
        };
        let reference = inbound.reference;
        let outcome = self
            .dispatch(socket, inbound.frame, reference.clone())
            .await;
        match outcome {
            Ok(open) => open,
            Err(error) => {
                let frame = ConnectionFrame::error(error.code, error.message, reference);
                self.reply(socket, frame).await
            }
        }
    }

    async fn dispatch(
        &mut self,
        socket: &mut WebSocket,
        frame: ClientFrame,
        reference: Option<String>,
    ) -> Result<bool, HubError> {
        if let ClientFrame::Ping { nonce } = frame {
            return Ok(self.reply(socket, ConnectionFrame::Pong { nonce }).await);
        }
        let Some(identity) = self.identity.clone() else {
            let ClientFrame::Auth {
                token,
                api_key,
                session_token,
            } = frame
            else {
                return Err(HubError::new(ErrorCode::InvalidState, "authenticate first"));
            };
            let result = match (token, api_key, session_token) {
                (Some(token), None, None) => self.auth.bearer(&token).await,
                (None, Some(key), Some(session)) => self.auth.widget(&key, &session).await,
                _ => Err(HubError::new(
                    ErrorCode::Unauthorized,
                    "send either `token`, or `api_key` with `session_token`",
                )),
            };
            return match result {
                Ok(identity) => {
                    let ok = ConnectionFrame::AuthOk {
                        protocol: PROTOCOL,
                        principal: identity.info.clone(),
                    };
                    self.identity = Some(identity);
                    Ok(self.reply(socket, ok).await)
                }
                Err(error) => {
                    let code = if error.code == ErrorCode::Forbidden {
                        4403
                    } else {
                        close::UNAUTHORIZED
                    };
                    let frame = ConnectionFrame::error(error.code, error.message, reference);
                    let _ = self.reply(socket, frame).await;
                    let _ = close_with(socket, code, "authentication failed").await;
                    Ok(false)
                }
            };
        };
        match frame {
            ClientFrame::Auth { .. } => Err(HubError::new(
                ErrorCode::InvalidState,
                "already authenticated",
            )),
            ClientFrame::Ping { .. } => Ok(true),
            ClientFrame::SessionStart {
                content_type,
                intent,
            } => {
                if self.attached.is_some() {
                    return Err(HubError::new(
                        ErrorCode::AlreadyAttached,
                        "this connection already follows a session",
                    ));
                }
                let Owner::User { user_id, org_id } = &identity.owner else {
                    return Err(HubError::new(
                        ErrorCode::Forbidden,
                        "widget connections cannot start guided sessions",
                    ));
                };
                let session_id = self
                    .hub
                    .start_guided(user_id, org_id, content_type, intent)
                    .await?;
                self.attach(socket, &identity, session_id, AttachMode::Resume(0), false)
                    .await
            }
            ClientFrame::SessionResume {
                session_id,
                last_seq,
            } => {
                if self.attached.is_some() {
                    return Err(HubError::new(
                        ErrorCode::AlreadyAttached,
                        "this connection already follows a session",
                    ));
                }
                self.attach(
                    socket,
                    &identity,
                    session_id,
                    AttachMode::Resume(last_seq),
                    true,
                )
                .await
            }
            ClientFrame::Message {
                content,
                client_message_id,
            } => {
                let session_id = self.attached_session()?;
                if let Some(wait) = self.auth.throttle(&identity) {
                    return Err(HubError {
                        code: ErrorCode::RateLimited,
                        message: format!("too many messages; retry in {}s", wait.as_secs().max(1)),
                    });
                }
                let cmid = client_message_id.clone();
                let duplicate = self
                    .hub
                    .ask(&session_id, |reply| {
                        Command::Message(Box::new(MessageRequest {
                            content,
                            client_message_id,
                            reply,
                        }))
                    })
                    .await??;
                let ack = ConnectionFrame::Ack {
                    reference,
                    client_message_id: cmid,
                    duplicate,
                };
                Ok(self.reply(socket, ack).await)
            }
            ClientFrame::Cancel {} => {
                let session_id = self.attached_session()?;
                self.hub.send(&session_id, Command::Cancel).await?;
                Ok(true)
            }
            ClientFrame::Complete { confirm } => {
                let session_id = self.attached_session()?;
                self.hub
                    .ask(&session_id, |reply| Command::Complete { confirm, reply })
                    .await??;
                Ok(true)
            }
        }
    }

    fn attached_session(&self) -> Result<String, HubError> {
        self.attached
            .clone()
            .ok_or_else(|| HubError::new(ErrorCode::NotAttached, "start or resume a session first"))
    }

    async fn attach(
        &mut self,
        socket: &mut WebSocket,
        identity: &Identity,
        session_id: String,
        mode: AttachMode,
        resuming: bool,
    ) -> Result<bool, HubError> {
        let subscriber = Subscriber {
            id: self.id,
            tx: self.live_tx.clone(),
            kicked: self.kicked.clone(),
        };
        let (reply, answer) = oneshot::channel();
        self.hub
            .send(
                &session_id,
                Command::Attach(Box::new(AttachRequest {
                    owner: identity.owner.clone(),
                    subscriber,
                    mode,
                    reply,
                })),
            )
            .await?;
        let attached: Attached = answer
            .await
            .map_err(|_| HubError::new(ErrorCode::Internal, "the session ended"))??;
        self.attached = Some(session_id.clone());
        let head = ConnectionFrame::SessionAttached {
            session_id: session_id.clone(),
            kind: attached.kind,
            last_seq: if resuming { attached.last_seq } else { 0 },
            resumed: attached.resumed && resuming,
        };
        if !self.reply(socket, head).await {
            return Ok(false);
        }
        for frame in &attached.replay {
            if send(socket, frame).await.is_err() {
                return Ok(false);
            }
        }
        if let Some(oldest_seq) = attached.resume_failed {
            let frame = ConnectionFrame::ResumeFailed {
                session_id,
                reason: "window_expired",
                oldest_seq,
            };
            return Ok(self.reply(socket, frame).await);
        }
        Ok(true)
    }
}

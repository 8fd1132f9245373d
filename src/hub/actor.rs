//! One session, owned by one task. Connections and the REST mirror talk to it through bounded
//! channels; it numbers and logs every frame, fans them out, drives the state machine, streams the
//! model's replies and checkpoints every turn.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod chat;

use super::frames::{ConnectionFrame, ErrorCode, SessionFrame};
use super::{Hub, HubError, Owner};
use crate::conversation::{Conversation, Effect, Event, State};
use crate::llm::{ChatMessage, ChatRequest, LlmError, Purpose, StreamEvent, TokenStream};
use crate::storage::conversations::{FrameRecord, SessionRow};

/// A connection (or REST request) receiving this session's frames.
pub struct Subscriber {
    pub id: u64,
    pub tx: mpsc::Sender<Arc<str>>,
    /// Cancelled when the subscriber could not keep up and was dropped.
    pub kicked: CancellationToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Replay every frame after this number, then live frames.
    Resume(i64),
    /// Live frames only (REST requests following one answer).
    Live,
}

/// Which stored frames an attach replays.
pub(super) enum Replay {
    Nothing,
    /// Frames after this `seq`.
    After(i64),
    /// The asked frames are gone: the oldest still kept.
    Expired {
        oldest: i64,
    },
}

impl AttachMode {
    /// What to replay of a session whose highest frame is `highest`, keeping `retained` frames.
    pub(super) fn replay(self, highest: i64, retained: i64) -> Result<Replay, HubError> {
        let oldest = (highest - retained + 1).max(1);
        match self {
            Self::Live => Ok(Replay::Nothing),
            Self::Resume(after) if after > highest => Err(HubError::new(
                ErrorCode::InvalidState,
                format!("last_seq {after} is ahead of this session ({highest})"),
            )),
            Self::Resume(after) if after == 0 || after >= oldest - 1 => {
                Ok(Replay::After(after.max(oldest - 1)))
            }
            Self::Resume(_) => Ok(Replay::Expired { oldest }),
        }
    }
}

/// Hands a frame to every subscriber. One whose queue is full is dropped (it resumes from the
/// log), so a slow reader never grows the server's memory.
pub(super) fn fan_out(subscribers: &mut Vec<Subscriber>, frame: &Arc<str>) {
    subscribers.retain(|s| match s.tx.try_send(frame.clone()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            s.kicked.cancel();
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    });
}

pub struct Attached {
    pub kind: &'static str,
    pub replay: Vec<Arc<str>>,
    pub last_seq: i64,
    pub resumed: bool,
    /// Set when the requested frames are older than the retained window: the oldest still kept.
    pub resume_failed: Option<i64>,
}

/// Serialisable: other nodes ask for it (`hub/cluster.rs`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub state: State,
    pub context: serde_json::Value,
    pub last_seq: i64,
    pub busy: bool,
    pub content_type: Option<String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CompleteStarted {
    pub job_id: String,
    pub estimated_time_s: u32,
}

pub struct AttachRequest {
    pub owner: Owner,
    pub subscriber: Subscriber,
    pub mode: AttachMode,
    pub reply: oneshot::Sender<Result<Attached, HubError>>,
}

pub struct MessageRequest {
    pub content: String,
    pub client_message_id: String,
    /// Answered with whether the id was a duplicate.
    pub reply: oneshot::Sender<Result<bool, HubError>>,
}

/// What a session actor is asked to do. Large payloads are boxed: every session's mailbox reserves
/// slots of this enum's size, so keeping it small keeps idle sessions small.
pub enum Command {
    Attach(Box<AttachRequest>),
    Detach {
        subscriber_id: u64,
    },
    Message(Box<MessageRequest>),
    Cancel,
    Complete {
        confirm: bool,
        reply: oneshot::Sender<Result<Option<CompleteStarted>, HubError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    Stream {
        turn: u64,
        event: TurnEvent,
    },
    /// The model's answer for `turn` is ready to be read (with its sources, in chat sessions).
    StreamOpened {
        turn: u64,
        stream: TokenStream,
        grounding: Option<Box<crate::chat::Grounding>>,
    },
    /// Close a chat session; answered with when it was closed.
    Close {
        reply: oneshot::Sender<Result<i64, HubError>>,
    },
    /// Another node follows this session: announce frames to it for a while; answered with the
    /// last `seq` once everything up to it is stored.
    RemoteFollow {
        node: String,
        reply: oneshot::Sender<i64>,
    },
    /// Frames up to `upto` are stored (for sessions followed from another node).
    RemoteFrames {
        upto: i64,
    },
    Generation(Box<(String, GenerationEvent)>),
}

pub enum TurnEvent {
    Delta(String),
    Finished,
    Failed(Box<LlmError>),
}

#[derive(Debug, Clone)]
pub enum GenerationEvent {
    Progress {
        stage: &'static str,
        percent: u8,
    },
    Succeeded {
        content_id: String,
        credits_remaining: i64,
    },
    Failed {
        code: String,
        message: String,
    },
}

/// The next item of the open answer stream; pending forever when there is none.
async fn next_item(live: &mut Option<(u64, TokenStream)>) -> Option<Result<StreamEvent, LlmError>> {
    match live {
        Some((_, stream)) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// The answer being streamed.
struct Turn {
    number: u64,
    message_id: Arc<str>,
    text: String,
    cancel: CancellationToken,
    /// Chat answers: the sources, known once the answer is opened.
    grounding: Option<crate::chat::Grounding>,
    /// Chat answers: the visitor message answered.
    answers: Option<Arc<str>>,
}

pub struct SessionActor {
    hub: Hub,
    id: Arc<str>,
    kind: &'static str,
    org_id: String,
    user_id: Option<String>,
    conversation: Option<Conversation>,
    last_seq: i64,
    subscribers: Vec<Subscriber>,
    turn: Option<Turn>,
    turns: u64,
    /// Whether the session has spoken yet (its opening frames are sent on first attach).
    opened: bool,
    /// A closed chat session takes no more messages.
    closed: bool,
    /// Until when (ms) frames are announced to other nodes following the session.
    announce_until: i64,
    me: mpsc::Sender<Command>,
}

impl SessionActor {
    pub fn restore(
        hub: Hub,
        row: SessionRow,
        highest_frame: i64,
        me: mpsc::Sender<Command>,
    ) -> Result<Self, HubError> {
        let kind = if row.kind == "chat" { "chat" } else { "guided" };
        let conversation = if kind == "guided" {
            Some(
                serde_json::from_str::<Conversation>(&row.checkpoint).map_err(|error| {
                    tracing::error!(session_id = %row.id, %error, "unreadable checkpoint");
                    HubError::new(ErrorCode::Internal, "the session cannot be restored")
                })?,
            )
        } else {
            None
        };
        let last_seq = row.last_seq.max(highest_frame);
        Ok(Self {
            hub,
            id: row.id.into(),
            kind,
            org_id: row.org_id,
            user_id: row.user_id,
            conversation,
            last_seq,
            subscribers: Vec::new(),
            turn: None,
            turns: 0,
            opened: last_seq > 0,
            closed: row.closed_at.is_some(),
            announce_until: 0,
            me,
        })
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Rare, storage-heavy steps are boxed so the resident task stays small while idle.
        Box::pin(self.reconcile_generation()).await;
        let idle_evict = self.hub.settings().idle_evict;
        let draining = self.hub.inner.draining.clone();
        let mut live: Option<(u64, TokenStream)> = None;
        let renew_every = std::time::Duration::from_millis((super::LEASE_MS / 3) as u64);
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        loop {
            let idle = self.subscribers.is_empty()
                && self.turn.is_none()
                && !self.generating()
                && !self.followed_remotely();
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::StreamOpened { turn, stream, grounding }) => {
                        if let Some(current) = self.turn.as_mut().filter(|t| t.number == turn) {
                            current.grounding = grounding.map(|g| *g);
                            live = Some((turn, stream));
                        }
                    }
                    // Boxed for the same reason as connections: idle actors stay small.
                    Some(command) => Box::pin(self.handle(command)).await,
                    None => break,
                },
                item = next_item(&mut live), if live.is_some() => {
                    let turn = live.as_ref().map_or(0, |(turn, _)| *turn);
                    let event = match item {
                        Some(Ok(StreamEvent::Delta(delta))) => Some(TurnEvent::Delta(delta)),
                        Some(Ok(StreamEvent::Usage(_))) => None,
                        Some(Ok(StreamEvent::Done { .. })) | None => {
                            live = None;
                            Some(TurnEvent::Finished)
                        }
                        Some(Err(error)) => {
                            live = None;
                            Some(TurnEvent::Failed(Box::new(error)))
                        }
                    };
                    if let Some(event) = event {
                        Box::pin(self.stream_event(turn, event)).await;
                    }
                    if self.turn.is_none() {
                        // The turn ended (cancelled or finished): drop the stream and its upstream.
                        live = None;
                    }
                },
                () = tokio::time::sleep(idle_evict), if idle => break,
                _ = renew.tick() => {
                    let until = crate::storage::now_ms() + super::LEASE_MS;
                    let node = self.hub.inner.node_id.clone();
                    if let Ok(false) = self.hub.db().acquire_session_lease(&self.id, &node, until).await {
                        tracing::warn!(session_id = %self.id, "session lease lost to another node; stopping here");
                        for subscriber in &self.subscribers {
                            subscriber.kicked.cancel();
                        }
                        break;
                    }
                }
                () = draining.cancelled() => {
                    if let Some(turn) = &self.turn {
                        turn.cancel.cancel();
                    }
                    break;
                }
            }
        }
        // Stop taking commands before leaving the registry, so none is lost in between.
        rx.close();
        self.hub.forget(&self.id, &self.me);
        Box::pin(self.checkpoint()).await;
        // Frames must be stored before another node may number new ones.
        self.hub.flush_frames().await;
        let node = self.hub.inner.node_id.clone();
        let _ = self.hub.db().release_session_lease(&self.id, &node).await;
        if self.followed_remotely() {
            // Followers on other nodes let their clients resume wherever the session runs next.
            super::cluster::announce_moved(&self.hub, &self.id).await;
        }
    }

    /// Whether another node follows this session (its frames are announced).
    fn followed_remotely(&self) -> bool {
        self.announce_until > 0 && self.announce_until > crate::storage::now_ms()
    }

    fn generating(&self) -> bool {
        self.conversation
            .as_ref()
            .is_some_and(|c| c.state() == State::Generating)
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Attach(request) => {
                let AttachRequest {
                    owner,
                    subscriber,
                    mode,
                    reply,
                } = *request;
                self.attach(owner, subscriber, mode, reply).await
            }
            Command::Detach { subscriber_id } => {
                self.subscribers.retain(|s| s.id != subscriber_id);
            }
            Command::Message(request) => {
                let MessageRequest {
                    content,
                    client_message_id,
                    reply,
                } = *request;
                let result = self.message(content, client_message_id, reply).await;
                if let Err((reply, error)) = result {
                    let _ = reply.send(Err(error));
                }
            }
            Command::Cancel => self.cancel().await,
            Command::Complete { confirm, reply } => {
                let result = self.complete(confirm).await;
                let _ = reply.send(result);
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::Stream { turn, event } => self.stream_event(turn, event).await,
            // Handled by the run loop, which owns the open stream.
            Command::StreamOpened { .. } => {}
            Command::Generation(boxed) => {
                let (job_id, event) = *boxed;
                self.generation_event(job_id, event).await
            }
            Command::Close { reply } => {
                let result = self.close().await;
                let _ = reply.send(result);
            }
            Command::RemoteFollow { node, reply } => {
                tracing::debug!(session_id = %self.id, %node, "followed from another node");
                // Followers renew every 10 s; a follower that stopped is forgotten soon after.
                self.announce_until = crate::storage::now_ms() + 30_000;
                if !self.opened {
                    self.opened = true;
                    self.open().await;
                }
                self.hub.flush_frames().await;
                let _ = reply.send(self.last_seq);
            }
            Command::RemoteFrames { .. } => {}
        }
    }

    fn snapshot(&self) -> Snapshot {
        let (state, context, content_type) = match &self.conversation {
            Some(c) => (
                c.state(),
                serde_json::to_value(c.slots()).unwrap_or_default(),
                Some(c.content_type().as_str().to_string()),
            ),
            None => (State::Greeting, serde_json::json!({}), None),
        };
        Snapshot {
            state,
            context,
            last_seq: self.last_seq,
            busy: self.turn.is_some(),
            content_type,
        }
    }

    fn owned_by(&self, owner: &Owner) -> bool {
        owner.owns(self.kind, &self.id, self.user_id.as_deref(), &self.org_id)
    }

    async fn attach(
        &mut self,
        owner: Owner,
        subscriber: Subscriber,
        mode: AttachMode,
        reply: oneshot::Sender<Result<Attached, HubError>>,
    ) {
        if !self.owned_by(&owner) {
            let _ = reply.send(Err(HubError::not_found()));
            return;
        }
        let highest = self.last_seq;
        let replay = match mode.replay(highest, self.hub.settings().retained_frames) {
            Ok(replay) => replay,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let mut attached = Attached {
            kind: self.kind,
            replay: Vec::new(),
            last_seq: highest,
            resumed: false,
            resume_failed: None,
        };
        match replay {
            Replay::Nothing => {}
            Replay::After(from) => {
                // Everything emitted so far must be in storage before it is read back.
                self.hub.inner.frame_log.barrier().await;
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
        let resume_failed = attached.resume_failed.is_some();
        self.subscribers.push(subscriber);
        let _ = reply.send(Ok(attached));
        if resume_failed {
            self.emit_state().await;
        }
        if !self.opened {
            self.opened = true;
            self.open().await;
        }
    }

    /// The first words of a new session: its state and the greeting with the first question.
    async fn open(&mut self) {
        let Some(conversation) = &self.conversation else {
            self.open_chat().await;
            return;
        };
        let content_type = conversation.content_type();
        let question = conversation
            .current_question()
            .map(|q| q.text())
            .unwrap_or_default();
        let text = format!(
            "{} {}",
            crate::conversation::greeting(content_type),
            question
        )
        .trim()
        .to_string();
        self.emit_state().await;
        self.speak(text, None).await;
    }

    async fn message(
        &mut self,
        content: String,
        client_message_id: String,
        reply: oneshot::Sender<Result<bool, HubError>>,
    ) -> Result<(), (oneshot::Sender<Result<bool, HubError>>, HubError)> {
        let db = self.hub.db().clone();
        match db.client_message_seen(&self.id, &client_message_id).await {
            Ok(true) => {
                let _ = reply.send(Ok(true));
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => return Err((reply, e.into())),
        }
        if self.turn.is_some() {
            return Err((
                reply,
                HubError::new(
                    ErrorCode::Busy,
                    "an answer is still streaming; wait or cancel",
                ),
            ));
        }
        if self.kind == "chat" {
            if let Err(error) = self.accept_chat_message(&content) {
                return Err((reply, error));
            }
        }
        if let Some(conversation) = &self.conversation {
            if conversation.is_terminal() || conversation.state() == State::Generating {
                return Err((
                    reply,
                    HubError::new(
                        ErrorCode::InvalidState,
                        format!("the session is {}", conversation.state().as_str()),
                    ),
                ));
            }
        }
        match db.record_client_message(&self.id, &client_message_id).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = reply.send(Ok(true));
                return Ok(());
            }
            Err(e) => return Err((reply, e.into())),
        }
        let _ = reply.send(Ok(false));

        let message_id: Arc<str> = crate::storage::new_id().into();
        if self.kind == "chat" {
            self.record_chat_question(&message_id, &content).await;
        }
        self.emit(SessionFrame::MessageDone {
            message_id: message_id.clone(),
            role: "user",
            content: content.clone(),
            cancelled: false,
            client_message_id: Some(client_message_id.clone()),
            citations: None,
        })
        .await;
        if self.kind == "chat" {
            self.answer_chat(content, message_id, client_message_id)
                .await;
            return Ok(());
        }
        let event = self.interpret(&content).await;
        if matches!(event, Some(Event::Confirm)) {
            // Saying yes at the summary is the same as `complete {confirm: true}`.
            let reply_text = match self.start_generation().await {
                Ok(_) => String::new(),
                Err(error) => error.message,
            };
            self.speak(reply_text, Some(client_message_id)).await;
            self.checkpoint().await;
            return Ok(());
        }
        let (reply_text, changed) = self.apply_event(event);
        if changed {
            self.emit_state().await;
        }
        self.speak(reply_text, Some(client_message_id)).await;
        self.checkpoint().await;
        Ok(())
    }

    /// Turns free text into an event: through the model's structured output when a real model is
    /// configured and slots are being gathered, else (or when that fails) the deterministic parser.
    async fn interpret(&self, content: &str) -> Option<Event> {
        let conversation = self.conversation.as_ref()?;
        if self.hub.settings().model_slot_extraction
            && !self.hub.llm().is_offline()
            && conversation.state().is_gathering()
        {
            if let Some(update) = self.extract_with_model(content).await {
                if !update.is_empty() {
                    return Some(Event::Update(update));
                }
            }
        }
        conversation.event_for_text(content)
    }

    async fn extract_with_model(&self, content: &str) -> Option<crate::conversation::SlotUpdate> {
        let schema = crate::conversation::extraction_schema();
        let mut request = ChatRequest::new(
            vec![
                ChatMessage::system(format!(
                    "Extract what the user said about their practice. Answer with one JSON object only, \
                     matching this JSON Schema; use null for anything not mentioned:\n{schema}"
                )),
                ChatMessage::user(content.to_string()),
            ],
            Purpose::Extraction {
                fields: ["intent", "time_preference", "duration_minutes", "depth", "tone", "voice"]
                    .map(String::from)
                    .to_vec(),
            },
        );
        request.response_format_json = true;
        request.temperature = Some(0.0);
        let cancel = CancellationToken::new();
        let stream = self.hub.llm().stream(request, cancel.clone()).await.ok()?;
        let completion = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            crate::llm::collect_completion(stream),
        )
        .await;
        cancel.cancel();
        let text = completion.ok()?.ok()?.text;
        let value: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
        match crate::conversation::slot_update_from_json(&value) {
            Ok(update) => Some(update),
            Err(error) => {
                tracing::debug!(%error, "model extraction did not validate; using the parser");
                None
            }
        }
    }

    /// Applies an event: what to say next, and whether state or slots changed.
    fn apply_event(&mut self, event: Option<Event>) -> (String, bool) {
        let Some(conversation) = self.conversation.as_mut() else {
            return (String::new(), false);
        };
        let Some(event) = event else {
            let again = conversation
                .current_question()
                .map(|q| q.text())
                .unwrap_or_default();
            return (again, false);
        };
        let effects = conversation.handle(event).unwrap_or_default();
        let changed = effects
            .iter()
            .any(|e| matches!(e, Effect::StateChanged { .. } | Effect::SlotsUpdated { .. }));
        (self.say_effects(&effects), changed)
    }

    fn say_effects(&self, effects: &[Effect]) -> String {
        let mut parts = Vec::new();
        for effect in effects {
            match effect {
                Effect::Unrecognised => parts.push("Sorry, I did not quite catch that.".to_string()),
                Effect::Ask(question) => parts.push(question.text()),
                Effect::GenerationFailed { retries_left, .. } => parts.push(format!(
                    "Creating it did not work this time; no credit was used. Confirm to try again ({retries_left} tries left)."
                )),
                _ => {}
            }
        }
        parts.join(" ")
    }

    /// Streams an assistant message: the engine decided the words, the provider phrases and streams them.
    async fn speak(&mut self, text: String, in_reply_to: Option<String>) {
        if text.is_empty() {
            return;
        }
        let cancel = self.begin_turn(in_reply_to, None).await;
        let request = ChatRequest::new(
            vec![
                ChatMessage::system(
                    "You are a warm, concise guide helping the user shape a personal practice. \
                     Ask exactly the question given, in one or two sentences, and nothing else.",
                ),
                ChatMessage::user(text.clone()),
            ],
            Purpose::Question { text },
        );
        let llm = self.hub.llm().clone();
        let me = self.me.clone();
        let turn = self.turns;
        // Opening the stream (connect, retries, first headers) runs beside the actor; the opened
        // stream is then polled by the actor itself, so each token costs no extra task hop.
        self.hub.inner.tasks.spawn(async move {
            let command = match llm.stream(request, cancel).await {
                Ok(stream) => Command::StreamOpened {
                    turn,
                    stream,
                    grounding: None,
                },
                Err(error) => Command::Stream {
                    turn,
                    event: TurnEvent::Failed(Box::new(error)),
                },
            };
            let _ = me.send(command).await;
        });
    }

    /// Opens the next assistant answer (`message.started`); returns what cancels it.
    async fn begin_turn(
        &mut self,
        in_reply_to: Option<String>,
        answers: Option<Arc<str>>,
    ) -> CancellationToken {
        self.turns += 1;
        let message_id: Arc<str> = crate::storage::new_id().into();
        let cancel = CancellationToken::new();
        self.turn = Some(Turn {
            number: self.turns,
            message_id: message_id.clone(),
            text: String::new(),
            cancel: cancel.clone(),
            grounding: None,
            answers,
        });
        self.emit(SessionFrame::MessageStarted {
            message_id,
            role: "assistant",
            in_reply_to,
        })
        .await;
        cancel
    }

    async fn stream_event(&mut self, number: u64, event: TurnEvent) {
        let Some(turn) = self.turn.as_mut().filter(|t| t.number == number) else {
            return;
        };
        match event {
            TurnEvent::Delta(delta) => {
                turn.text.push_str(&delta);
                let message_id = turn.message_id.clone();
                self.emit(SessionFrame::Token { message_id, delta }).await;
            }
            TurnEvent::Finished => {
                if let Some(grounding) = turn.grounding.as_mut() {
                    *grounding = grounding.settle(&turn.text);
                }
                self.finish_turn(false, None).await
            }
            TurnEvent::Failed(error) => match *error {
                LlmError::Cancelled => self.finish_turn(true, None).await,
                error => self.finish_turn(true, Some(error)).await,
            },
        }
    }

    async fn finish_turn(&mut self, cancelled: bool, error: Option<LlmError>) {
        let Some(turn) = self.turn.take() else {
            return;
        };
        // Stored before it is announced: whoever sees `message.done` finds it in the transcript.
        if self.kind == "chat" {
            self.record_chat_answer(&turn).await;
        }
        let citations = turn.grounding.as_ref().map(|g| g.citations.clone());
        self.emit(SessionFrame::MessageDone {
            message_id: turn.message_id.clone(),
            role: "assistant",
            content: turn.text.clone(),
            cancelled,
            client_message_id: None,
            citations,
        })
        .await;
        if let Some(error) = error {
            let code = if error.code() == "upstream_timeout" {
                ErrorCode::UpstreamTimeout
            } else {
                ErrorCode::UpstreamError
            };
            self.tell_all(ConnectionFrame::error(code, error.to_string(), None));
        }
        self.checkpoint().await;
    }

    async fn cancel(&mut self) {
        if let Some(turn) = &self.turn {
            turn.cancel.cancel();
            return;
        }
        if self.generating() {
            let job_id = self
                .conversation
                .as_ref()
                .and_then(|c| c.generation().job_id.clone());
            if let Some(conversation) = self.conversation.as_mut() {
                let _ = conversation.handle(Event::Cancel);
            }
            if let Some(job_id) = job_id {
                let _ = self.hub.db().cancel_job(&job_id).await;
                super::generation::cancel(&self.hub, &job_id);
            }
            self.emit_state().await;
            self.checkpoint().await;
        }
    }

    async fn complete(&mut self, confirm: bool) -> Result<Option<CompleteStarted>, HubError> {
        if self.turn.is_some() {
            return Err(HubError::new(
                ErrorCode::Busy,
                "an answer is still streaming",
            ));
        }
        let state = self
            .conversation
            .as_ref()
            .map(Conversation::state)
            .ok_or_else(|| {
                HubError::new(ErrorCode::InvalidState, "chat sessions do not complete")
            })?;
        if state != State::Confirmation {
            return Err(HubError::new(
                ErrorCode::InvalidState,
                format!(
                    "complete is accepted in Confirmation, not {}",
                    state.as_str()
                ),
            ));
        }
        if !confirm {
            let effects = self
                .conversation
                .as_mut()
                .and_then(|c| c.handle(Event::Revise).ok())
                .unwrap_or_default();
            let text = self.say_effects(&effects);
            self.emit_state().await;
            self.speak(text, None).await;
            self.checkpoint().await;
            return Ok(None);
        }
        self.start_generation().await.map(Some)
    }

    /// Confirms the summary: checks credits, queues the durable job and reports progress.
    async fn start_generation(&mut self) -> Result<CompleteStarted, HubError> {
        let user_id = self
            .user_id
            .clone()
            .ok_or_else(|| HubError::new(ErrorCode::Forbidden, "only accounts can generate"))?;
        let balance = self.hub.db().credit_balance(&user_id).await?;
        if balance < 1 {
            return Err(HubError::new(
                ErrorCode::InsufficientCredits,
                format!("creating this needs 1 credit; the balance is {balance}"),
            ));
        }
        let conversation = self
            .conversation
            .as_mut()
            .ok_or_else(|| HubError::new(ErrorCode::InvalidState, "no conversation"))?;
        let effects = conversation
            .handle(Event::Confirm)
            .map_err(|e| HubError::new(ErrorCode::InvalidState, e.to_string()))?;
        let Some(spec) = effects.iter().find_map(|e| match e {
            Effect::StartGeneration(spec) => Some(spec.clone()),
            _ => None,
        }) else {
            return Err(HubError::new(ErrorCode::Internal, "nothing to generate"));
        };
        let job_id = format!("{}:{}", self.id, spec.attempt);
        let spec_json = serde_json::to_string(&spec)
            .map_err(|_| HubError::new(ErrorCode::Internal, "spec encoding"))?;
        self.hub
            .db()
            .enqueue_job(&job_id, &self.id, &user_id, &self.org_id, &spec_json)
            .await?;
        if let Some(conversation) = self.conversation.as_mut() {
            let _ = conversation.handle(Event::GenerationStarted {
                job_id: job_id.clone(),
            });
        }
        let estimated_time_s = super::generation::estimated_seconds(&spec);
        self.emit_state().await;
        self.emit(SessionFrame::GenerationProgress {
            job_id: job_id.clone(),
            stage: "queued",
            percent: 0,
            estimated_time_s: Some(estimated_time_s),
        })
        .await;
        self.checkpoint().await;
        super::generation::start(&self.hub, job_id.clone());
        Ok(CompleteStarted {
            job_id,
            estimated_time_s,
        })
    }

    async fn generation_event(&mut self, job_id: String, event: GenerationEvent) {
        let current = self
            .conversation
            .as_ref()
            .filter(|c| c.state() == State::Generating)
            .and_then(|c| c.generation().job_id.clone());
        if current.as_deref() != Some(job_id.as_str()) {
            return;
        }
        match event {
            GenerationEvent::Progress { stage, percent } => {
                self.emit(SessionFrame::GenerationProgress {
                    job_id,
                    stage,
                    percent,
                    estimated_time_s: None,
                })
                .await;
            }
            GenerationEvent::Succeeded {
                content_id,
                credits_remaining,
            } => {
                self.emit(SessionFrame::GenerationCompleted {
                    job_id,
                    content_id: content_id.clone(),
                    credits_remaining,
                })
                .await;
                if let Some(conversation) = self.conversation.as_mut() {
                    let _ = conversation.handle(Event::GenerationSucceeded { content_id });
                }
                self.emit_state().await;
                self.checkpoint().await;
            }
            GenerationEvent::Failed { code, message } => {
                self.emit(SessionFrame::GenerationFailed {
                    job_id,
                    code,
                    message: message.clone(),
                })
                .await;
                let effects = self
                    .conversation
                    .as_mut()
                    .and_then(|c| c.handle(Event::GenerationFailed { reason: message }).ok())
                    .unwrap_or_default();
                self.emit_state().await;
                let text = self.say_effects(&effects);
                self.speak(text, None).await;
                self.checkpoint().await;
            }
        }
    }

    /// After a restart: a job that finished while the session was not in memory is applied now.
    async fn reconcile_generation(&mut self) {
        let Some(job_id) = self
            .conversation
            .as_ref()
            .filter(|c| c.state() == State::Generating)
            .and_then(|c| c.generation().job_id.clone())
        else {
            return;
        };
        let Ok(Some(job)) = self.hub.db().job(&job_id).await else {
            return;
        };
        let event = match job.status.as_str() {
            "succeeded" => {
                let user_id = self.user_id.clone().unwrap_or_default();
                let credits_remaining = self.hub.db().credit_balance(&user_id).await.unwrap_or(0);
                GenerationEvent::Succeeded {
                    content_id: job.content_id.unwrap_or_default(),
                    credits_remaining,
                }
            }
            "failed" => GenerationEvent::Failed {
                code: "generation_failed".into(),
                message: job.error.unwrap_or_else(|| "generation failed".into()),
            },
            _ => {
                super::generation::start(&self.hub, job_id);
                return;
            }
        };
        self.generation_event(job_id, event).await;
    }

    async fn emit_state(&mut self) {
        let Some(conversation) = &self.conversation else {
            return;
        };
        let frame = SessionFrame::State {
            state: conversation.state().as_str(),
            context: serde_json::to_value(conversation.slots()).unwrap_or_default(),
        };
        self.emit(frame).await;
    }

    /// Numbers a frame, logs it for resume and fans it out.
    async fn emit(&mut self, frame: SessionFrame) {
        self.last_seq += 1;
        let encoded = frame.encode(self.last_seq, &self.id);
        self.hub
            .inner
            .frame_log
            .append(FrameRecord {
                session_id: self.id.clone(),
                seq: self.last_seq,
                frame: encoded.clone(),
                announce: self.followed_remotely(),
            })
            .await;
        fan_out(&mut self.subscribers, &encoded);
    }

    /// Unnumbered frames to every attached connection (e.g. an upstream error).
    fn tell_all(&mut self, frame: ConnectionFrame) {
        let encoded: Arc<str> = frame.encode().into();
        self.subscribers
            .retain(|s| s.tx.try_send(encoded.clone()).is_ok());
    }

    async fn checkpoint(&mut self) {
        let Some(conversation) = &self.conversation else {
            let _ = self
                .hub
                .db()
                .checkpoint_session(
                    &self.id,
                    if self.closed { "Closed" } else { "Open" },
                    "{}",
                    self.last_seq,
                )
                .await;
            return;
        };
        let Ok(json) = serde_json::to_string(conversation) else {
            return;
        };
        if let Err(error) = self
            .hub
            .db()
            .checkpoint_session(
                &self.id,
                conversation.state().as_str(),
                &json,
                self.last_seq,
            )
            .await
        {
            tracing::error!(session_id = %self.id, %error, "checkpoint failed");
        }
    }
}

//! What a chat-widget session does differently: it opens with the organisation's greeting, answers
//! from the knowledge base with citations, keeps its transcript, and can be closed.

use std::sync::Arc;

use super::{Command, SessionActor, Turn, TurnEvent};
use crate::hub::frames::{ErrorCode, SessionFrame};
use crate::hub::HubError;
use crate::storage::chat::NewChatMessage;

/// Transcript messages loaded to give an answer its history: the question itself is among them.
const HISTORY_MESSAGES: u32 = crate::chat::answer::HISTORY_MESSAGES as u32 + 1;

impl SessionActor {
    /// The greeting, stored when the session was created, as the session's first frame.
    pub(super) async fn open_chat(&mut self) {
        let greeting = match self.hub.db().chat_greeting(&self.id).await {
            Ok(Some(greeting)) => greeting,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(session_id = %self.id, %error, "greeting not loaded");
                return;
            }
        };
        self.emit(SessionFrame::MessageDone {
            message_id: greeting.id.into(),
            role: "assistant",
            content: greeting.content,
            cancelled: false,
            client_message_id: None,
            citations: None,
        })
        .await;
    }

    /// Refuses messages a chat session cannot take.
    pub(super) fn accept_chat_message(&self, content: &str) -> Result<(), HubError> {
        if self.closed {
            return Err(HubError::new(
                ErrorCode::SessionClosed,
                "this chat session is closed; start a new one",
            ));
        }
        let limit = self.hub.settings().chat_max_message_chars;
        if content.chars().count() > limit {
            return Err(HubError::new(
                ErrorCode::SchemaViolation,
                format!("content: chat messages are limited to {limit} characters"),
            ));
        }
        Ok(())
    }

    /// Keeps the visitor's message in the transcript (before it is announced).
    pub(super) async fn record_chat_question(&self, question_id: &str, question: &str) {
        let stored = self
            .hub
            .db()
            .insert_chat_message(NewChatMessage {
                id: question_id,
                session_id: &self.id,
                org_id: &self.org_id,
                role: "user",
                content: question,
                citations: "[]",
                grounded: None,
                in_reply_to: None,
            })
            .await;
        if let Err(error) = stored {
            tracing::error!(session_id = %self.id, %error, "visitor message not stored");
        }
    }

    /// Starts the answer: retrieval and the model call run beside the actor, which streams the
    /// opened answer like any other.
    pub(super) async fn answer_chat(
        &mut self,
        question: String,
        question_id: Arc<str>,
        client_message_id: String,
    ) {
        let cancel = self
            .begin_turn(Some(client_message_id), Some(question_id.clone()))
            .await;
        let hub = self.hub.clone();
        let me = self.me.clone();
        let turn = self.turns;
        let session_id = self.id.clone();
        let org_id = self.org_id.clone();
        self.hub.inner.tasks.spawn(async move {
            let responder = hub.inner.responder.clone();
            let prepared = async {
                let config = responder.config(&org_id).await?.unwrap_or_default();
                let mut history = hub
                    .db()
                    .recent_chat_messages(&session_id, HISTORY_MESSAGES)
                    .await?;
                history.retain(|m| *m.id != *question_id);
                responder
                    .answer(&config, &org_id, &question, &history, cancel)
                    .await
            };
            let command = match prepared.await {
                Ok(answer) => Command::StreamOpened {
                    turn,
                    stream: answer.stream,
                    grounding: Some(Box::new(answer.grounding)),
                },
                Err(error) => {
                    tracing::warn!(%session_id, %error, "chat answer failed to start");
                    Command::Stream {
                        turn,
                        event: TurnEvent::Failed(Box::new(error.into())),
                    }
                }
            };
            let _ = me.send(command).await;
        });
    }

    /// Keeps a finished answer in the transcript, with whether it was grounded and its sources.
    pub(super) async fn record_chat_answer(&self, turn: &Turn) {
        if turn.text.is_empty() {
            return;
        }
        let grounding = turn.grounding.clone().unwrap_or_default();
        let citations = serde_json::to_string(&grounding.citations).unwrap_or_else(|_| "[]".into());
        let stored = self
            .hub
            .db()
            .insert_chat_message(NewChatMessage {
                id: &turn.message_id,
                session_id: &self.id,
                org_id: &self.org_id,
                role: "assistant",
                content: &turn.text,
                citations: &citations,
                grounded: Some(grounding.grounded),
                in_reply_to: turn.answers.as_deref(),
            })
            .await;
        if let Err(error) = stored {
            tracing::error!(session_id = %self.id, %error, "answer not stored");
        }
    }

    pub(super) async fn close(&mut self) -> Result<i64, HubError> {
        if self.kind != "chat" {
            return Err(HubError::new(
                ErrorCode::InvalidState,
                "only chat sessions are closed",
            ));
        }
        if let Some(turn) = &self.turn {
            turn.cancel.cancel();
        }
        let closed_at = self.hub.db().close_chat_session(&self.id).await?;
        self.closed = true;
        Ok(closed_at)
    }
}

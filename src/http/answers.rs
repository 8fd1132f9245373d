//! Relaying a session's answer from the hub to an HTTP response: awaited whole (JSON) or streamed
//! as server-sent events. The conversation mirror and the chat widget's routes share it.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::hub::{Follower, Owner};
use crate::state::AppState;

/// How a submitted message's answer reaches the client.
pub enum Delivery {
    /// `Accept: text/event-stream`: the response streams the answer.
    Streamed(Response),
    /// The whole answer, once done.
    Awaited(Answer),
}

/// Submits a message to a session and follows its answer; a resent `client_message_id` is a
/// conflict (it was answered already).
pub async fn submit(
    state: &AppState,
    owner: &Owner,
    session_id: &str,
    content: String,
    client_message_id: &str,
    headers: &HeaderMap,
) -> Result<Delivery, ApiError> {
    let mut follower = state.hub.follow(session_id, owner).await?;
    let duplicate = state
        .hub
        .message(session_id, content, client_message_id.to_string())
        .await?;
    if duplicate {
        return Err(ApiError::conflict(
            "DUPLICATE_MESSAGE",
            "this client_message_id was already processed",
        ));
    }
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        let stream = stream_answer(follower, client_message_id.to_string());
        return Ok(Delivery::Streamed(stream.into_response()));
    }
    let answer = next_answer(&mut follower, Some(client_message_id)).await?;
    Ok(Delivery::Awaited(answer))
}

/// Idempotency keys: 1 to 64 characters of `A-Z a-z 0-9 - _`.
pub fn valid_client_message_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub struct Answer {
    pub message_id: String,
    pub content: String,
    /// The sources an answer used (chat sessions), as sent in `message.done`.
    pub citations: serde_json::Value,
}

/// Reads frames until the assistant message answering `in_reply_to` (or the next one) is done.
pub async fn next_answer(
    follower: &mut Follower,
    in_reply_to: Option<&str>,
) -> Result<Answer, ApiError> {
    let mut message_id: Option<String> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let frame = tokio::time::timeout_at(deadline, follower.frames.recv())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "UPSTREAM_TIMEOUT",
                    "no answer in time",
                )
            })?
            .ok_or_else(|| ApiError::unavailable("the session stopped; retry"))?;
        let value: serde_json::Value = serde_json::from_str(&frame).unwrap_or_default();
        match value["type"].as_str() {
            Some("message.started") => {
                let matches = in_reply_to.is_none_or(|id| value["in_reply_to"] == id);
                if matches && message_id.is_none() {
                    message_id = value["message_id"].as_str().map(str::to_owned);
                }
            }
            Some("message.done")
                if message_id.is_some()
                    && value["message_id"].as_str() == message_id.as_deref() =>
            {
                return Ok(Answer {
                    message_id: message_id.unwrap_or_default(),
                    content: value["content"].as_str().unwrap_or_default().to_string(),
                    citations: value["citations"].clone(),
                });
            }
            Some("error") => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "UPSTREAM_ERROR",
                    value["message"]
                        .as_str()
                        .unwrap_or("the model failed")
                        .to_string(),
                ));
            }
            _ => {}
        }
    }
}

/// Relays the answer's frames as server-sent events until it is done.
fn stream_answer(
    mut follower: Follower,
    client_message_id: String,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = async_stream(move |tx| async move {
        let mut message_id: Option<String> = None;
        while let Some(frame) = follower.frames.recv().await {
            let value: serde_json::Value = serde_json::from_str(&frame).unwrap_or_default();
            let kind = value["type"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "message.started" if value["in_reply_to"] == client_message_id.as_str() => {
                    message_id = value["message_id"].as_str().map(str::to_owned);
                    let _ = tx
                        .send(SseEvent::default().event("started").data(&*frame))
                        .await;
                }
                "token" if value["message_id"].as_str() == message_id.as_deref() => {
                    let _ = tx
                        .send(SseEvent::default().event("token").data(&*frame))
                        .await;
                }
                "message.done"
                    if value["message_id"].as_str() == message_id.as_deref()
                        && message_id.is_some() =>
                {
                    let _ = tx
                        .send(SseEvent::default().event("done").data(&*frame))
                        .await;
                    break;
                }
                "state" => {
                    let _ = tx
                        .send(SseEvent::default().event("state").data(&*frame))
                        .await;
                }
                "error" => {
                    let _ = tx
                        .send(SseEvent::default().event("error").data(&*frame))
                        .await;
                    break;
                }
                _ => {}
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A small channel-backed stream, so the producer can be plain async code.
fn async_stream<F, Fut>(produce: F) -> impl futures::Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<SseEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}

//! A local OpenAI-compatible upstream speaking the real SSE wire format, with a pacing and a count
//! of streams still open (to prove cancellation reaches it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::routing::post;
use axum::Router;

#[derive(Clone)]
pub struct Upstream {
    pub base_url: String,
    pub open_streams: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Streams `chunks` words, one every `pace`.
pub async fn spawn(chunks: usize, pace: Duration) -> Upstream {
    spawn_sized(chunks, pace, 0).await
}

/// Like `spawn`, each chunk padded to about `padding` bytes.
pub async fn spawn_sized(chunks: usize, pace: Duration, padding: usize) -> Upstream {
    let open_streams = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (open, count) = (open_streams.clone(), requests.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let open = open.clone();
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                open.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(open);
                let stream = futures::stream::unfold((0usize, guard), move |(i, guard)| async move {
                    if i > chunks {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(pace).await;
                    }
                    let data = if i == chunks {
                        "[DONE]".to_string()
                    } else {
                        serde_json::json!({
                            "id": "c1", "object": "chat.completion.chunk", "model": "mock",
                            "choices": [{"index": 0, "delta": {"content": format!("word{i}{} ", "x".repeat(padding))}, "finish_reason": null}]
                        })
                        .to_string()
                    };
                    Some((Ok::<_, std::convert::Infallible>(Event::default().data(data)), (i + 1, guard)))
                });
                Sse::new(stream)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream {
        base_url: format!("http://{addr}/v1"),
        open_streams,
        requests,
    }
}

/// A model that answers each request with `answer(request body)`, word by word, and keeps the
/// request bodies it received.
pub async fn spawn_scripted(
    answer: impl Fn(&serde_json::Value) -> String + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let kept = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let text = answer(&body);
            kept.lock().unwrap().push(body);
            async move {
                let mut events: Vec<String> = text
                    .split_inclusive(' ')
                    .map(|word| {
                        serde_json::json!({
                            "id": "c1", "object": "chat.completion.chunk", "model": "mock",
                            "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]
                        })
                        .to_string()
                    })
                    .collect();
                events.push("[DONE]".into());
                Sse::new(futures::stream::iter(events.into_iter().map(|data| {
                    Ok::<_, std::convert::Infallible>(Event::default().data(data))
                })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

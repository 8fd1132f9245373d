//! A local OpenAI-compatible upstream: `POST /v1/chat/completions` with `stream: true` answers with
//! `chunks` SSE events paced `pace` apart, in the real wire format (`data: {json}\n\n` ... `data:
//! [DONE]\n\n`), each HTTP chunk carrying one event.
//!
//! Every delta is `"<index>:<emitted_at_us> "`, so a client can tell the delivery delay of every
//! single token (the upstream and the client share the machine's clock) and check that none is
//! missing or out of order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::common::now_us;

#[derive(Debug, Clone, Copy)]
pub struct MockConfig {
    pub chunks: usize,
    pub pace: Duration,
}

/// Parses one delta written by this mock: `(index, emitted_at_us)` per token.
pub fn parse_delta(delta: &str) -> Vec<(usize, u64)> {
    delta
        .split_whitespace()
        .filter_map(|item| {
            let (index, at) = item.split_once(':')?;
            Some((index.parse().ok()?, at.parse().ok()?))
        })
        .collect()
}

pub fn event(content: Option<&str>, finish: Option<&str>) -> Bytes {
    let delta = match content {
        Some(text) => json!({"role": "assistant", "content": text}),
        None => json!({}),
    };
    let chunk = json!({
        "id": "chatcmpl-load",
        "object": "chat.completion.chunk",
        "created": now_us() / 1_000_000,
        "model": "mock-upstream",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

async fn completions(State(config): State<Arc<MockConfig>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["stream"] != true {
        let answer = json!({
            "id": "chatcmpl-load",
            "object": "chat.completion",
            "model": "mock-upstream",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        });
        return (StatusCode::OK, axum::Json(answer)).into_response();
    }
    let start = Instant::now();
    let config = *config;
    // State: next index to send (chunks + 1 is the finish event, chunks + 2 is [DONE]).
    let stream = futures::stream::unfold(0usize, move |index| async move {
        if index > config.chunks + 1 {
            return None;
        }
        if index < config.chunks {
            tokio::time::sleep_until(start + config.pace * index as u32).await;
            let text = format!("{index}:{} ", now_us());
            return Some((Ok::<_, std::io::Error>(event(Some(&text), None)), index + 1));
        }
        if index == config.chunks {
            return Some((Ok(event(None, Some("stop"))), index + 1));
        }
        Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), index + 1))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub fn router(config: MockConfig) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(Arc::new(config))
}

/// Serves until the process ends, printing `listening <addr>` once bound.
pub async fn serve(addr: SocketAddr, config: MockConfig) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening {}", listener.local_addr()?);
    // Like real upstreams (uvicorn, vLLM, llama.cpp), write each event at once: no Nagle delay.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(config)).await?;
    Ok(())
}

/// Runs the mock as a child process of this binary, so its CPU is measured apart.
pub struct MockProcess {
    child: tokio::process::Child,
    pub pid: u32,
    pub addr: SocketAddr,
}

impl MockProcess {
    pub async fn spawn(config: MockConfig) -> Result<MockProcess> {
        use tokio::io::AsyncBufReadExt;
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .arg("mock")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--chunks")
            .arg(config.chunks.to_string())
            .arg("--pace-ms")
            .arg(config.pace.as_millis().to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("mock ended"))?;
        let addr = line
            .strip_prefix("listening ")
            .ok_or_else(|| anyhow::anyhow!("unexpected mock output {line}"))?
            .parse()?;
        Ok(MockProcess { child, pid, addr })
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

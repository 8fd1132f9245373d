//! A scripted HTTP/1.1 server on 127.0.0.1 speaking the real SSE wire format, for tests.
//!
//! Raw TCP rather than a framework so tests control every byte boundary and can see
//! the client close the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Part of a response body.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    /// Sent as one HTTP chunk.
    Bytes(Vec<u8>),
    Sleep(Duration),
    /// Keep the connection open, sending nothing, until the client closes it.
    Hold,
}

impl Part {
    pub fn text(text: &str) -> Self {
        Self::Bytes(text.as_bytes().to_vec())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MockResponse {
    status: u16,
    headers: Vec<(String, String)>,
    parts: Vec<Part>,
    keep_alive: bool,
}

impl MockResponse {
    pub fn sse(parts: Vec<Part>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            parts,
            keep_alive: false,
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            parts: vec![Part::text(body)],
            keep_alive: false,
        }
    }

    pub fn json(body: &str) -> Self {
        Self::status(200, body)
    }

    /// Leave the connection open for the next request instead of closing it.
    pub fn keep_alive(mut self) -> Self {
        self.keep_alive = true;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RecordedRequest {
    pub head: String,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Responses = Arc<Mutex<VecDeque<MockResponse>>>;

pub(crate) struct MockUpstream {
    pub base_url: String,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    connections: Arc<AtomicUsize>,
    closed_by_client: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Serves `responses` to successive requests; later requests get a 418.
    pub async fn start(responses: Vec<MockResponse>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed_by_client) = mpsc::unbounded_channel();
        let responses: Responses = Arc::new(Mutex::new(responses.into()));
        let recorded = Arc::clone(&requests);
        let accepted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(
                    socket,
                    Arc::clone(&responses),
                    Arc::clone(&recorded),
                    closed_tx.clone(),
                ));
            }
        });
        Self {
            base_url,
            requests,
            connections,
            closed_by_client,
            task,
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// True if the client closed a held connection within `within`.
    pub async fn client_closed_within(&mut self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.closed_by_client.recv()).await,
            Ok(Some(()))
        )
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut socket: TcpStream,
    responses: Responses,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
    closed_tx: mpsc::UnboundedSender<()>,
) {
    socket.set_nodelay(true).unwrap();
    loop {
        let Some(request) = read_request(&mut socket).await else {
            return;
        };
        recorded.lock().unwrap().push(request);
        let response = responses.lock().unwrap().pop_front().unwrap_or_else(|| {
            MockResponse::status(418, r#"{"error":"no more scripted responses"}"#)
        });
        let keep_alive = response.keep_alive;
        match respond(&mut socket, response).await {
            Served::Complete if keep_alive => continue,
            Served::Complete => {
                let _ = socket.shutdown().await;
                return;
            }
            Served::ClosedByClient => {
                let _ = closed_tx.send(());
                return;
            }
            Served::WriteFailed => return,
        }
    }
}

enum Served {
    Complete,
    ClosedByClient,
    WriteFailed,
}

async fn respond(socket: &mut TcpStream, response: MockResponse) -> Served {
    let mut head = format!("HTTP/1.1 {} Mock\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("transfer-encoding: chunked\r\n");
    if !response.keep_alive {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    if socket.write_all(head.as_bytes()).await.is_err() {
        return Served::WriteFailed;
    }
    for part in response.parts {
        match part {
            Part::Bytes(bytes) => {
                let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
                chunk.extend_from_slice(&bytes);
                chunk.extend_from_slice(b"\r\n");
                if socket.write_all(&chunk).await.is_err() {
                    return Served::WriteFailed;
                }
                let _ = socket.flush().await;
            }
            Part::Sleep(pause) => tokio::time::sleep(pause).await,
            Part::Hold => {
                let mut buf = [0u8; 256];
                // The client sends nothing more, so a read ends only when it closes.
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return Served::ClosedByClient,
                        Ok(_) => {}
                    }
                }
            }
        }
    }
    if socket.write_all(b"0\r\n\r\n").await.is_err() {
        return Served::WriteFailed;
    }
    Served::Complete
}

async fn read_request(socket: &mut TcpStream) -> Option<RecordedRequest> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let read = socket.read(&mut buf).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..read]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut request = RecordedRequest {
        head,
        body: data[head_end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let read = socket.read(&mut buf).await.ok()?;
        if read == 0 {
            return None;
        }
        request.body.extend_from_slice(&buf[..read]);
    }
    Some(request)
}

/// `data: <json>\n\n` for a content delta.
pub(crate) fn delta_event(content: &str) -> String {
    let chunk = serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n")
}

/// `data: <json>\n\n` for the final choice chunk.
pub(crate) fn finish_event(reason: &str) -> String {
    let chunk = serde_json::json!({
        "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]
    });
    format!("data: {chunk}\n\n")
}

/// `data: <json>\n\n` for the usage chunk sent with `include_usage`.
pub(crate) fn usage_event(prompt: u32, completion: u32) -> String {
    let chunk = serde_json::json!({
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    });
    format!("data: {chunk}\n\n")
}

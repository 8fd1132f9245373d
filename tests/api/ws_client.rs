//! A minimal protocol client written from `protocol/`: connects with the `rapport.v1` subprotocol,
//! and checks every frame it receives against `protocol/v1/server.schema.json`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::TestApp;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn server_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(include_str!("../../protocol/v1/server.schema.json")).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    })
}

pub struct Client {
    pub socket: Socket,
    /// Highest `seq` seen.
    pub last_seq: i64,
}

impl Client {
    /// Connects with the given extra subprotocol entries (credentials).
    pub async fn connect(app: &TestApp, credentials: &[String]) -> Client {
        Self::try_connect(app, credentials)
            .await
            .expect("websocket connect")
    }

    pub async fn try_connect(
        app: &TestApp,
        credentials: &[String],
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        Self::try_connect_from(app, credentials, None).await
    }

    /// Like [`Self::try_connect`], as a browser page of `origin` would.
    pub async fn try_connect_from(
        app: &TestApp,
        credentials: &[String],
        origin: Option<&str>,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{}/api/v1/ws", app.addr);
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let mut protocols = vec!["rapport.v1".to_string()];
        protocols.extend(credentials.iter().cloned());
        request.headers_mut().insert(
            "sec-websocket-protocol",
            protocols.join(", ").parse().unwrap(),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        assert_eq!(response.headers()["sec-websocket-protocol"], "rapport.v1");
        Ok(Client {
            socket,
            last_seq: 0,
        })
    }

    pub async fn bearer(app: &TestApp, token: &str) -> Client {
        let mut client = Self::connect(app, &[format!("rapport.bearer.{token}")]).await;
        let ok = client.recv().await;
        assert_eq!(ok["type"], "auth.ok", "{ok}");
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap();
    }

    /// The next protocol frame, validated against the server schema; panics after 10 s.
    pub async fn recv(&mut self) -> Value {
        self.try_recv(Duration::from_secs(10))
            .await
            .expect("a frame within 10 s")
    }

    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let next = tokio::time::timeout(wait, self.socket.next()).await.ok()?;
            let Some(Ok(message)) = next else {
                // The server ended the connection (possibly without a close frame).
                return Some(serde_json::json!({"type": "__close", "code": null}));
            };
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    let errors: Vec<String> = server_schema()
                        .iter_errors(&value)
                        .map(|e| e.to_string())
                        .collect();
                    assert!(
                        errors.is_empty(),
                        "frame violates the protocol: {value}\n{errors:?}"
                    );
                    if let Some(seq) = value["seq"].as_i64() {
                        assert_eq!(seq, self.last_seq + 1, "gap or duplicate before {value}");
                        self.last_seq = seq;
                    }
                    return Some(value);
                }
                Message::Close(frame) => {
                    return Some(
                        serde_json::json!({"type": "__close", "code": frame.map(|f| u16::from(f.code))}),
                    );
                }
                _ => continue,
            }
        }
    }

    /// Reads frames until one of `kind` arrives; returns all read.
    pub async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = frame["type"] == kind;
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    /// Sends a message and returns every frame up to the assistant's finished reply.
    pub async fn say(&mut self, text: &str, id: &str) -> Vec<Value> {
        self.send(serde_json::json!({"type": "message", "content": text, "client_message_id": id}))
            .await;
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = frame["type"] == "message.done" && frame["role"] == "assistant";
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }
}

pub fn last_state(frames: &[Value]) -> Option<String> {
    frames
        .iter()
        .rev()
        .find(|f| f["type"] == "state")
        .and_then(|f| f["state"].as_str().map(str::to_owned))
}

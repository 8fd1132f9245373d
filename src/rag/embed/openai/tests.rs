#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::*;

/// A scripted stand-in for an embedding service.
#[derive(Default)]
struct Mock {
    /// Statuses answered before any success, in order.
    failures: Mutex<VecDeque<(StatusCode, Value)>>,
    /// Vector length answered (2 unless set).
    dimension: Mutex<Option<usize>>,
    /// Every request body and authorization header seen.
    requests: Mutex<Vec<(Value, Option<String>)>>,
}

/// Angle encoding of `t{n}` inputs: the unit vector at angle n/10.
fn expected_vector(text: &str) -> Vec<f32> {
    let n: f32 = text.trim_start_matches('t').parse().unwrap();
    let angle = n / 10.0;
    vec![angle.cos(), angle.sin()]
}

async fn embeddings(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    mock.requests.lock().unwrap().push((body.clone(), auth));
    if let Some((status, payload)) = mock.failures.lock().unwrap().pop_front() {
        let mut response = (status, Json(payload)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", "0".parse().unwrap());
        }
        return response;
    }
    let dimension = mock.dimension.lock().unwrap().unwrap_or(2);
    let inputs = body["input"].as_array().unwrap();
    // Answer in reverse order: the client must sort by `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| {
            let mut vector = expected_vector(text.as_str().unwrap());
            vector.resize(dimension, 0.0);
            // Scaled, to check that the client normalises.
            let scaled: Vec<f32> = vector.iter().map(|v| v * 3.0).collect();
            json!({"object": "embedding", "index": index, "embedding": scaled})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": body["model"]})).into_response()
}

async fn serve(mock: Arc<Mock>) -> String {
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1/")
}

fn config(base_url: String) -> OpenAiEmbedderConfig {
    OpenAiEmbedderConfig {
        api_key: Some(SecretString::from("sk-test-secret")),
        batch_size: 2,
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        ..OpenAiEmbedderConfig::new(base_url, "test-embed", 2)
    }
}

fn texts(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn assert_close(actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-5, "{actual:?} != {expected:?}");
    }
}

#[tokio::test]
async fn batches_keep_order_and_send_the_key() {
    let mock = Arc::new(Mock::default());
    let embedder = OpenAiEmbedder::new(config(serve(mock.clone()).await)).unwrap();
    assert_eq!(embedder.model_id(), "test-embed");
    assert_eq!(embedder.dimension(), 2);

    let inputs = texts(&["t1", "t2", "", "t3", "t4", "t5"]);
    let vectors = embedder.embed(&inputs).await.unwrap();
    assert_eq!(vectors.len(), 6);
    for (text, vector) in inputs.iter().zip(&vectors) {
        if text.is_empty() {
            assert_eq!(vector, &vec![0.0, 0.0], "empty input is not sent");
        } else {
            assert_close(vector, &expected_vector(text));
        }
    }
    let requests = mock.requests.lock().unwrap();
    let batches: Vec<Value> = requests
        .iter()
        .map(|(body, _)| body["input"].clone())
        .collect();
    assert_eq!(
        batches,
        vec![json!(["t1", "t2"]), json!(["t3", "t4"]), json!(["t5"])]
    );
    assert!(requests.iter().all(|(body, auth)| {
        auth.as_deref() == Some("Bearer sk-test-secret")
            && body["model"] == "test-embed"
            && body.get("dimensions").is_none()
    }));
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output() {
    let embedder = OpenAiEmbedder::new(config("http://127.0.0.1:9/v1".to_owned())).unwrap();
    let debug = format!("{embedder:?}");
    assert!(!debug.contains("sk-test-secret"), "{debug}");
}

#[tokio::test]
async fn retries_rate_limits_and_server_errors() {
    let mock = Arc::new(Mock::default());
    mock.failures.lock().unwrap().extend([
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"message": "slow down"}}),
        ),
        (StatusCode::INTERNAL_SERVER_ERROR, json!({})),
        (StatusCode::SERVICE_UNAVAILABLE, json!({})),
    ]);
    let embedder = OpenAiEmbedder::new(config(serve(mock.clone()).await)).unwrap();
    let vectors = embedder.embed(&texts(&["t7"])).await.unwrap();
    assert_close(&vectors[0], &expected_vector("t7"));
    assert_eq!(mock.requests.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let mock = Arc::new(Mock::default());
    mock.failures.lock().unwrap().extend(std::iter::repeat_n(
        (StatusCode::BAD_GATEWAY, json!({})),
        10,
    ));
    let embedder = OpenAiEmbedder::new(config(serve(mock.clone()).await)).unwrap();
    let error = embedder.embed(&texts(&["t1"])).await.unwrap_err();
    assert!(
        matches!(error, EmbedError::Status { status: 502, .. }),
        "{error}"
    );
    assert_eq!(
        mock.requests.lock().unwrap().len(),
        4,
        "one attempt plus three retries"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let mock = Arc::new(Mock::default());
    mock.failures.lock().unwrap().push_back((
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": "input is too long", "type": "invalid_request_error"}}),
    ));
    let embedder = OpenAiEmbedder::new(config(serve(mock.clone()).await)).unwrap();
    let error = embedder.embed(&texts(&["t1"])).await.unwrap_err();
    match error {
        EmbedError::Status { status, message } => {
            assert_eq!(status, 400);
            assert_eq!(message, "input is too long");
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(mock.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn dimension_mismatch_is_explained() {
    let mock = Arc::new(Mock::default());
    *mock.dimension.lock().unwrap() = Some(3);
    let embedder = OpenAiEmbedder::new(config(serve(mock.clone()).await)).unwrap();
    let error = embedder.embed(&texts(&["t1"])).await.unwrap_err();
    assert!(
        matches!(
            error,
            EmbedError::DimensionMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("3-dimensional"));
}

#[tokio::test]
async fn requested_dimensions_are_sent() {
    let mock = Arc::new(Mock::default());
    let embedder = OpenAiEmbedder::new(OpenAiEmbedderConfig {
        request_dimensions: true,
        ..config(serve(mock.clone()).await)
    })
    .unwrap();
    embedder.embed(&texts(&["t1"])).await.unwrap();
    assert_eq!(mock.requests.lock().unwrap()[0].0["dimensions"], 2);
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    // Bind then drop a listener to get a local port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let embedder = OpenAiEmbedder::new(config(format!("http://{address}/v1"))).unwrap();
    let started = std::time::Instant::now();
    let error = embedder.embed(&texts(&["t1"])).await.unwrap_err();
    assert!(matches!(error, EmbedError::Transport(_)), "{error}");
    assert!(!error.to_string().contains("sk-test"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn nothing_to_embed_sends_nothing() {
    let mock = Arc::new(Mock::default());
    let embedder = OpenAiEmbedder::new(config(serve(mock.clone()).await)).unwrap();
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert_eq!(
        embedder.embed(&texts(&["  "])).await.unwrap(),
        vec![vec![0.0, 0.0]]
    );
    assert!(mock.requests.lock().unwrap().is_empty());
}

#[test]
fn invalid_configuration_is_rejected() {
    let base = || OpenAiEmbedderConfig::new("http://127.0.0.1:1/v1", "m", 8);
    assert!(OpenAiEmbedder::new(OpenAiEmbedderConfig {
        dimension: 0,
        ..base()
    })
    .is_err());
    assert!(OpenAiEmbedder::new(OpenAiEmbedderConfig {
        batch_size: 0,
        ..base()
    })
    .is_err());
    assert!(OpenAiEmbedder::new(OpenAiEmbedderConfig::new("ftp://x", "m", 8)).is_err());
    assert!(OpenAiEmbedder::new(OpenAiEmbedderConfig {
        api_key: Some(SecretString::from("bad\nkey")),
        ..base()
    })
    .is_err());
}

#[test]
fn error_bodies_are_shortened() {
    let long = "x".repeat(1000);
    assert_eq!(
        error_message(long).chars().count(),
        MAX_ERROR_BODY_CHARS + 1
    );
    assert_eq!(
        error_message(r#"{"error":{"message":"nope"}}"#.to_owned()),
        "nope"
    );
}

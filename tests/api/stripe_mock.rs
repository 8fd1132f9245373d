//! A local server speaking Stripe's wire format for the endpoints the server calls: form-encoded
//! requests with a bearer secret key, JSON objects back, `Idempotency-Key` honoured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const SECRET_KEY: &str = "sk_test_rapport_mock";
pub const WEBHOOK_SECRET: &str = "whsec_rapport_test_secret";

#[derive(Default)]
pub struct Recorded {
    /// `(path, idempotency key, form fields)` of every request.
    pub requests: Vec<(String, Option<String>, HashMap<String, String>)>,
    sessions_by_key: HashMap<String, Value>,
}

#[derive(Clone)]
pub struct StripeMock {
    pub base_url: String,
    pub recorded: Arc<Mutex<Recorded>>,
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SECRET_KEY}"))
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
}

fn record(
    state: &Arc<Mutex<Recorded>>,
    path: &str,
    headers: &HeaderMap,
    body: &str,
) -> HashMap<String, String> {
    let form: HashMap<String, String> = serde_urlencoded::from_str(body).unwrap_or_default();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state
        .lock()
        .unwrap()
        .requests
        .push((path.to_string(), key, form.clone()));
    form
}

async fn create_session(
    State(state): State<Arc<Mutex<Recorded>>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    let form = record(&state, "/v1/checkout/sessions", &headers, &body);
    for field in [
        "mode",
        "success_url",
        "line_items[0][price_data][unit_amount]",
    ] {
        if !form.contains_key(field) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Missing required param: {field}."),
            );
        }
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut recorded = state.lock().unwrap();
    if let Some(existing) = recorded.sessions_by_key.get(&key) {
        return (StatusCode::OK, Json(existing.clone()));
    }
    let id = format!("cs_test_{}", uuid::Uuid::new_v4().simple());
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_string(), Value::String(v.clone())))
        })
        .collect();
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "mode": form["mode"],
        "status": "open",
        "payment_status": "unpaid",
        "client_reference_id": form.get("client_reference_id"),
        "metadata": metadata,
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    });
    recorded.sessions_by_key.insert(key, session.clone());
    (StatusCode::OK, Json(session))
}

async fn update_subscription(
    State(state): State<Arc<Mutex<Recorded>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    let form = record(&state, &format!("/v1/subscriptions/{id}"), &headers, &body);
    let paused = form.contains_key("pause_collection[behavior]");
    (
        StatusCode::OK,
        Json(json!({
            "id": id,
            "object": "subscription",
            "status": "active",
            "cancel_at_period_end": form.get("cancel_at_period_end").map(|v| v == "true").unwrap_or(false),
            "pause_collection": if paused { json!({"behavior": "void"}) } else { Value::Null },
            "items": {"object": "list", "data": [{"id": "si_test_1", "object": "subscription_item"}]},
        })),
    )
}

async fn delete_subscription(
    State(state): State<Arc<Mutex<Recorded>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    record(
        &state,
        &format!("DELETE /v1/subscriptions/{id}"),
        &headers,
        "",
    );
    (
        StatusCode::OK,
        Json(json!({"id": id, "object": "subscription", "status": "canceled"})),
    )
}

pub async fn spawn() -> StripeMock {
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let app = Router::new()
        .route("/v1/checkout/sessions", post(create_session))
        .route(
            "/v1/subscriptions/{id}",
            post(update_subscription).delete(delete_subscription),
        )
        .with_state(recorded.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    StripeMock {
        base_url: format!("http://{addr}"),
        recorded,
    }
}

/// A `Stripe-Signature` header for `payload` signed at `timestamp`, computed by
/// `scripts/stripe_sign.py` (Python's hmac, checked by the official `stripe` package).
pub fn sign(payload: &str, timestamp: i64) -> String {
    use std::io::Write;
    let root = env!("CARGO_MANIFEST_DIR");
    let python = std::env::var("RAPPORT_TEST_STRIPE_PYTHON").unwrap_or_else(|_| {
        let venv = format!("{root}/.rapport/tools/bin/python");
        if std::path::Path::new(&venv).exists() {
            venv
        } else {
            "python3".into()
        }
    });
    let mut child = std::process::Command::new(python)
        .arg(format!("{root}/scripts/stripe_sign.py"))
        .arg(WEBHOOK_SECRET)
        .arg(timestamp.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run scripts/stripe_sign.py (needs the `stripe` Python package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "stripe_sign.py failed");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

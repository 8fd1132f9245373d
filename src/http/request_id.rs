//! Request ids: accepted from `X-Request-Id` when well-formed, generated otherwise, echoed on the
//! response, attached to every log line of the request and to every problem document.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The request id as seen by handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client-supplied id is kept only when it is short and plain, so it cannot inject into logs.
fn acceptable(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        method = %request.method(),
        path = %redact_path(request.uri().path()),
    );
    let mut response = CURRENT
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

/// The path as logged: single-use tokens travel in some paths (emailed links), so long opaque
/// segments are replaced. Ids (UUIDs, 36 characters) stay readable.
pub fn redact_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.len() > 40 {
                "[redacted]"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::{acceptable, redact_path};

    #[test]
    fn tokens_in_paths_are_redacted() {
        let token = "a".repeat(43);
        assert_eq!(
            redact_path(&format!("/api/v1/auth/invitations/{token}/accept")),
            "/api/v1/auth/invitations/[redacted]/accept"
        );
        let id = "0190b6c4-1c2d-7e3f-8a9b-0c1d2e3f4a5b";
        assert_eq!(
            redact_path(&format!("/api/v1/orgs/{id}")),
            format!("/api/v1/orgs/{id}")
        );
    }

    #[test]
    fn only_plain_ids_are_accepted() {
        assert!(acceptable("abc-123_x.y:z"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\ny"));
        assert!(!acceptable(&"a".repeat(129)));
    }
}

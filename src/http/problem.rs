//! Turns every error response that did not come from a handler (404 from the fallback, 405 from the
//! router, 413 from the body limit, 408 from the timeout) into a problem document.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, PROBLEM_JSON};

pub async fn middleware(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON));
    if is_problem {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = ApiError::from_status(status).into_response();
    if let Some(value) = retry_after {
        problem.headers_mut().insert(header::RETRY_AFTER, value);
    }
    if let Some(value) = allow {
        problem.headers_mut().insert(header::ALLOW, value);
    }
    problem
}

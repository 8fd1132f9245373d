//! A JSON body extractor whose rejections are problem documents naming what was wrong.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, FieldError};

/// Like `axum::Json`, but malformed or mistyped bodies become RFC 7807 problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(rejection_to_problem(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn rejection_to_problem(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => {
            // serde's message names the path and the expected type, e.g. "email: missing field".
            let message = err.body_text();
            let field = data_error_field(&message);
            ApiError::validation(vec![FieldError::new(field, clean_message(&message))])
        }
        JsonRejection::JsonSyntaxError(err) => ApiError::bad_request(
            "MALFORMED_JSON",
            format!("malformed JSON: {}", err.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "expected `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::bad_request("BAD_BODY", other.body_text()),
    }
}

/// axum reports data errors as "Failed to deserialize the JSON body into the target type: path: msg".
fn data_error_field(message: &str) -> String {
    let rest = message
        .split_once("target type: ")
        .map(|(_, rest)| rest)
        .unwrap_or(message);
    match rest.split_once(": ") {
        Some((path, _)) if !path.contains(' ') && path != "." => path.to_string(),
        _ => missing_field_name(rest).unwrap_or_else(|| "body".to_string()),
    }
}

fn missing_field_name(message: &str) -> Option<String> {
    let start = message.find("missing field `")? + "missing field `".len();
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

fn clean_message(message: &str) -> String {
    message
        .split_once("target type: ")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_offending_field() {
        assert_eq!(
            data_error_field("Failed to deserialize the JSON body into the target type: email: invalid type: integer `3`, expected a string at line 1 column 11"),
            "email"
        );
        assert_eq!(
            data_error_field("Failed to deserialize the JSON body into the target type: missing field `password` at line 1 column 2"),
            "password"
        );
    }
}

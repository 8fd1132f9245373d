//! Bodies taken as a JSON object first, then typed. Derived struct deserialisers also accept a JSON
//! array (fields by position), which no client means; for bodies whose fields are all optional that
//! would let `[]` or `[null]` through as a valid request.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// Refuses a nested field that is present but neither an object nor `null`, for the same reason
/// as the body itself.
pub fn nested_object(object: &Map<String, Value>, field: &str) -> Result<(), ApiError> {
    match object.get(field) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(ApiError::validation(vec![FieldError::new(
            field,
            "must be an object",
        )])),
    }
}

/// Types an object body, reporting the offending field's path on failure.
pub fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::validation(vec![FieldError::new(field, err.into_inner().to_string())])
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        n: Option<u32>,
    }

    #[test]
    fn errors_name_the_field() {
        let object = serde_json::json!({"inner": {"n": "x"}});
        let Value::Object(map) = object else {
            unreachable!()
        };
        let err = from_object::<Body>(map).unwrap_err();
        assert_eq!(err.code(), "VALIDATION_FAILED");
        assert!(err.to_string().contains("inner.n"), "{err}");
    }
}

//! The one pagination convention of every list: `?limit=&cursor=` in, `{data, next_cursor}` out.
//!
//! Cursors are opaque to clients: base64url of the last row's sort key. Lists are ordered by
//! `(created_at DESC, id DESC)` unless a route documents otherwise, so a cursor is that pair.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, FieldError};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A position in a list ordered by `(created_at DESC, id DESC)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl PageParams {
    /// The validated limit and decoded cursor.
    pub fn resolve(&self) -> Result<(u32, Option<Cursor>), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation(vec![FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )]));
        }
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| {
                ApiError::validation(vec![FieldError::new("cursor", "is not a valid cursor")])
            })?),
        };
        Ok((limit, cursor))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only signals that more exist.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|last| key(last).encode())
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: 42,
            id: "abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
    }

    #[test]
    fn page_signals_more_only_with_the_extra_row() {
        let key = |n: &i64| Cursor {
            created_at: *n,
            id: n.to_string(),
        };
        let page = Page::from_rows(vec![3, 2, 1], 2, key);
        assert_eq!(page.data, vec![3, 2]);
        assert_eq!(
            Cursor::decode(page.next_cursor.as_deref().unwrap())
                .unwrap()
                .created_at,
            2
        );
        let last = Page::from_rows(vec![3, 2], 2, key);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn limits_are_validated() {
        let p = PageParams {
            limit: Some(0),
            cursor: None,
        };
        assert!(p.resolve().is_err());
        let p = PageParams {
            limit: None,
            cursor: Some("%%".into()),
        };
        assert!(p.resolve().is_err());
    }
}

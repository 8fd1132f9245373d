use std::fmt;
use std::time::Duration;

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Establishing the TCP/TLS connection.
    Connect,
    /// Waiting for the response headers and the first token.
    FirstToken,
    /// Waiting for the next chunk once tokens were flowing.
    Stall,
    /// The whole completion took longer than allowed.
    Request,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::FirstToken => "first token",
            Self::Stall => "stall between chunks",
            Self::Request => "overall request",
        })
    }
}

/// Why a completion failed. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("language model timed out ({phase})")]
    Timeout { phase: TimeoutPhase },

    /// The upstream reported an error: a non-success HTTP status (`status` set) or an
    /// error object inside the stream or a broken connection (`status` may be `None`).
    #[error("language model error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream {
        status: Option<u16>,
        message: String,
    },

    #[error("language model rate limited{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },

    /// The upstream spoke something other than the expected SSE/JSON.
    #[error("language model protocol error: {0}")]
    Protocol(String),

    #[error("completion cancelled")]
    Cancelled,

    /// The provider cannot be reached or is not usable as configured.
    #[error("language model unavailable: {0}")]
    Unavailable(String),
}

impl LlmError {
    /// Stable, machine-readable code for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "upstream_timeout",
            Self::Upstream { .. } => "upstream_error",
            Self::RateLimited { .. } => "rate_limited",
            Self::Protocol(_) => "upstream_protocol",
            Self::Cancelled => "cancelled",
            Self::Unavailable(_) => "upstream_unavailable",
        }
    }

    /// True when trying again later might succeed (the caller decides whether to).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::RateLimited { .. } | Self::Unavailable(_) => true,
            Self::Upstream { status, .. } => status.is_none_or(|s| s >= 500),
            Self::Protocol(_) | Self::Cancelled => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let cases = [
            (
                LlmError::Timeout {
                    phase: TimeoutPhase::Stall,
                },
                "upstream_timeout",
            ),
            (
                LlmError::Upstream {
                    status: Some(502),
                    message: "bad gateway".into(),
                },
                "upstream_error",
            ),
            (LlmError::RateLimited { retry_after: None }, "rate_limited"),
            (LlmError::Protocol("x".into()), "upstream_protocol"),
            (LlmError::Cancelled, "cancelled"),
            (LlmError::Unavailable("x".into()), "upstream_unavailable"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn messages_read_well() {
        let error = LlmError::Upstream {
            status: Some(500),
            message: "boom".into(),
        };
        assert_eq!(error.to_string(), "language model error (HTTP 500): boom");
        let error = LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            error.to_string(),
            "language model rate limited, retry after 3s"
        );
    }
}

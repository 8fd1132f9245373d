//! How long to wait before retrying a request that failed before its first token.

use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;

/// Exponential backoff with jitter: attempt `n` (0-based) waits a random time between
/// half and all of `base * 2^n`, capped at `max`, so retrying clients spread out.
pub(crate) fn backoff_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let ceiling = base.saturating_mul(2u32.saturating_pow(attempt)).min(max);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    if ceiling_ms == 0 {
        return ceiling;
    }
    let jittered = rand::thread_rng().gen_range(ceiling_ms / 2..=ceiling_ms);
    Duration::from_millis(jittered)
}

/// The wait the upstream asked for: `retry-after-ms` (sent by OpenAI) or `Retry-After`
/// in delta-seconds. HTTP-date values are ignored and fall back to backoff.
pub(crate) fn requested_retry_delay(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let from_ms = header("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok());
    if from_ms.is_some() {
        return from_ms;
    }
    header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for _ in 0..50 {
            let first = backoff_delay(0, base, max);
            assert!(first >= Duration::from_millis(50) && first <= base);
            let third = backoff_delay(2, base, max);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(backoff_delay(30, base, max) <= max);
        }
        assert_eq!(backoff_delay(3, Duration::ZERO, max), Duration::ZERO);
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested_retry_delay(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            requested_retry_delay(&headers),
            Some(Duration::from_secs(7))
        );
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(
            requested_retry_delay(&headers),
            Some(Duration::from_millis(250))
        );
        let mut dated = HeaderMap::new();
        dated.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(requested_retry_delay(&dated), None);
    }
}

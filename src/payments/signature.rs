//! `Stripe-Signature` verification as Stripe specifies it: the header is `t=<unix seconds>` and
//! one or more `v1=<hex>` entries (other schemes are ignored); the expected signature is
//! HMAC-SHA256 of `"{t}.{raw body}"` keyed with the endpoint secret; any matching `v1` is
//! accepted (several are sent while a secret is being rolled); the timestamp must be within the
//! tolerance of now, which bounds replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("no v1 signature matches")]
    NoMatch,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
}

pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp: Option<&str> = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name {
            "t" => timestamp = Some(value),
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let raw_t = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = raw_t.parse().map_err(|_| SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::NoMatch);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Malformed)?;
    mac.update(raw_t.as_bytes());
    mac.update(b".");
    mac.update(payload);
    // Every candidate is compared in constant time (verify_slice); none short-circuits on content.
    let matched = candidates.iter().fold(false, |found, candidate| {
        let ok = hex::decode(candidate)
            .map(|bytes| mac.clone().verify_slice(&bytes).is_ok())
            .unwrap_or(false);
        found | ok
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    if (now_secs - t).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(t: i64, body: &str, secret: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(format!("{t}.{body}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn accepts_a_matching_v1_among_several_and_ignores_other_schemes() {
        let body = r#"{"id":"evt_1"}"#;
        let good = sign(1000, body, "whsec_a");
        let header = format!("t=1000,v0=abc,v1={},v1={good}", "00".repeat(32));
        assert_eq!(
            verify_signature(&header, body.as_bytes(), b"whsec_a", 1100, 300),
            Ok(())
        );
    }

    #[test]
    fn refuses_tampering_staleness_and_malformed_headers() {
        let body = r#"{"id":"evt_1"}"#;
        let good = sign(1000, body, "whsec_a");
        let header = format!("t=1000,v1={good}");
        assert_eq!(
            verify_signature(&header, b"{\"id\":\"evt_2\"}", b"whsec_a", 1000, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(&header, body.as_bytes(), b"whsec_b", 1000, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(&header, body.as_bytes(), b"whsec_a", 1301, 300),
            Err(SignatureError::Stale)
        );
        // The timestamp is part of what is signed.
        let moved = format!("t=1001,v1={good}");
        assert_eq!(
            verify_signature(&moved, body.as_bytes(), b"whsec_a", 1000, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature("garbage", body.as_bytes(), b"whsec_a", 1000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature("t=1000", body.as_bytes(), b"whsec_a", 1000, 300),
            Err(SignatureError::NoMatch)
        );
    }
}

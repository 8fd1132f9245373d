//! Visitor session tokens: opaque `st_…` strings, stored only as digests, valid for one chat
//! session and expiring after a period without use.

use crate::auth::secrets;

pub const PREFIX: &str = "st_";

/// A new token and the digest stored in its place.
pub fn issue() -> (String, String) {
    let raw = format!("{PREFIX}{}", secrets::generate());
    let digest = secrets::digest(&raw);
    (raw, digest)
}

/// The digest to look a presented token up by, or `None` when it cannot be one of ours.
pub fn digest_of(raw: &str) -> Option<String> {
    let looks_right = raw.starts_with(PREFIX)
        && (8..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    looks_right.then(|| secrets::digest(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_recognised_and_distinct() {
        let (a, digest_a) = issue();
        let (b, _) = issue();
        assert_ne!(a, b);
        assert_eq!(digest_of(&a), Some(digest_a));
    }

    #[test]
    fn foreign_strings_are_not_looked_up() {
        assert_eq!(digest_of("pk_abc"), None);
        assert_eq!(digest_of("st_"), None);
        assert_eq!(digest_of("st_has space"), None);
        assert_eq!(digest_of("st_dots.are.out"), None);
    }
}

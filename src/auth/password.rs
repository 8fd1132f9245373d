//! Password hashing (argon2id) and the sanity rules a new password must pass.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 128;

/// Passwords that appear at the top of every breach corpus, and their obvious stems.
const BREACHED_STEMS: &[&str] = &[
    "password", "passw0rd", "123456", "qwerty", "letmein", "welcome", "iloveyou", "admin",
    "abc123", "monkey", "dragon", "football", "baseball", "sunshine", "princess", "trustno1",
    "111111", "000000", "azerty", "changeme", "secret",
];

/// Why a password is refused; the text is shown to the user.
pub fn policy_violation(password: &str, email: &str) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Some(format!("must be at least {MIN_LENGTH} characters"));
    }
    if length > MAX_LENGTH {
        return Some(format!("must be at most {MAX_LENGTH} characters"));
    }
    let lower = password.to_lowercase();
    if BREACHED_STEMS.iter().any(|stem| lower.contains(stem)) {
        return Some("is too common: it appears in breached-password lists".to_string());
    }
    let distinct: std::collections::HashSet<char> = password.chars().collect();
    if distinct.len() < 4 {
        return Some("must use at least 4 different characters".to_string());
    }
    if is_sequence(&lower) {
        return Some("must not be a simple sequence".to_string());
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if local.len() >= 4 && lower.contains(&local) {
        return Some("must not contain your email address".to_string());
    }
    None
}

fn is_sequence(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() > 2
        && (bytes.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
            || bytes.windows(2).all(|w| w[1] == w[0].wrapping_sub(1)))
}

/// Hashes with argon2id and a random salt (PHC string). CPU-heavy: call from a blocking thread.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Verifies in constant time with respect to the password.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A valid hash of a random password, verified against when the account does not exist so that
/// unknown emails and wrong passwords take the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash(&uuid::Uuid::new_v4().to_string()).unwrap_or_default())
}

/// Runs hashing off the async runtime.
pub async fn hash_blocking(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub async fn verify_blocking(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn policy() {
        let e = "alice.smith@example.com";
        assert!(policy_violation("short", e).is_some());
        assert!(policy_violation("MyPassword2024!", e).is_some());
        assert!(policy_violation("aaaaaaaaaaaa", e).is_some());
        assert!(policy_violation("abcdefghijk", e).is_some());
        assert!(policy_violation("xalice.smith99", e).is_some());
        assert!(policy_violation("violet-tundra-42", e).is_none());
    }
}

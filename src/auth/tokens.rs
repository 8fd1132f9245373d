//! Access tokens: short-lived HS256 JWTs with pinned algorithm, issuer, audience and key id.
//!
//! Several signing keys may be valid at once (rotation): tokens are signed with the current key
//! and verified with whichever key their `kid` names.

use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Role;

pub const ISSUER: &str = "rapport";
pub const AUDIENCE: &str = "rapport-api";
pub const ACCESS_TTL_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: String,
    pub org: Option<String>,
    pub role: Role,
    /// Login session (refresh-token family) id.
    pub sid: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token names an unknown signing key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The signing keys: the first signs, all verify.
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("KeyRing").field("kids", &kids).finish()
    }
}

/// A key id that identifies a secret without revealing it.
fn key_id(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

impl KeyRing {
    /// `current` signs; `previous` keys still verify tokens issued before a rotation.
    pub fn new(current: &str, previous: &[String]) -> Self {
        let keys = std::iter::once(current)
            .chain(previous.iter().map(String::as_str))
            .filter(|s| !s.is_empty())
            .map(|secret| SigningKey {
                kid: key_id(secret.as_bytes()),
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
            })
            .collect();
        Self { keys }
    }

    pub fn issue(
        &self,
        user_id: &str,
        org_id: Option<&str>,
        role: Role,
        session_id: &str,
        now_secs: i64,
    ) -> Result<String, TokenError> {
        let key = self.keys.first().ok_or(TokenError::UnknownKey)?;
        let claims = AccessClaims {
            sub: user_id.to_string(),
            org: org_id.map(str::to_owned),
            role,
            sid: session_id.to_string(),
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now_secs,
            exp: now_secs + ACCESS_TTL_SECS,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let header = Header {
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        encode(&header, &claims, &key.encoding).map_err(|_| TokenError::Invalid)
    }

    /// Verifies signature, algorithm (HS256 only), `kid`, `exp`, `iss` and `aud`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        decode::<AccessClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn ring() -> KeyRing {
        KeyRing::new("a-signing-key-of-sufficient-length-000", &[])
    }

    #[test]
    fn issued_tokens_verify() {
        let token = ring()
            .issue("u1", Some("o1"), Role::Owner, "s1", now())
            .unwrap();
        let claims = ring().verify(&token).unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.role, Role::Owner);
    }

    #[test]
    fn expired_tokens_fail() {
        let token = ring()
            .issue("u1", None, Role::Member, "s1", now() - 3600)
            .unwrap();
        assert_eq!(ring().verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn alg_none_is_rejected() {
        let token = ring().issue("u1", None, Role::Member, "s1", now()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{header}.{}.", parts[1]);
        assert!(ring().verify(&forged).is_err());
    }

    #[test]
    fn other_keys_and_tampering_are_rejected() {
        let other = KeyRing::new("another-key-entirely-different-0000000", &[]);
        let token = other
            .issue("u1", None, Role::Superuser, "s1", now())
            .unwrap();
        assert_eq!(ring().verify(&token), Err(TokenError::UnknownKey));
        let token = ring().issue("u1", None, Role::Member, "s1", now()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({"sub":"u1","role":"superuser"})).unwrap(),
        );
        assert!(ring().verify(&parts.join(".")).is_err());
    }

    #[test]
    fn rotated_keys_still_verify() {
        let old = ring();
        let token = old.issue("u1", None, Role::Member, "s1", now()).unwrap();
        let rotated = KeyRing::new(
            "the-new-signing-key-of-sufficient-len",
            &["a-signing-key-of-sufficient-length-000".to_string()],
        );
        assert!(rotated.verify(&token).is_ok());
    }
}

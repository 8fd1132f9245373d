//! Pre-signed media URLs: `…/media/{key}?expires={unix seconds}&sig={hex HMAC-SHA256}` over
//! `"{key}\n{expires}"`. Anyone holding the URL may fetch the file until it expires; changing the
//! key or the expiry breaks the signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Expired,
    Invalid,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

impl UrlSigner {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, key: &str, expires: i64) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    pub fn sign(&self, key: &str, expires: i64) -> String {
        hex::encode(self.mac(key, expires).finalize().into_bytes())
    }

    /// The query string for `key`, valid until `expires` (unix seconds).
    pub fn query(&self, key: &str, expires: i64) -> String {
        format!("expires={expires}&sig={}", self.sign(key, expires))
    }

    /// Checks in constant time; the expiry is checked only for an authentic URL.
    pub fn check(&self, key: &str, expires: i64, sig: &str, now_secs: i64) -> SignatureCheck {
        let Ok(sig) = hex::decode(sig) else {
            return SignatureCheck::Invalid;
        };
        if self.mac(key, expires).verify_slice(&sig).is_err() {
            return SignatureCheck::Invalid;
        }
        if now_secs > expires {
            SignatureCheck::Expired
        } else {
            SignatureCheck::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_expire_and_tampering_is_detected() {
        let signer = UrlSigner::new(b"k");
        let sig = signer.sign("a.wav", 100);
        assert_eq!(signer.check("a.wav", 100, &sig, 50), SignatureCheck::Valid);
        assert_eq!(
            signer.check("a.wav", 100, &sig, 101),
            SignatureCheck::Expired
        );
        assert_eq!(
            signer.check("b.wav", 100, &sig, 50),
            SignatureCheck::Invalid
        );
        assert_eq!(
            signer.check("a.wav", 200, &sig, 50),
            SignatureCheck::Invalid
        );
        assert_eq!(
            signer.check("a.wav", 100, "zz", 50),
            SignatureCheck::Invalid
        );
        assert_eq!(
            UrlSigner::new(b"other").check("a.wav", 100, &sig, 50),
            SignatureCheck::Invalid
        );
    }
}

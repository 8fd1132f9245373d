//! Payments through Stripe: the HTTP API client (checkout sessions, subscription changes) and
//! webhook signature verification. Knows nothing of HTTP routes or storage.

pub mod signature;
pub mod stripe;

pub use signature::{verify_signature, SignatureError};
pub use stripe::{StripeClient, StripeError};

/// Credit packs on sale: `(name, credits, price in cents)`.
pub const CREDIT_PACKS: &[(&str, i64, i64)] = &[
    ("starter", 3, 499),
    ("seeker", 10, 1299),
    ("architect", 30, 2999),
];

pub fn credit_pack(name: &str) -> Option<(i64, i64)> {
    CREDIT_PACKS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, credits, cents)| (*credits, *cents))
}

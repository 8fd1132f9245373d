//! A small client for Stripe's HTTP API: form-encoded requests, bearer secret key, an
//! `Idempotency-Key` on every write so a retried request never creates a second object.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret_key: SecretString,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("could not reach Stripe: {0}")]
    Network(String),
    /// Stripe refused the request; its message is safe to log (it never echoes the key).
    #[error("Stripe answered {status}: {message}")]
    Api { status: u16, message: String },
}

/// The fields of a Checkout Session this server reads.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
}

/// The fields of a Subscription this server reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub pause_collection: Option<serde_json::Value>,
    #[serde(default)]
    pub items: Option<SubscriptionItems>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItems {
    pub data: Vec<SubscriptionItem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

impl StripeClient {
    pub fn new(base: &str, secret_key: SecretString) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            secret_key,
        })
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.secret_key.expose_secret())
            .form(form);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| StripeError::Network(e.without_url().to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| StripeError::Network(e.without_url().to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .ok()
                .and_then(|b| b.error.message)
                .unwrap_or_else(|| "no error message".into());
            return Err(StripeError::Api {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| StripeError::Api {
            status: status.as_u16(),
            message: format!("unreadable answer: {e}"),
        })
    }

    /// `POST /v1/checkout/sessions` with the given form fields.
    pub async fn create_checkout_session(
        &self,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        self.send(
            reqwest::Method::POST,
            "/v1/checkout/sessions",
            form,
            Some(idempotency_key),
        )
        .await
    }

    /// `POST /v1/subscriptions/{id}`: pause, resume, cancel at period end, change the price.
    pub async fn update_subscription(
        &self,
        id: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Subscription, StripeError> {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/subscriptions/{id}"),
            form,
            Some(idempotency_key),
        )
        .await
    }

    /// `DELETE /v1/subscriptions/{id}`: cancel now.
    pub async fn cancel_subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("/v1/subscriptions/{id}"),
            &[],
            None,
        )
        .await
    }
}

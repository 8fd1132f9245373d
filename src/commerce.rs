//! The providers behind the content library, the marketplace and payments, assembled once from
//! settings and shared by their HTTP handlers: speech, media storage and URL signing, the
//! metadata cache, and the Stripe client.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::config::Settings;
use crate::media::{LocalStore, MediaStore, TextToSpeech, UrlSigner};
use crate::payments::StripeClient;
use crate::storage::cache::MetadataCache;

pub struct Commerce {
    pub tts: Option<Arc<dyn TextToSpeech>>,
    pub store: Arc<dyn MediaStore>,
    pub signer: UrlSigner,
    pub url_ttl: Duration,
    pub cache: MetadataCache,
    pub stripe: Option<StripeClient>,
    pub webhook_secret: Option<SecretString>,
    pub webhook_tolerance_secs: i64,
}

impl Commerce {
    /// `signing_root` is the access-token key: media URLs are signed with a key derived from it,
    /// so no extra secret has to be configured, and rotating it invalidates outstanding URLs.
    pub fn new(settings: &Settings, signing_root: &str) -> anyhow::Result<Self> {
        let mut mac = Hmac::<Sha256>::new_from_slice(signing_root.as_bytes())
            .map_err(|_| anyhow::anyhow!("invalid signing key"))?;
        mac.update(b"rapport media url signing v1");
        let media_key = mac.finalize().into_bytes();
        let stripe = match &settings.stripe.secret_key {
            Some(key) => Some(StripeClient::new(
                &settings.stripe.api_base,
                SecretString::from(key.expose_secret().to_string()),
            )?),
            None => None,
        };
        let tts = settings.media.tts()?;
        match &tts {
            Some(tts) => tracing::info!(provider = tts.id(), "text-to-speech enabled"),
            None => {
                tracing::info!("no text-to-speech available: audio will be reported unavailable")
            }
        }
        Ok(Self {
            tts,
            store: Arc::new(LocalStore::new(settings.media_dir())),
            signer: UrlSigner::new(&media_key),
            url_ttl: settings.media.url_ttl,
            cache: MetadataCache::new(10_000, Duration::from_secs(60)),
            stripe,
            webhook_secret: settings.stripe.webhook_secret.clone(),
            webhook_tolerance_secs: settings.stripe.webhook_tolerance_secs,
        })
    }
}

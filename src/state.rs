//! Shared application state handed to every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::tokens::KeyRing;
use crate::config::Settings;
use crate::http::rate_limit::RateLimits;
use crate::hub::Hub;
use crate::storage::Db;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub started_at: Instant,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Background work that shutdown waits for.
    pub tasks: TaskTracker,
    pub keys: Arc<KeyRing>,
    pub hub: Hub,
    pub knowledge: crate::knowledge::Knowledge,
    /// Grounded answers for chat sessions and the internal API.
    pub responder: Arc<crate::chat::Responder>,
    pub rate_limits: Arc<RateLimits>,
    /// The serialised OpenAPI document, built once at start-up.
    pub openapi_json: Arc<Bytes>,
    /// Content library, marketplace and payment providers.
    pub commerce: Arc<crate::commerce::Commerce>,
    draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, db: Db) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let current = settings
            .jwt_secret
            .as_ref()
            .map(|s| s.expose_secret().to_string())
            .unwrap_or_default();
        let previous: Vec<String> = settings
            .jwt_previous_secrets
            .iter()
            .map(|s| s.expose_secret().to_string())
            .collect();
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let knowledge = crate::knowledge::Knowledge::new(
            db.clone(),
            settings.knowledge.clone(),
            tasks.clone(),
            shutdown.clone(),
        )?;
        let llm = settings.llm.provider()?;
        let responder = Arc::new(crate::chat::Responder::new(
            db.clone(),
            knowledge.clone(),
            llm.clone(),
        ));
        let hub = Hub::new(
            db.clone(),
            settings.hub.clone(),
            llm,
            responder.clone(),
            tasks.clone(),
        )?;
        let commerce = Arc::new(crate::commerce::Commerce::new(&settings, &current)?);
        Ok(Self {
            commerce,
            hub,
            knowledge,
            responder,
            keys: Arc::new(KeyRing::new(&current, &previous)),
            rate_limits: Arc::new(RateLimits::new(&settings.rate_limits)),
            settings,
            db,
            started_at: Instant::now(),
            shutdown,
            tasks,
            openapi_json: Arc::new(Bytes::new()),
            draining: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

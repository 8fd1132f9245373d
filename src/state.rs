//! Shared application state handed to every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
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
    /// The serialised OpenAPI document, built once at start-up.
    pub openapi_json: Arc<Bytes>,
    draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, db: Db) -> Self {
        Self {
            settings,
            db,
            started_at: Instant::now(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            openapi_json: Arc::new(Bytes::new()),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

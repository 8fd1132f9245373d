//! The knowledge-base engine: durable ingestion jobs (extract → chunk → embed), hybrid search
//! and context retrieval for answers. Drives the pure building blocks of [`crate::rag`] with
//! storage and an [`Embedder`]; knows nothing of HTTP.

mod ingest;
mod search;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use secrecy::SecretString;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::rag::chunk::ChunkConfig;
use crate::rag::embed::{Embedder, HashEmbedder, OpenAiEmbedder, OpenAiEmbedderConfig};
use crate::rag::extract::ExtractLimits;
use crate::storage::knowledge::ModelRef;
use crate::storage::Db;

pub use ingest::kind_name as document_kind_name;
pub use search::{build as build_context, is_relevant, SearchHit, SearchMode};

pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// Knowledge-base settings: the embedder, upload limits, chunking and job retries.
#[derive(Debug, Clone)]
pub struct KnowledgeSettings {
    /// OpenAI-compatible embeddings API base (`…/v1`); unset uses the built-in hash embedder.
    pub embed_base_url: Option<String>,
    pub embed_api_key: Option<SecretString>,
    pub embed_model: String,
    /// Vector length; defaults to 384 for the built-in embedder and 1536 for a service.
    pub embed_dimension: Option<usize>,
    /// Retries of one embedding request inside an attempt (network errors, 429, 5xx).
    pub embed_retries: u32,
    /// Largest accepted document.
    pub max_upload_bytes: usize,
    pub chunk: ChunkConfig,
    /// Attempts of an ingestion job before the entry is marked failed.
    pub job_attempts: i64,
    /// Delay before the second attempt; doubles with each further one.
    pub job_backoff: Duration,
    /// Jobs run at once in this process.
    pub job_concurrency: usize,
    /// Shared secret of the internal endpoints (`X-Internal-Key`); unset: superusers only.
    pub internal_key: Option<SecretString>,
}

impl Default for KnowledgeSettings {
    fn default() -> Self {
        Self {
            embed_base_url: None,
            embed_api_key: None,
            embed_model: "text-embedding-3-small".into(),
            embed_dimension: None,
            embed_retries: 4,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            chunk: ChunkConfig::default(),
            job_attempts: 4,
            job_backoff: Duration::from_secs(5),
            job_concurrency: 2,
            internal_key: None,
        }
    }
}

impl KnowledgeSettings {
    pub fn embedder(&self) -> anyhow::Result<Arc<dyn Embedder>> {
        Ok(match &self.embed_base_url {
            Some(base_url) => {
                let mut config = OpenAiEmbedderConfig::new(
                    base_url.clone(),
                    self.embed_model.clone(),
                    self.embed_dimension.unwrap_or(1536),
                );
                config.api_key = self.embed_api_key.clone();
                config.max_retries = self.embed_retries;
                Arc::new(
                    OpenAiEmbedder::new(config)
                        .map_err(|e| anyhow::anyhow!("configuring the embedder: {e}"))?,
                )
            }
            None => Arc::new(
                HashEmbedder::new(
                    self.embed_dimension
                        .unwrap_or(crate::rag::embed::DEFAULT_DIMENSION),
                )
                .map_err(|e| anyhow::anyhow!("configuring the embedder: {e}"))?,
            ),
        })
    }

    pub fn extract_limits(&self) -> ExtractLimits {
        ExtractLimits {
            max_bytes: self.max_upload_bytes,
            ..ExtractLimits::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("{0}")]
    Embed(#[from] crate::rag::embed::EmbedError),
}

/// The knowledge-base engine; cheap to clone.
#[derive(Clone)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    embedder: Arc<dyn Embedder>,
    settings: KnowledgeSettings,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    wake: Notify,
    running: DashMap<String, ()>,
    slots: Arc<Semaphore>,
}

impl Knowledge {
    pub fn new(
        db: Db,
        settings: KnowledgeSettings,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let embedder = settings.embedder()?;
        Ok(Self::with_embedder(db, settings, embedder, tasks, shutdown))
    }

    pub fn with_embedder(
        db: Db,
        settings: KnowledgeSettings,
        embedder: Arc<dyn Embedder>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(settings.job_concurrency.max(1)));
        Self {
            inner: Arc::new(Inner {
                db,
                embedder,
                settings,
                tasks,
                shutdown,
                wake: Notify::new(),
                running: DashMap::new(),
                slots,
            }),
        }
    }

    pub fn settings(&self) -> &KnowledgeSettings {
        &self.inner.settings
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.inner.embedder
    }

    /// The model every stored vector is compared under.
    pub fn model(&self) -> ModelRef<'_> {
        ModelRef {
            id: self.inner.embedder.model_id(),
            dimension: self.inner.embedder.dimension(),
        }
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Tells the worker a job was queued, so it starts now rather than at the next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Starts the worker: resumes jobs a stopped process left running, prepares the vector index,
    /// queues re-embedding of entries made with another model, then runs due jobs until shutdown.
    pub fn spawn_worker(&self) {
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            match this.db().requeue_orphaned_kb_jobs().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "resuming ingestion jobs left by a previous run"),
                Err(error) => tracing::error!(%error, "could not requeue ingestion jobs"),
            }
            if let Err(error) = this.db().prepare_vector_index(&this.model()).await {
                tracing::warn!(%error, "could not create the vector index; searches scan exactly");
            }
            match this.rebuild_stale(None).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    entries = n,
                    model = this.model().id,
                    "embedding model changed: re-embedding knowledge bases"
                ),
                Err(error) => tracing::error!(%error, "could not queue re-embedding"),
            }
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = this.inner.wake.notified() => {}
                    () = this.inner.shutdown.cancelled() => break,
                }
                match this.db().due_kb_jobs(32).await {
                    Ok(due) => {
                        for job_id in due {
                            this.start(job_id);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "polling ingestion jobs failed"),
                }
            }
        });
    }

    /// Queues a rebuild of the entries (of one organisation, or all) whose vectors are not of the
    /// current model. Returns how many were queued.
    pub async fn rebuild_stale(&self, org_id: Option<&str>) -> sqlx::Result<usize> {
        let stale = self.db().kbs_needing_model(self.model().id, org_id).await?;
        for kb in &stale {
            self.db()
                .queue_kb_job(kb, crate::storage::knowledge::JobKind::Embed)
                .await?;
        }
        if !stale.is_empty() {
            self.wake();
        }
        Ok(stale.len())
    }

    /// Runs a queued job in this process unless it already runs here.
    fn start(&self, job_id: String) {
        if self.inner.running.insert(job_id.clone(), ()).is_some() {
            return;
        }
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            if let Ok(_slot) = this.inner.slots.clone().acquire_owned().await {
                ingest::run(&this, &job_id).await;
            }
            this.inner.running.remove(&job_id);
        });
    }
}

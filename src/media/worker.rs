//! The audio job worker: synthesises the audio of freshly generated content after its text is
//! saved (and paid for), so speech never affects the credit charged for the text.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{speakable, MediaStore, TextToSpeech, TtsError};
use crate::storage::Db;

const MAX_ATTEMPTS: i64 = 3;

pub struct AudioWorker {
    pub db: Db,
    pub tts: Option<Arc<dyn TextToSpeech>>,
    pub store: Arc<dyn MediaStore>,
    /// Called with a content id whose audio changed (to drop cached metadata).
    pub on_change: Arc<dyn Fn(&str) + Send + Sync>,
    pub poll: Duration,
}

impl AudioWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut first = true;
        let mut tick = tokio::time::interval(self.poll);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            // The first pass also takes jobs a stopped process left running.
            let claimed = match self.db.claim_audio_jobs(8, first).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "could not claim audio jobs");
                    continue;
                }
            };
            first = false;
            for (content_id, attempts) in claimed {
                self.run_one(&content_id, attempts).await;
                (self.on_change)(&content_id);
            }
        }
    }

    async fn run_one(&self, content_id: &str, attempts: i64) {
        let Some(tts) = &self.tts else {
            let _ = self
                .db
                .finish_audio_job(content_id, "unavailable", None, None)
                .await;
            return;
        };
        let body: Option<(String,)> =
            sqlx::query_as("SELECT body FROM content_items WHERE id = $1")
                .bind(content_id)
                .fetch_optional(&self.db.pool)
                .await
                .unwrap_or(None);
        let Some((body,)) = body else {
            let _ = self
                .db
                .finish_audio_job(content_id, "failed", None, Some("content is gone"))
                .await;
            return;
        };
        let result = match tts.synthesize(&speakable(&body)).await {
            Ok(audio) => {
                let key = format!("{content_id}.{}", audio.extension);
                match self.store.put(&key, &audio.bytes).await {
                    Ok(()) => Ok(key),
                    Err(e) => Err(TtsError::Transient(format!("storing audio: {e}"))),
                }
            }
            Err(e) => Err(e),
        };
        let outcome = match result {
            Ok(key) => {
                self.db
                    .finish_audio_job(content_id, "ready", Some(&key), None)
                    .await
            }
            Err(TtsError::Transient(message)) if attempts < MAX_ATTEMPTS => {
                let delay = 1000 * (1 << attempts.min(6));
                self.db
                    .retry_audio_job_later(content_id, &message, delay)
                    .await
            }
            Err(error) => {
                tracing::warn!(%content_id, %error, "audio synthesis failed");
                self.db
                    .finish_audio_job(content_id, "failed", None, Some(&error.to_string()))
                    .await
            }
        };
        if let Err(error) = outcome {
            tracing::error!(%content_id, %error, "recording an audio job failed");
        }
    }
}

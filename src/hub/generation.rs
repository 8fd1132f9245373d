//! Generation jobs: the practice text is written by the model in a durable background job; the
//! content item is stored and exactly one credit is spent, in one transaction, only on success.

use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::actor::{Command, GenerationEvent};
use super::Hub;
use crate::conversation::GenerationSpec;
use crate::llm::{ChatMessage, ChatRequest, Purpose, Slot, StreamEvent};
use crate::storage::content::NewContent;
use crate::storage::credits::Spend;
use crate::storage::{new_id, now_ms};

const MAX_ATTEMPTS: i64 = 3;

/// A rough promise to show the user: longer practices take longer to write.
pub fn estimated_seconds(spec: &GenerationSpec) -> u32 {
    10 + u32::from(spec.duration_minutes.get()) * 2
}

/// Runs a queued job now (in this process), unless it is already running here.
pub fn start(hub: &Hub, job_id: String) {
    if hub.inner.running_jobs.contains_key(&job_id) {
        return;
    }
    let cancel = CancellationToken::new();
    hub.inner
        .running_jobs
        .insert(job_id.clone(), cancel.clone());
    let hub = hub.clone();
    hub.inner.tasks.clone().spawn(async move {
        run(&hub, &job_id, cancel).await;
        hub.inner.running_jobs.remove(&job_id);
    });
}

pub fn cancel(hub: &Hub, job_id: &str) {
    if let Some((_, token)) = hub.inner.running_jobs.remove(job_id) {
        token.cancel();
    }
}

/// Picks up jobs after a restart and retries failed attempts when their backoff has passed.
pub fn spawn_worker(hub: Hub) {
    let tasks = hub.inner.tasks.clone();
    tasks.spawn(async move {
        match hub.db().requeue_orphaned_jobs().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "resuming generation jobs left by a previous run"),
            Err(error) => tracing::error!(%error, "could not requeue generation jobs"),
        }
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = hub.inner.draining.cancelled() => break,
            }
            if let Ok(due) = hub.db().due_jobs(32).await {
                for job_id in due {
                    start(&hub, job_id);
                }
            }
        }
    });
}

async fn notify(hub: &Hub, session_id: &str, job_id: &str, event: GenerationEvent) {
    let command = Command::Generation(Box::new((job_id.to_string(), event)));
    if let Err(error) = hub.send(session_id, command).await {
        tracing::debug!(%session_id, ?error, "session not reachable for a generation event");
    }
}

/// Records a final failure (no credit spent) and tells the session.
async fn fail(hub: &Hub, session_id: &str, job_id: &str, code: &str, message: String) {
    let _ = hub
        .db()
        .finish_job(job_id, "failed", None, Some(&message))
        .await;
    let event = GenerationEvent::Failed {
        code: code.to_string(),
        message,
    };
    notify(hub, session_id, job_id, event).await;
}

async fn run(hub: &Hub, job_id: &str, cancel: CancellationToken) {
    let db = hub.db().clone();
    let job = match db.claim_job(job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%job_id, %error, "could not claim a generation job");
            return;
        }
    };
    let Ok(spec) = serde_json::from_str::<GenerationSpec>(&job.spec) else {
        let _ = db
            .finish_job(job_id, "failed", None, Some("unreadable job spec"))
            .await;
        return;
    };
    notify(
        hub,
        &job.session_id,
        job_id,
        GenerationEvent::Progress {
            stage: "writing",
            percent: 5,
        },
    )
    .await;

    let text = match write(hub, &job.session_id, job_id, &spec, cancel.clone()).await {
        Ok(text) => text,
        Err(error) if cancel.is_cancelled() || error.code() == "cancelled" => {
            let _ = db.finish_job(job_id, "cancelled", None, None).await;
            return;
        }
        Err(error) => {
            if error.is_transient() && job.attempts < MAX_ATTEMPTS {
                let delay = 500 * (1 << job.attempts.min(6));
                let _ = db.retry_job_later(job_id, &error.to_string(), delay).await;
                return;
            }
            fail(
                hub,
                &job.session_id,
                job_id,
                error.code(),
                error.to_string(),
            )
            .await;
            return;
        }
    };
    notify(
        hub,
        &job.session_id,
        job_id,
        GenerationEvent::Progress {
            stage: "saving",
            percent: 95,
        },
    )
    .await;
    match save(hub, &job, &spec, &text).await {
        Ok(Saved::Done {
            content_id,
            balance,
        }) => {
            notify(
                hub,
                &job.session_id,
                job_id,
                GenerationEvent::Succeeded {
                    content_id,
                    credits_remaining: balance,
                },
            )
            .await;
        }
        Ok(Saved::NoCredit) => {
            let message = "no credit left to pay for this".to_string();
            fail(
                hub,
                &job.session_id,
                job_id,
                "insufficient_credits",
                message,
            )
            .await;
        }
        Err(error) => {
            tracing::error!(%job_id, %error, "saving generated content failed");
            let _ = db.retry_job_later(job_id, "saving failed", 1000).await;
        }
    }
}

async fn write(
    hub: &Hub,
    session_id: &str,
    job_id: &str,
    spec: &GenerationSpec,
    cancel: CancellationToken,
) -> Result<String, crate::llm::LlmError> {
    let content_type = spec.content_type.as_str().replace('_', " ");
    let mut slots = vec![
        Slot::new("goal", spec.intent.as_str()),
        Slot::new("time", spec.time_preference.as_str()),
        Slot::new(
            "duration",
            format!("{} minutes", spec.duration_minutes.get()),
        ),
        Slot::new("depth", spec.depth.as_str()),
    ];
    if let Some(tone) = spec.tone {
        slots.push(Slot::new("tone", tone.as_str()));
    }
    let prompt = format!(
        "Write a personal {content_type} for {time} practice, about {minutes} minutes long, {depth} in depth, \
         whose purpose is: {goal}. Structure it with a title line, then sections: Opening, Body, Closing.",
        time = spec.time_preference.as_str(),
        minutes = spec.duration_minutes.get(),
        depth = spec.depth.as_str(),
        goal = spec.intent.as_str(),
    );
    let request = ChatRequest::new(
        vec![
            ChatMessage::system("You write calm, personal wellbeing practices in plain language."),
            ChatMessage::user(prompt),
        ],
        Purpose::Generation {
            content_type: spec.content_type.as_str().to_string(),
            title: None,
            slots,
        },
    );
    let mut stream = hub.llm().stream(request, cancel).await?;
    let mut text = String::new();
    let mut chunks = 0u32;
    let expected = 40 + u32::from(spec.duration_minutes.get()) * 8;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(delta) => {
                text.push_str(&delta);
                chunks += 1;
                if chunks % 25 == 0 {
                    let percent = (5 + chunks * 85 / expected.max(1)).min(90) as u8;
                    notify(
                        hub,
                        session_id,
                        job_id,
                        GenerationEvent::Progress {
                            stage: "writing",
                            percent,
                        },
                    )
                    .await;
                }
            }
            StreamEvent::Usage(_) => {}
            StreamEvent::Done { .. } => break,
        }
    }
    Ok(text)
}

enum Saved {
    Done { content_id: String, balance: i64 },
    NoCredit,
}

fn title_of(text: &str, spec: &GenerationSpec) -> String {
    let first = text
        .lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let first = first
        .strip_prefix(crate::llm::OFFLINE_LABEL)
        .unwrap_or(first)
        .trim();
    if first.is_empty() || first.chars().count() > 120 {
        let mut words: String = spec.intent.as_str().chars().take(60).collect();
        words.insert_str(0, "For ");
        words
    } else {
        first.to_string()
    }
}

/// Stores the content and spends the credit in one transaction; a replay spends nothing more.
async fn save(
    hub: &Hub,
    job: &crate::storage::jobs::JobRow,
    spec: &GenerationSpec,
    text: &str,
) -> Result<Saved, sqlx::Error> {
    let db = hub.db();
    let mut tx = db.pool.begin().await?;
    let balance = match db.spend_credits(&mut tx, &job.user_id, 1, &job.id).await? {
        Spend::Charged(balance) => balance,
        Spend::AlreadyCharged(balance) => {
            // A previous run of this job already saved and paid; only finish the job record.
            tx.rollback().await?;
            let content_id = db.job(&job.id).await?.and_then(|j| j.content_id);
            if let Some(content_id) = content_id {
                return Ok(Saved::Done {
                    content_id,
                    balance,
                });
            }
            return Ok(Saved::NoCredit);
        }
        Spend::Insufficient(_) => {
            tx.rollback().await?;
            return Ok(Saved::NoCredit);
        }
    };
    let content_id = new_id();
    let tags = serde_json::json!([spec.time_preference.as_str(), spec.depth.as_str()]).to_string();
    db.insert_content(
        &mut tx,
        NewContent {
            id: &content_id,
            org_id: &job.org_id,
            user_id: &job.user_id,
            content_type: spec.content_type.as_str(),
            title: &title_of(text, spec),
            body: text,
            depth: Some(spec.depth.as_str()),
            duration_minutes: Some(i64::from(spec.duration_minutes.get())),
            time_preference: Some(spec.time_preference.as_str()),
            intent: Some(spec.intent.as_str()),
            tags: &tags,
            source_session_id: Some(&job.session_id),
            generated_by: hub.llm().id(),
        },
    )
    .await?;
    // Audio follows as its own durable job, queued with the text so it cannot be lost; it never
    // touches the credit already charged here.
    db.enqueue_audio_job(&mut tx, &content_id).await?;
    sqlx::query(
        "UPDATE generation_jobs SET status = 'succeeded', content_id = $2, error = NULL, updated_at = $3 WHERE id = $1",
    )
    .bind(&job.id)
    .bind(&content_id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Saved::Done {
        content_id,
        balance,
    })
}

//! The frame log: every numbered frame is written to storage by one writer task that commits many
//! sessions' frames per transaction (group commit), so streaming thousands of tokens per second costs
//! a handful of transactions, not one per token.
//!
//! A barrier is answered once everything queued before it is committed; resume uses it to read a
//! complete history from storage.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::storage::conversations::FrameRecord;
use crate::storage::Db;

enum LogOp {
    Append(FrameRecord),
    Barrier(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct FrameLog {
    tx: mpsc::Sender<LogOp>,
}

const QUEUE: usize = 65_536;
const BATCH: usize = 4_096;

impl FrameLog {
    /// Starts the writer; once `stop` is cancelled it drains the queue and ends. Cancel `stop` only
    /// after the session actors have ended, so their last frames are kept.
    pub fn spawn(db: Db, tasks: &tokio_util::task::TaskTracker, stop: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tasks.spawn(write_loop(db, rx, stop));
        Self { tx }
    }

    pub async fn append(&self, record: FrameRecord) {
        if self.tx.send(LogOp::Append(record)).await.is_err() {
            tracing::error!("frame log writer is gone; frame not stored");
        }
    }

    /// Waits until every frame appended before this call is committed.
    pub async fn barrier(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(LogOp::Barrier(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn write_loop(db: Db, mut rx: mpsc::Receiver<LogOp>, shutdown: CancellationToken) {
    let mut ops = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut ops, BATCH) => n,
            () = shutdown.cancelled() => {
                // Drain what is queued, then stop.
                rx.close();
                rx.recv_many(&mut ops, BATCH).await
            }
        };
        if received == 0 {
            break;
        }
        let mut frames = Vec::with_capacity(ops.len());
        let mut barriers = Vec::new();
        for op in ops.drain(..) {
            match op {
                LogOp::Append(frame) => frames.push(frame),
                LogOp::Barrier(done) => barriers.push(done),
            }
        }
        let mut attempt = 0u32;
        while let Err(error) = db.append_frames(&frames).await {
            attempt += 1;
            if attempt >= 5 {
                tracing::error!(%error, lost = frames.len(), "could not store frames");
                break;
            }
            tracing::warn!(%error, attempt, "storing frames failed; retrying");
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

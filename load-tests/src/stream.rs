//! Scenario `stream`: many sessions streaming answers relayed from a local upstream, against the same
//! client pattern reading the upstream directly.
//!
//! Per token we know when the upstream wrote it (the mock stamps it), so we measure the delivery
//! delay of every token (upstream write → client read) directly and through the server; the
//! difference is what the server adds. Time to first token runs from the client's request frame
//! (`session.start` or `message`) to the first `token` frame, and from the HTTP request to the first
//! SSE event in the direct run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::common::{self, dist_ms, now_us, Dist, ProcCost, ProcSample, SeqCheck, Server};
use crate::mock::{parse_delta, MockConfig, MockProcess};

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// Concurrent streams, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "50,200,1000")]
    pub concurrency: Vec<usize>,
    /// Streams per session, one after another (the greeting, then answers to messages).
    #[arg(long, default_value_t = 3)]
    pub streams: usize,
    /// Chunks per upstream answer.
    #[arg(long, default_value_t = 64)]
    pub chunks: usize,
    /// Milliseconds between upstream chunks.
    #[arg(long, default_value_t = 20)]
    pub pace_ms: u64,
    /// Sessions start spread evenly over this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub ramp_ms: u64,
    /// Loopback source addresses for client sockets.
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    #[arg(long, default_value = "target/release/rapport")]
    pub server_bin: PathBuf,
    #[arg(long, default_value = "load-tests/results/stream.json")]
    pub out: PathBuf,
}

/// What one stream saw.
#[derive(Default)]
struct StreamSamples {
    ttft_us: Vec<u64>,
    delay_us: Vec<u64>,
    gap_us: Vec<u64>,
    tokens: u64,
    missing: u64,
    out_of_order: u64,
    content_mismatch: u64,
    seq_errors: u64,
    errors: Vec<String>,
}

impl StreamSamples {
    fn merge(&mut self, other: StreamSamples) {
        self.ttft_us.extend(other.ttft_us);
        self.delay_us.extend(other.delay_us);
        self.gap_us.extend(other.gap_us);
        self.tokens += other.tokens;
        self.missing += other.missing;
        self.out_of_order += other.out_of_order;
        self.content_mismatch += other.content_mismatch;
        self.seq_errors += other.seq_errors;
        if self.errors.len() < 20 {
            self.errors.extend(other.errors.into_iter().take(5));
        }
    }
}

/// Tokens of one answer as they arrive: checks order and completeness, records timings.
struct TokenTrack {
    started_us: u64,
    next_index: usize,
    last_at: Option<u64>,
    text: String,
}

impl TokenTrack {
    fn new(started_us: u64) -> Self {
        Self {
            started_us,
            next_index: 0,
            last_at: None,
            text: String::new(),
        }
    }

    fn token(&mut self, delta: &str, at: u64, samples: &mut StreamSamples) {
        self.text.push_str(delta);
        for (index, emitted) in parse_delta(delta) {
            if self.last_at.is_none() {
                samples.ttft_us.push(at.saturating_sub(self.started_us));
            }
            if let Some(previous) = self.last_at {
                samples.gap_us.push(at.saturating_sub(previous));
            }
            self.last_at = Some(at);
            samples.delay_us.push(at.saturating_sub(emitted));
            samples.tokens += 1;
            if index != self.next_index {
                samples.out_of_order += 1;
            }
            self.next_index = index + 1;
        }
    }

    fn finish(&self, chunks: usize, samples: &mut StreamSamples) {
        if self.next_index < chunks {
            samples.missing += (chunks - self.next_index) as u64;
        }
    }
}

#[derive(Debug, Serialize)]
struct Side {
    streams: usize,
    tokens: u64,
    ttft_ms: Dist,
    token_delay_ms: Dist,
    inter_token_gap_ms: Dist,
    missing_tokens: u64,
    out_of_order_tokens: u64,
    content_mismatches: u64,
    seq_errors: u64,
    errors: Vec<String>,
    wall_s: f64,
    generator: ProcCost,
    upstream_mock: ProcCost,
    server: Option<ProcCost>,
    machine: Value,
}

#[derive(Debug, Serialize)]
struct Added {
    ttft_p50_ms: f64,
    ttft_p99_ms: f64,
    token_delay_p50_ms: f64,
    token_delay_p99_ms: f64,
    inter_token_gap_p50_ms: f64,
    inter_token_gap_p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Level {
    concurrency: usize,
    direct: Side,
    relayed: Side,
    added: Added,
}

pub async fn run(args: StreamArgs) -> Result<()> {
    let config = MockConfig {
        chunks: args.chunks,
        pace: Duration::from_millis(args.pace_ms),
    };
    let mock = MockProcess::spawn(config).await?;
    let server = Server::start(
        &args.server_bin,
        &[
            ("RAPPORT_LLM_BASE_URL", format!("http://{}/v1", mock.addr)),
            // Measure the relay itself: no extra model call per message for slot extraction.
            ("RAPPORT_LLM_SLOT_EXTRACTION", "parser".to_string()),
        ],
    )
    .await?;
    println!(
        "stream: server pid {} at {}, upstream mock pid {} at {}",
        server.pid, server.addr, mock.pid, mock.addr
    );
    let max = args.concurrency.iter().copied().max().unwrap_or(1);
    let accounts = max.div_ceil(250).max(1);
    let tokens = common::register_owners(&server, accounts, "stream").await?;
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let direct = direct_run(&args, &mock, concurrency).await?;
        let relayed = relay_run(&args, &server, &mock, &tokens, concurrency).await?;
        let added = Added {
            ttft_p50_ms: common::round3(relayed.ttft_ms.p50 - direct.ttft_ms.p50),
            ttft_p99_ms: common::round3(relayed.ttft_ms.p99 - direct.ttft_ms.p99),
            token_delay_p50_ms: common::round3(
                relayed.token_delay_ms.p50 - direct.token_delay_ms.p50,
            ),
            token_delay_p99_ms: common::round3(
                relayed.token_delay_ms.p99 - direct.token_delay_ms.p99,
            ),
            inter_token_gap_p50_ms: common::round3(
                relayed.inter_token_gap_ms.p50 - direct.inter_token_gap_ms.p50,
            ),
            inter_token_gap_p99_ms: common::round3(
                relayed.inter_token_gap_ms.p99 - direct.inter_token_gap_ms.p99,
            ),
        };
        println!(
            "stream c={concurrency}: TTFT p50/p99 direct {:.2}/{:.2} ms, relayed {:.2}/{:.2} ms (added {:.2}/{:.2}); \
             token delay p50/p99 direct {:.2}/{:.2}, relayed {:.2}/{:.2} (added {:.2}/{:.2}); \
             gap p99 direct {:.2} relayed {:.2}; tokens {} relayed, missing {}, out of order {}, seq errors {}, mismatches {}; \
             server {:.2} cores, generator {:.2} cores, mock {:.2} cores, other processes {} cores",
            direct.ttft_ms.p50, direct.ttft_ms.p99, relayed.ttft_ms.p50, relayed.ttft_ms.p99,
            added.ttft_p50_ms, added.ttft_p99_ms,
            direct.token_delay_ms.p50, direct.token_delay_ms.p99, relayed.token_delay_ms.p50,
            relayed.token_delay_ms.p99, added.token_delay_p50_ms, added.token_delay_p99_ms,
            direct.inter_token_gap_ms.p99, relayed.inter_token_gap_ms.p99,
            relayed.tokens, relayed.missing_tokens, relayed.out_of_order_tokens, relayed.seq_errors,
            relayed.content_mismatches,
            relayed.server.as_ref().map_or(0.0, |s| s.cores), relayed.generator.cores,
            relayed.upstream_mock.cores, relayed.machine["other_processes_cores"],
        );
        for error in relayed.errors.iter().chain(direct.errors.iter()).take(5) {
            println!("  error: {error}");
        }
        levels.push(Level {
            concurrency,
            direct,
            relayed,
            added,
        });
    }
    let result = json!({
        "scenario": "stream",
        "machine": common::machine(),
        "chunks": args.chunks,
        "pace_ms": args.pace_ms,
        "streams_per_session": args.streams,
        "ramp_ms": args.ramp_ms,
        "sources": args.sources,
        "levels": levels,
    });
    common::write_result(&args.out, &result)?;
    server.stop().await;
    mock.stop().await;
    Ok(())
}

fn side(
    mut samples: StreamSamples,
    streams: usize,
    wall: Duration,
    generator: ProcCost,
    upstream_mock: ProcCost,
    server: Option<ProcCost>,
    busy_before: f64,
) -> Side {
    let machine = {
        let mut ours = vec![&generator, &upstream_mock];
        if let Some(s) = &server {
            ours.push(s);
        }
        common::machine_load(busy_before, wall, &ours)
    };
    Side {
        machine,
        streams,
        tokens: samples.tokens,
        ttft_ms: dist_ms(&mut samples.ttft_us),
        token_delay_ms: dist_ms(&mut samples.delay_us),
        inter_token_gap_ms: dist_ms(&mut samples.gap_us),
        missing_tokens: samples.missing,
        out_of_order_tokens: samples.out_of_order,
        content_mismatches: samples.content_mismatch,
        seq_errors: samples.seq_errors,
        errors: samples.errors,
        wall_s: common::round3(wall.as_secs_f64()),
        generator,
        upstream_mock,
        server,
    }
}

/// The same pattern straight against the upstream: `streams` requests per client, one after another.
async fn direct_run(args: &StreamArgs, mock: &MockProcess, concurrency: usize) -> Result<Side> {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    let url = format!("http://{}/v1/chat/completions", mock.addr);
    let body = json!({
        "model": "mock-upstream",
        "stream": true,
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string();
    let me0 = ProcSample::me();
    let mock0 = ProcSample::of(mock.pid);
    let busy0 = common::machine_busy_s();
    let started = Instant::now();
    let ramp = Duration::from_millis(args.ramp_ms);
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let http = http.clone();
        let url = url.clone();
        let body = body.clone();
        let offset = ramp * i as u32 / concurrency as u32;
        let streams = args.streams;
        let chunks = args.chunks;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut samples = StreamSamples::default();
            for _ in 0..streams {
                if let Err(error) = direct_stream(&http, &url, &body, chunks, &mut samples).await {
                    samples.errors.push(error.to_string());
                }
            }
            samples
        }));
    }
    let mut all = StreamSamples::default();
    for task in tasks {
        all.merge(task.await?);
    }
    let wall = started.elapsed();
    Ok(side(
        all,
        concurrency * args.streams,
        wall,
        common::cost(std::process::id(), me0, wall),
        common::cost(mock.pid, mock0, wall),
        None,
        busy0,
    ))
}

async fn direct_stream(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    chunks: usize,
    samples: &mut StreamSamples,
) -> Result<()> {
    let started = now_us();
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let mut bytes = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut track = TokenTrack::new(started);
    let mut done = false;
    while let Some(piece) = bytes.next().await {
        let piece = piece?;
        let at = now_us();
        buffer.extend_from_slice(&piece);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let Some(data) = text.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                done = true;
                continue;
            }
            let chunk: Value = serde_json::from_str(data)?;
            if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                track.token(delta, at, samples);
            }
        }
    }
    track.finish(chunks, samples);
    if !done {
        bail!("stream ended without [DONE]");
    }
    Ok(())
}

async fn relay_run(
    args: &StreamArgs,
    server: &Server,
    mock: &MockProcess,
    tokens: &[String],
    concurrency: usize,
) -> Result<Side> {
    // Connect everyone first; only the streams are timed.
    let mut sockets = Vec::with_capacity(concurrency);
    let mut connecting = futures::stream::iter(0..concurrency)
        .map(|i| {
            let token = tokens[i % tokens.len()].clone();
            let source = common::source_ip(i, args.sources);
            let addr = server.addr;
            async move { common::connect_authed(addr, source, &token).await }
        })
        .buffer_unordered(64);
    while let Some(ws) = connecting.next().await {
        sockets.push(ws?);
    }
    drop(connecting);
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let ramp = Duration::from_millis(args.ramp_ms);
    let mut tasks = Vec::with_capacity(concurrency);
    for (i, ws) in sockets.into_iter().enumerate() {
        let barrier = barrier.clone();
        let offset = ramp * i as u32 / concurrency as u32;
        let streams = args.streams;
        let chunks = args.chunks;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            tokio::time::sleep(offset).await;
            let mut samples = StreamSamples::default();
            if let Err(error) = relay_session(ws, streams, chunks, &mut samples).await {
                samples.errors.push(error.to_string());
            }
            samples
        }));
    }
    let me0 = ProcSample::me();
    let mock0 = ProcSample::of(mock.pid);
    let server0 = ProcSample::of(server.pid);
    let busy0 = common::machine_busy_s();
    let started = Instant::now();
    barrier.wait().await;
    let mut all = StreamSamples::default();
    for task in tasks {
        all.merge(task.await?);
    }
    let wall = started.elapsed();
    Ok(side(
        all,
        concurrency * args.streams,
        wall,
        common::cost(std::process::id(), me0, wall),
        common::cost(mock.pid, mock0, wall),
        Some(common::cost(server.pid, server0, wall)),
        busy0,
    ))
}

/// One session: the greeting stream, then `streams - 1` answers to messages.
async fn relay_session(
    mut ws: common::Ws,
    streams: usize,
    chunks: usize,
    samples: &mut StreamSamples,
) -> Result<()> {
    let wait = Duration::from_secs(30);
    let mut seq = SeqCheck::default();
    for n in 0..streams {
        let started = now_us();
        if n == 0 {
            common::send(
                &mut ws,
                json!({"type": "session.start", "content_type": "affirmation", "intent": "feel calm before meetings"}),
            )
            .await?;
        } else {
            common::send(
                &mut ws,
                json!({"type": "message", "content": "something gentle, about ten minutes", "client_message_id": format!("m-{n}")}),
            )
            .await?;
        }
        let mut track = TokenTrack::new(started);
        loop {
            let (frame, at) = common::next_frame_at(&mut ws, wait).await?;
            if !seq.see(&frame) {
                samples.seq_errors += 1;
            }
            match frame["type"].as_str().unwrap_or_default() {
                "token" => {
                    track.token(frame["delta"].as_str().unwrap_or_default(), at, samples);
                }
                "message.done" if frame["role"] == "assistant" => {
                    if frame["content"].as_str() != Some(track.text.as_str()) {
                        samples.content_mismatch += 1;
                    }
                    if frame["cancelled"] == true {
                        samples.errors.push(format!("answer cancelled: {frame}"));
                    }
                    break;
                }
                "error" => bail!("error frame: {frame}"),
                _ => {}
            }
        }
        track.finish(chunks, samples);
    }
    let _ = ws.close(None).await;
    Ok(())
}

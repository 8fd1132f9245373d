//! Scenario `storm`: N clients, each attached to a live session with some history, send one message
//! and then all drop at once without reading the answer; they reconnect (with the protocol's
//! jittered backoff) and `session.resume {last_seq}`. Every client checks that the replay starts at
//! `last_seq + 1` and continues without gap or duplicate up to `session.attached.last_seq`, then
//! live, until the answer to its message is complete; a message the server never received is resent
//! with the same `client_message_id` (the outbox rule), and must be processed exactly once.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use rand::Rng;
use serde_json::{json, Value};

use crate::common::{self, dist_ms, now_us, ProcSample, SeqCheck, Server};

#[derive(Debug, clap::Args)]
pub struct StormArgs {
    /// Clients, each with its own session.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Messages each session exchanges before the storm (after the greeting).
    #[arg(long, default_value_t = 1)]
    pub turns: usize,
    /// Milliseconds between the offline provider's words: answers are still streaming while
    /// clients are away.
    #[arg(long, default_value_t = 10)]
    pub word_delay_ms: u64,
    /// Clients stop reading this long before they all drop, so frames pile up unread.
    #[arg(long, default_value_t = 200)]
    pub gap_ms: u64,
    /// First reconnect waits a random time up to this (protocol: 0.5 s × 2^attempt).
    #[arg(long, default_value_t = 500)]
    pub jitter_ms: u64,
    #[arg(long, default_value_t = 8)]
    pub sources: usize,
    /// Without an answer in flight: nobody sends a message before the drop; each client resumes
    /// from `last_seq − rewind` (as if it had lost its last frames) and checks the replay.
    #[arg(long)]
    pub quiet: bool,
    #[arg(long, default_value_t = 10)]
    pub rewind: i64,
    #[arg(long, default_value = "target/release/rapport")]
    pub server_bin: PathBuf,
    #[arg(long, default_value = "load-tests/results/storm.json")]
    pub out: PathBuf,
}

struct Client {
    index: usize,
    ws: Option<common::Ws>,
    session_id: String,
    seq: SeqCheck,
}

#[derive(Default)]
struct Outcome {
    resumed_us: Option<u64>,
    answered_us: Option<u64>,
    attempts: u32,
    replayed: u64,
    gaps: u64,
    duplicates: u64,
    storm_messages: u64,
    resent: bool,
    error: Option<String>,
}

const STORM_ID: &str = "storm-1";

pub async fn run(args: StormArgs) -> Result<()> {
    let server = Server::start(
        &args.server_bin,
        &[(
            "RAPPORT_OFFLINE_WORD_DELAY_MS",
            args.word_delay_ms.to_string(),
        )],
    )
    .await?;
    println!("storm: server pid {} at {}", server.pid, server.addr);
    let tokens = Arc::new(common::register_owners(&server, 20, "storm").await?);

    // Setup: every client starts a session and exchanges a few turns.
    let setup_started = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    let mut failures = Vec::new();
    let mut setup = futures::stream::iter(0..args.clients)
        .map(|index| {
            let token = tokens[index % tokens.len()].clone();
            let source = common::source_ip(index, args.sources);
            let addr = server.addr;
            let turns = args.turns;
            async move { setup_client(addr, source, &token, index, turns).await }
        })
        .buffer_unordered(256);
    while let Some(result) = setup.next().await {
        match result {
            Ok(client) => clients.push(client),
            Err(error) => failures.push(error.to_string()),
        }
        let done = clients.len() + failures.len();
        if done % 2000 == 0 {
            println!("  setup {done}/{}", args.clients);
        }
    }
    drop(setup);
    let setup_s = setup_started.elapsed().as_secs_f64();
    if !failures.is_empty() {
        println!("  {} setups failed, first: {}", failures.len(), failures[0]);
    }
    let frames_before: i64 = clients.iter().map(|c| c.seq.last_seq).sum();
    println!(
        "storm: {} sessions ready in {setup_s:.1} s ({frames_before} frames); sending one message each, then dropping all",
        clients.len()
    );

    // Every client sends its message, stops reading, then all drop at once.
    for client in &mut clients {
        if args.quiet {
            client.seq.last_seq = (client.seq.last_seq - args.rewind).max(0);
            continue;
        }
        if let Some(ws) = client.ws.as_mut() {
            common::send(
                ws,
                json!({"type": "message", "content": "something short and calming", "client_message_id": STORM_ID}),
            )
            .await?;
        }
    }
    tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    let me0 = ProcSample::me();
    let server0 = ProcSample::of(server.pid);
    let rss_before = common::rss_kib(server.pid).unwrap_or(0);
    let dropped_at = now_us();
    let busy0 = common::machine_busy_s();
    let started = Instant::now();
    for client in &mut clients {
        client.ws = None;
    }
    let count = clients.len();
    let mut tasks = Vec::with_capacity(count);
    for client in clients {
        let token = tokens[client.index % tokens.len()].clone();
        let source = common::source_ip(client.index, args.sources);
        let addr = server.addr;
        let jitter = args.jitter_ms;
        let quiet = args.quiet;
        tasks.push(tokio::spawn(async move {
            resume(addr, source, &token, client, jitter, dropped_at, quiet).await
        }));
    }
    let mut outcomes = Vec::with_capacity(count);
    for task in tasks {
        outcomes.push(task.await?);
    }
    let wall = started.elapsed();
    let generator = common::cost(std::process::id(), me0, wall);
    let server_cost = common::cost(server.pid, server0, wall);
    let machine_load = common::machine_load(busy0, wall, &[&server_cost, &generator]);
    println!("  machine: {machine_load}");

    let mut resumed: Vec<u64> = outcomes.iter().filter_map(|o| o.resumed_us).collect();
    let mut answered: Vec<u64> = outcomes.iter().filter_map(|o| o.answered_us).collect();
    let all_resumed_ms = resumed.iter().max().copied().unwrap_or(0) as f64 / 1000.0;
    let all_answered_ms = answered.iter().max().copied().unwrap_or(0) as f64 / 1000.0;
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    let gaps: u64 = outcomes.iter().map(|o| o.gaps).sum();
    let duplicates: u64 = outcomes.iter().map(|o| o.duplicates).sum();
    let replayed: u64 = outcomes.iter().map(|o| o.replayed).sum();
    let wrong_message_count = outcomes.iter().filter(|o| o.storm_messages != 1).count();
    let resent = outcomes.iter().filter(|o| o.resent).count();
    let retries: u32 = outcomes.iter().map(|o| o.attempts.saturating_sub(1)).sum();
    let resumed_dist = dist_ms(&mut resumed);
    let answered_dist = dist_ms(&mut answered);
    println!(
        "storm: {}/{} resumed; all resumed after {:.0} ms (p50 {:.0}, p99 {:.0}); all answers complete after {:.0} ms; \
         {replayed} frames replayed, gaps {gaps}, duplicates {duplicates}, sessions without exactly one storm message {wrong_message_count}, \
         resent {resent}, connect retries {retries}, failures {}; server {:.2} cores, generator {:.2} cores",
        resumed_dist.count, count, all_resumed_ms, resumed_dist.p50, resumed_dist.p99, all_answered_ms,
        failed.len(), server_cost.cores, generator.cores,
    );
    for error in failed.iter().take(5) {
        println!("  error: {error}");
    }
    let result = json!({
        "scenario": "storm",
        "machine": common::machine(),
        "clients": args.clients,
        "sessions_ready": count,
        "setup_failures": failures.len(),
        "setup_s": common::round3(setup_s),
        "turns_before": args.turns,
        "quiet": args.quiet,
        "rewind": if args.quiet { args.rewind } else { 0 },
        "offline_word_delay_ms": args.word_delay_ms,
        "jitter_ms": args.jitter_ms,
        "sources": args.sources,
        "frames_before_drop": frames_before,
        "resumed": resumed_dist.count,
        "all_resumed_ms": common::round3(all_resumed_ms),
        "resume_ms": resumed_dist,
        "all_answers_complete_ms": common::round3(all_answered_ms),
        "answer_complete_ms": answered_dist,
        "frames_replayed": replayed,
        "gaps": gaps,
        "duplicates": duplicates,
        "sessions_without_exactly_one_storm_message": wrong_message_count,
        "messages_resent": resent,
        "connect_retries": retries,
        "failures": failed.len(),
        "first_failures": failed.iter().take(10).collect::<Vec<_>>(),
        "server_rss_kib_before": rss_before,
        "server": server_cost,
        "generator": generator,
        "machine_load": machine_load,
    });
    common::write_result(&args.out, &result)?;
    server.stop().await;
    Ok(())
}

async fn read(ws: &mut common::Ws) -> Result<Value> {
    common::next_frame(ws, Duration::from_secs(60)).await
}

async fn setup_client(
    addr: SocketAddr,
    source: IpAddr,
    token: &str,
    index: usize,
    turns: usize,
) -> Result<Client> {
    let mut ws = common::connect_authed(addr, source, token).await?;
    common::send(
        &mut ws,
        json!({"type": "session.start", "content_type": "affirmation", "intent": "calm at work"}),
    )
    .await?;
    let mut seq = SeqCheck::default();
    let mut session_id = String::new();
    let mut answers = 0;
    while answers < turns + 1 {
        let frame = read(&mut ws).await?;
        if frame["type"] == "session.attached" {
            session_id = frame["session_id"].as_str().unwrap_or_default().to_string();
        }
        if frame["type"] == "error" {
            bail!("error during setup: {frame}");
        }
        if !seq.see(&frame) {
            bail!("seq error during setup at {frame}");
        }
        if frame["type"] == "message.done" && frame["role"] == "assistant" {
            answers += 1;
            if answers <= turns {
                common::send(
                    &mut ws,
                    json!({"type": "message", "content": "about ten minutes", "client_message_id": format!("setup-{answers}")}),
                )
                .await?;
            }
        }
    }
    Ok(Client {
        index,
        ws: Some(ws),
        session_id,
        seq,
    })
}

async fn resume(
    addr: SocketAddr,
    source: IpAddr,
    token: &str,
    mut client: Client,
    jitter_ms: u64,
    dropped_at: u64,
    quiet: bool,
) -> Outcome {
    let mut outcome = Outcome::default();
    if let Err(error) = resume_inner(
        addr,
        source,
        token,
        &mut client,
        jitter_ms,
        dropped_at,
        quiet,
        &mut outcome,
    )
    .await
    {
        outcome.error = Some(format!("client {}: {error}", client.index));
    }
    outcome.gaps = client.seq.gaps;
    outcome.duplicates = client.seq.duplicates;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn resume_inner(
    addr: SocketAddr,
    source: IpAddr,
    token: &str,
    client: &mut Client,
    jitter_ms: u64,
    dropped_at: u64,
    quiet: bool,
    outcome: &mut Outcome,
) -> Result<()> {
    // Reconnect with the protocol's backoff: random in [0, min(30 s, 0.5 s × 2^attempt)).
    let mut ws = loop {
        let cap = (jitter_ms << outcome.attempts.min(6)).min(30_000);
        let wait = rand::thread_rng().gen_range(0..cap.max(1));
        tokio::time::sleep(Duration::from_millis(wait)).await;
        outcome.attempts += 1;
        match common::connect_authed(addr, source, token).await {
            Ok(ws) => break ws,
            Err(error) if outcome.attempts >= 8 => {
                return Err(anyhow!("reconnect failed: {error}"))
            }
            Err(_) => continue,
        }
    };
    let last_seq = client.seq.last_seq;
    common::send(
        &mut ws,
        json!({"type": "session.resume", "session_id": client.session_id, "last_seq": last_seq}),
    )
    .await?;
    let attached = read(&mut ws).await?;
    if attached["type"] != "session.attached" || attached["resumed"] != true {
        bail!("expected session.attached, got {attached}");
    }
    let head = attached["last_seq"].as_i64().unwrap_or(0);
    let mut watch = StormWatch::default();
    // Replay: exactly last_seq + 1 ..= head.
    while client.seq.last_seq < head {
        let frame = read(&mut ws).await?;
        if frame["type"] == "error" || frame["type"] == "resume_failed" {
            bail!("during replay: {frame}");
        }
        if frame.get("seq").is_some() {
            outcome.replayed += 1;
        }
        watch.see(&frame, client, outcome);
    }
    outcome.resumed_us = Some(now_us().saturating_sub(dropped_at));
    if quiet {
        outcome.storm_messages = 1;
        outcome.answered_us = outcome.resumed_us;
        let _ = ws.close(None).await;
        return Ok(());
    }
    if outcome.storm_messages == 0 {
        // Not received before the drop (or not yet processed): resend, same id.
        outcome.resent = true;
        common::send(
            &mut ws,
            json!({"type": "message", "content": "something short and calming", "client_message_id": STORM_ID}),
        )
        .await?;
    }
    while !watch.answered {
        let frame = read(&mut ws).await?;
        if frame["type"] == "error" {
            bail!("after resume: {frame}");
        }
        watch.see(&frame, client, outcome);
    }
    outcome.answered_us = Some(now_us().saturating_sub(dropped_at));
    let _ = ws.close(None).await;
    Ok(())
}

/// Follows the storm message and its answer through the replay and the live frames.
#[derive(Default)]
struct StormWatch {
    answer_id: Option<String>,
    answered: bool,
}

impl StormWatch {
    fn see(&mut self, frame: &Value, client: &mut Client, outcome: &mut Outcome) {
        if frame["type"] == "message.done"
            && frame["role"] == "user"
            && frame["client_message_id"] == STORM_ID
        {
            outcome.storm_messages += 1;
        }
        if frame["type"] == "message.started" && frame["in_reply_to"] == STORM_ID {
            self.answer_id = frame["message_id"].as_str().map(str::to_owned);
        }
        if frame["type"] == "message.done"
            && frame["role"] == "assistant"
            && self.answer_id.is_some()
            && frame["message_id"].as_str() == self.answer_id.as_deref()
        {
            self.answered = true;
        }
        client.seq.see(frame);
    }
}

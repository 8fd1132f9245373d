//! Scenario `flow`: the guided conversation end to end with the offline provider, many clients at
//! once, each running whole sessions one after another: start → messages → Confirmation →
//! `complete` → `generation.completed` → Completed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::common::{self, dist_ms, now_us, ProcSample, SeqCheck, Server};

#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    /// Clients running sessions at the same time.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// How long clients keep starting new sessions, in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration_s: u64,
    /// Milliseconds between the offline provider's words (0: as fast as it can).
    #[arg(long, default_value_t = 0)]
    pub word_delay_ms: u64,
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    #[arg(long, default_value = "target/release/rapport")]
    pub server_bin: PathBuf,
    #[arg(long, default_value = "load-tests/results/flow.json")]
    pub out: PathBuf,
}

/// Answers that take a ritual with an intent to Confirmation; extra ones are used if the engine
/// asks again.
const SCRIPT: &[&str] = &[
    "in the evening, before bed",
    "ten minutes and fairly deep",
    "calm and gentle, with a soft voice",
    "ten minutes",
    "deep",
    "calm",
];

#[derive(Default)]
struct Samples {
    turn_us: Vec<u64>,
    start_us: Vec<u64>,
    generation_us: Vec<u64>,
    session_us: Vec<u64>,
    turns: u64,
    sessions: u64,
    frames: u64,
    seq_errors: u64,
    errors: Vec<String>,
}

pub async fn run(args: FlowArgs) -> Result<()> {
    let server = Server::start(
        &args.server_bin,
        &[(
            "RAPPORT_OFFLINE_WORD_DELAY_MS",
            args.word_delay_ms.to_string(),
        )],
    )
    .await?;
    println!("flow: server pid {} at {}", server.pid, server.addr);
    let tokens = common::register_owners(&server, args.concurrency.min(50), "flow").await?;
    let tokens = Arc::new(tokens);
    let deadline = Instant::now() + Duration::from_secs(args.duration_s);
    let me0 = ProcSample::me();
    let server0 = ProcSample::of(server.pid);
    let busy0 = common::machine_busy_s();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.concurrency {
        let tokens = tokens.clone();
        let addr = server.addr;
        let source = common::source_ip(i, args.sources);
        tasks.push(tokio::spawn(async move {
            let token = &tokens[i % tokens.len()];
            let mut samples = Samples::default();
            while Instant::now() < deadline {
                match tokio::time::timeout(
                    Duration::from_secs(60),
                    one_session(addr, source, token, &mut samples),
                )
                .await
                {
                    Ok(Ok(())) => samples.sessions += 1,
                    Ok(Err(error)) => samples.errors.push(error.to_string()),
                    Err(_) => samples.errors.push("session took over 60 s".into()),
                }
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        let s = task.await?;
        all.turn_us.extend(s.turn_us);
        all.start_us.extend(s.start_us);
        all.generation_us.extend(s.generation_us);
        all.session_us.extend(s.session_us);
        all.turns += s.turns;
        all.sessions += s.sessions;
        all.frames += s.frames;
        all.seq_errors += s.seq_errors;
        all.errors.extend(s.errors);
    }
    let wall = started.elapsed();
    let generator = common::cost(std::process::id(), me0, wall);
    let server_cost = common::cost(server.pid, server0, wall);
    let machine_load = common::machine_load(busy0, wall, &[&server_cost, &generator]);
    println!("  machine: {machine_load}");
    let secs = wall.as_secs_f64();
    let turn = dist_ms(&mut all.turn_us);
    let start = dist_ms(&mut all.start_us);
    let generation = dist_ms(&mut all.generation_us);
    let session = dist_ms(&mut all.session_us);
    println!(
        "flow c={}: {} sessions completed in {:.1} s ({:.1}/s), {} turns ({:.1} turns/s), turn p50/p99 {:.2}/{:.2} ms, \
         start→greeting p50/p99 {:.2}/{:.2} ms, complete→generation.completed p50/p99 {:.2}/{:.2} ms, \
         session p50/p99 {:.1}/{:.1} ms; {} frames, seq errors {}, errors {}; server {:.2} cores, generator {:.2} cores",
        args.concurrency, all.sessions, secs, all.sessions as f64 / secs, all.turns, all.turns as f64 / secs,
        turn.p50, turn.p99, start.p50, start.p99, generation.p50, generation.p99, session.p50, session.p99,
        all.frames, all.seq_errors, all.errors.len(), server_cost.cores, generator.cores,
    );
    for error in all.errors.iter().take(5) {
        println!("  error: {error}");
    }
    let result = json!({
        "scenario": "flow",
        "machine": common::machine(),
        "concurrency": args.concurrency,
        "duration_s": args.duration_s,
        "offline_word_delay_ms": args.word_delay_ms,
        "wall_s": common::round3(secs),
        "sessions_completed": all.sessions,
        "sessions_per_s": common::round3(all.sessions as f64 / secs),
        "turns": all.turns,
        "turns_per_s": common::round3(all.turns as f64 / secs),
        "turn_ms": turn,
        "start_to_greeting_done_ms": start,
        "complete_to_generation_completed_ms": generation,
        "session_ms": session,
        "frames": all.frames,
        "seq_errors": all.seq_errors,
        "errors": all.errors.len(),
        "first_errors": all.errors.iter().take(10).collect::<Vec<_>>(),
        "server": server_cost,
        "generator": generator,
        "machine_load": machine_load,
    });
    common::write_result(&args.out, &result)?;
    server.stop().await;
    Ok(())
}

struct Session {
    ws: common::Ws,
    seq: SeqCheck,
    state: String,
}

impl Session {
    async fn frame(&mut self, samples: &mut Samples) -> Result<Value> {
        let frame = common::next_frame(&mut self.ws, Duration::from_secs(30)).await?;
        if frame.get("seq").is_some() {
            samples.frames += 1;
        }
        if !self.seq.see(&frame) {
            samples.seq_errors += 1;
        }
        if frame["type"] == "state" {
            self.state = frame["state"].as_str().unwrap_or_default().to_string();
        }
        if frame["type"] == "error" {
            bail!("error frame: {frame}");
        }
        Ok(frame)
    }

    /// Reads until the assistant's answer is done.
    async fn answer(&mut self, samples: &mut Samples) -> Result<()> {
        loop {
            let frame = self.frame(samples).await?;
            if frame["type"] == "message.done" && frame["role"] == "assistant" {
                return Ok(());
            }
        }
    }
}

async fn one_session(
    addr: std::net::SocketAddr,
    source: std::net::IpAddr,
    token: &str,
    samples: &mut Samples,
) -> Result<()> {
    let session_started = now_us();
    let ws = common::connect_authed(addr, source, token).await?;
    let mut session = Session {
        ws,
        seq: SeqCheck::default(),
        state: String::new(),
    };
    let t0 = now_us();
    common::send(
        &mut session.ws,
        json!({"type": "session.start", "content_type": "ritual", "intent": "help me sleep better"}),
    )
    .await?;
    session.answer(samples).await?;
    samples.start_us.push(now_us() - t0);
    let mut script = SCRIPT.iter().enumerate();
    while session.state != "Confirmation" {
        let Some((n, text)) = script.next() else {
            bail!("never reached Confirmation (state {})", session.state);
        };
        let t0 = now_us();
        common::send(
            &mut session.ws,
            json!({"type": "message", "content": text, "client_message_id": format!("m-{n}")}),
        )
        .await?;
        session.answer(samples).await?;
        samples.turn_us.push(now_us() - t0);
        samples.turns += 1;
    }
    let t0 = now_us();
    common::send(
        &mut session.ws,
        json!({"type": "complete", "confirm": true}),
    )
    .await?;
    loop {
        let frame = session.frame(samples).await?;
        if frame["type"] == "generation.completed" {
            samples.generation_us.push(now_us() - t0);
        }
        if frame["type"] == "generation.failed" {
            bail!("generation failed: {frame}");
        }
        if session.state == "Completed" {
            break;
        }
    }
    samples.session_us.push(now_us() - session_started);
    let _ = session.ws.close(None).await;
    Ok(())
}

//! Scenario `idle`: many idle authenticated connections (optionally each attached to a live session a
//! few turns in), held by several worker processes over several loopback source addresses; the
//! server's resident memory per connection is the growth of its VmRSS divided by the count.
//!
//! The orchestrator starts the server, opens and keeps a warm-up set of connections (so one-time
//! allocations are in the baseline), reads VmRSS, starts the workers (copies of this binary running
//! `idle-worker`), waits until every worker holds its connections, lets the server settle, reads
//! VmRSS again, holds across a heartbeat (the server pings every 20 s) and reads it once more.
//! Workers keep reading their sockets, so pings are answered and nothing times out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::common::{self, ProcSample, Server};

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// Connections to hold (besides the warm-up ones).
    #[arg(long, default_value_t = 18_000)]
    pub connections: usize,
    /// Worker processes sharing the connections (each process may hold < 20,000 descriptors).
    #[arg(long, default_value_t = 2)]
    pub procs: usize,
    /// Loopback source addresses (127.0.0.2, ...).
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    /// Attach every connection to its own guided session and exchange this many messages
    /// (0: authenticated connections only).
    #[arg(long, default_value_t = 0)]
    pub session_turns: usize,
    /// Connections opened (and kept) before the baseline is read.
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// Seconds to hold after the first reading, across a server heartbeat.
    #[arg(long, default_value_t = 25)]
    pub hold_s: u64,
    #[arg(long, default_value = "target/release/rapport")]
    pub server_bin: PathBuf,
    #[arg(long, default_value = "load-tests/results/idle.json")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    #[arg(long)]
    pub token: String,
    #[arg(long)]
    pub count: usize,
    /// Index of this worker's first connection (spreads source addresses across workers).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    #[arg(long, default_value_t = 0)]
    pub session_turns: usize,
}

/// Opens a connection (and its session when asked) and returns it ready to idle.
async fn open(
    addr: SocketAddr,
    source: std::net::IpAddr,
    token: &str,
    turns: usize,
) -> Result<common::Ws> {
    let mut ws = common::connect_authed(addr, source, token).await?;
    if turns == 0 {
        return Ok(ws);
    }
    common::send(
        &mut ws,
        json!({"type": "session.start", "content_type": "ritual", "intent": "help me sleep better"}),
    )
    .await?;
    let script = [
        "in the evening, before bed",
        "ten minutes and fairly deep",
        "calm",
    ];
    let mut answers = 0;
    while answers < turns + 1 {
        let frame = common::next_frame(&mut ws, Duration::from_secs(60)).await?;
        if frame["type"] == "error" {
            bail!("error frame: {frame}");
        }
        if frame["type"] == "message.done" && frame["role"] == "assistant" {
            answers += 1;
            if answers <= turns {
                let text = script[(answers - 1) % script.len()];
                common::send(
                    &mut ws,
                    json!({"type": "message", "content": text, "client_message_id": format!("m-{answers}")}),
                )
                .await?;
            }
        }
    }
    Ok(ws)
}

/// Keeps reading (so pings are answered) until told to stop.
fn hold(mut ws: common::Ws, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(_)) => {}
                    _ => return false,
                },
                _ = stop.changed() => {
                    let _ = ws.close(None).await;
                    return true;
                }
            }
        }
    })
}

/// Opens `count` connections with bounded parallelism; returns the holders and the failures.
async fn open_many(
    addr: SocketAddr,
    token: &str,
    first: usize,
    count: usize,
    sources: usize,
    turns: usize,
    stop: &watch::Receiver<bool>,
) -> (Vec<tokio::task::JoinHandle<bool>>, Vec<String>) {
    let parallel = if turns == 0 { 256 } else { 128 };
    let mut opening = futures::stream::iter(first..first + count)
        .map(|i| {
            let token = token.to_string();
            async move { open(addr, common::source_ip(i, sources), &token, turns).await }
        })
        .buffer_unordered(parallel);
    let mut held = Vec::with_capacity(count);
    let mut failed = Vec::new();
    while let Some(result) = opening.next().await {
        match result {
            Ok(ws) => held.push(hold(ws, stop.clone())),
            Err(error) => failed.push(error.to_string()),
        }
    }
    (held, failed)
}

/// A worker process: opens its share, prints `ready <held> <failed>`, holds until `stop` arrives on
/// stdin, then prints `stats <json>` with its own cost and exits.
pub async fn worker(args: WorkerArgs) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let me0 = ProcSample::me();
    let started = Instant::now();
    let (held, failed) = open_many(
        args.addr,
        &args.token,
        args.first,
        args.count,
        args.sources,
        args.session_turns,
        &stop_rx,
    )
    .await;
    let setup = started.elapsed();
    let after_setup = ProcSample::me();
    println!(
        "ready {} {} {}",
        held.len(),
        failed.len(),
        failed
            .first()
            .cloned()
            .unwrap_or_default()
            .replace('\n', " ")
    );
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        if line.trim() == "stop" {
            break;
        }
    }
    let holding = ProcSample::me();
    let holding_wall = started.elapsed() - setup;
    let _ = stop_tx.send(true);
    let mut alive = 0;
    for task in held {
        if task.await.unwrap_or(false) {
            alive += 1;
        }
    }
    let stats = json!({
        "setup_s": common::round3(setup.as_secs_f64()),
        "setup_cpu_s": common::round3(after_setup.cpu_s - me0.cpu_s),
        "holding_cpu_s": common::round3(holding.cpu_s - after_setup.cpu_s),
        "holding_wall_s": common::round3(holding_wall.as_secs_f64()),
        "rss_kib_holding": holding.rss_kib,
        "peak_rss_kib": common::hwm_kib(std::process::id()).unwrap_or(0),
        "alive_at_stop": alive,
    });
    println!("stats {stats}");
    Ok(())
}

struct Worker {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Worker {
    async fn line(&mut self, prefix: &str, wait: Duration) -> Result<String> {
        loop {
            let line = tokio::time::timeout(wait, self.lines.next_line())
                .await
                .map_err(|_| anyhow!("worker silent for {wait:?}"))??
                .ok_or_else(|| anyhow!("worker ended"))?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
    }
}

pub async fn run(args: IdleArgs) -> Result<()> {
    let server = Server::start(
        &args.server_bin,
        &[("RAPPORT_OFFLINE_WORD_DELAY_MS", "0".to_string())],
    )
    .await?;
    println!("idle: server pid {} at {}", server.pid, server.addr);
    let token = common::register_owners(&server, 1, "idle").await?.remove(0);
    let rss_start = common::rss_kib(server.pid)?;

    // Warm-up: kept open to the end, so the baseline holds every one-time allocation.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (warm, warm_failed) = open_many(
        server.addr,
        &token,
        1_000_000,
        args.warmup,
        args.sources,
        args.session_turns,
        &stop_rx,
    )
    .await;
    if !warm_failed.is_empty() {
        bail!("warm-up failed: {}", warm_failed[0]);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = common::rss_kib(server.pid)?;
    let server0 = ProcSample::of(server.pid);
    println!(
        "idle: server RSS {rss_start} KiB at start, {rss_before} KiB with {} warm-up connections",
        warm.len()
    );

    let exe = std::env::current_exe()?;
    let per = args.connections.div_ceil(args.procs);
    let setup_started = Instant::now();
    let mut workers = Vec::new();
    for p in 0..args.procs {
        let count = per.min(args.connections - (p * per).min(args.connections));
        let mut child = tokio::process::Command::new(&exe)
            .arg("idle-worker")
            .args(["--addr", &server.addr.to_string()])
            .args(["--token", &token])
            .args(["--count", &count.to_string()])
            .args(["--first", &(p * per).to_string()])
            .args(["--sources", &args.sources.to_string()])
            .args(["--session-turns", &args.session_turns.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no worker stdout"))?;
        workers.push(Worker {
            child,
            lines: BufReader::new(stdout).lines(),
        });
    }
    let mut held = 0usize;
    let mut failed = 0usize;
    for worker in &mut workers {
        let ready = worker.line("ready ", Duration::from_secs(900)).await?;
        let mut parts = ready.splitn(3, ' ');
        held += parts.next().unwrap_or("0").parse::<usize>().unwrap_or(0);
        let f: usize = parts.next().unwrap_or("0").parse().unwrap_or(0);
        failed += f;
        if f > 0 {
            println!(
                "  worker failures: {f}, first: {}",
                parts.next().unwrap_or_default()
            );
        }
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    println!("idle: {held} connections held ({failed} failed) after {setup_s:.1} s; settling");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_settled = common::rss_kib(server.pid)?;
    tokio::time::sleep(Duration::from_secs(args.hold_s)).await;
    let rss_after_heartbeat = common::rss_kib(server.pid)?;
    let hold_wall = setup_started.elapsed();
    let server_cost = common::cost(server.pid, server0, hold_wall);
    let worker_pids: Vec<u32> = workers.iter().filter_map(|w| w.child.id()).collect();
    let worker_rss: Vec<u64> = worker_pids
        .iter()
        .map(|pid| common::rss_kib(*pid).unwrap_or(0))
        .collect();

    let mut worker_stats = Vec::new();
    for worker in &mut workers {
        if let Some(stdin) = worker.child.stdin.as_mut() {
            stdin.write_all(b"stop\n").await?;
            stdin.flush().await?;
        }
    }
    for worker in &mut workers {
        let stats = worker.line("stats ", Duration::from_secs(120)).await?;
        worker_stats.push(serde_json::from_str::<Value>(&stats)?);
        let _ = worker.child.wait().await;
    }
    let _ = stop_tx.send(true);
    for task in warm {
        let _ = task.await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after_close = common::rss_kib(server.pid).unwrap_or(0);

    let grown_settled = rss_settled.saturating_sub(rss_before);
    let grown_heartbeat = rss_after_heartbeat.saturating_sub(rss_before);
    let per_conn_settled = grown_settled as f64 * 1024.0 / held.max(1) as f64;
    let per_conn_heartbeat = grown_heartbeat as f64 * 1024.0 / held.max(1) as f64;
    let alive: u64 = worker_stats
        .iter()
        .map(|s| s["alive_at_stop"].as_u64().unwrap_or(0))
        .sum();
    let generator_rss_kib: u64 = worker_rss.iter().sum();
    let generator_cpu_s: f64 = worker_stats
        .iter()
        .map(|s| {
            s["setup_cpu_s"].as_f64().unwrap_or(0.0) + s["holding_cpu_s"].as_f64().unwrap_or(0.0)
        })
        .sum();
    let kind = if args.session_turns == 0 {
        "authenticated connection".to_string()
    } else {
        format!(
            "connection with a live session {} turns in",
            args.session_turns
        )
    };
    println!(
        "idle: {held} × {kind}: server RSS {rss_before} → {rss_settled} KiB settled ({:.0} B each), {rss_after_heartbeat} KiB after a heartbeat ({:.0} B each), \
         {rss_after_close} KiB after closing; {alive} still open at stop; generator {} procs, {:.0} B RSS per connection, {:.1} CPU s; server {:.1} CPU s",
        per_conn_settled, per_conn_heartbeat, args.procs,
        generator_rss_kib as f64 * 1024.0 / held.max(1) as f64, generator_cpu_s, server_cost.cpu_s,
    );
    let result = json!({
        "scenario": "idle",
        "machine": common::machine(),
        "kind": kind,
        "session_turns": args.session_turns,
        "connections": held,
        "failed": failed,
        "alive_at_stop": alive,
        "procs": args.procs,
        "sources": args.sources,
        "warmup_connections": args.warmup,
        "setup_s": common::round3(setup_s),
        "server_rss_kib": {
            "start": rss_start,
            "baseline_with_warmup": rss_before,
            "settled": rss_settled,
            "after_heartbeat": rss_after_heartbeat,
            "after_close": rss_after_close,
        },
        "bytes_per_connection_settled": per_conn_settled.round(),
        "bytes_per_connection_after_heartbeat": per_conn_heartbeat.round(),
        "server": server_cost,
        "generator": {
            "rss_kib_total_holding": generator_rss_kib,
            "bytes_per_connection": (generator_rss_kib as f64 * 1024.0 / held.max(1) as f64).round(),
            "cpu_s_total": common::round3(generator_cpu_s),
            "workers": worker_stats,
        },
    });
    common::write_result(&args.out, &result)?;
    server.stop().await;
    Ok(())
}

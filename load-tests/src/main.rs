//! `rapport-load`: load generator for the Rapport WebSocket hub. See `load-tests/README.md`.

mod chat;
mod common;
mod flow;
mod idle;
mod mock;
mod storm;
mod stream;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rapport-load",
    about = "Load scenarios for the Rapport WebSocket hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Many idle authenticated connections (or live sessions): server memory per connection.
    Idle(idle::IdleArgs),
    /// Concurrent sessions streaming from a paced upstream: added TTFT and inter-token latency.
    Stream(stream::StreamArgs),
    /// The guided conversation end to end: turns per second and turn latency.
    Flow(flow::FlowArgs),
    /// All clients drop at once and resume: zero lost or duplicated frames, time to resume.
    Storm(storm::StormArgs),
    /// The chat widget end to end: session, WebSocket or SSE answers from a knowledge base.
    Chat(chat::ChatArgs),
    /// Serve the OpenAI-compatible mock upstream alone.
    Mock {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        #[arg(long, default_value_t = 64)]
        chunks: usize,
        #[arg(long, default_value_t = 20)]
        pace_ms: u64,
    },
    /// (internal) One worker process of `idle`.
    #[command(hide = true)]
    IdleWorker(idle::WorkerArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Idle(args) => idle::run(args).await,
        Command::Stream(args) => stream::run(args).await,
        Command::Flow(args) => flow::run(args).await,
        Command::Storm(args) => storm::run(args).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Mock {
            addr,
            chunks,
            pace_ms,
        } => {
            mock::serve(
                addr,
                mock::MockConfig {
                    chunks,
                    pace: Duration::from_millis(pace_ms),
                },
            )
            .await
        }
        Command::IdleWorker(args) => idle::worker(args).await,
    }
}

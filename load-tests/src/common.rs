//! Shared pieces: starting a server, reading process statistics, accounts, WebSocket clients,
//! percentiles and result files.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Microseconds since the Unix epoch (the clock shared by every process on the machine).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Process statistics from /proc.

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    field_kib(&status, "VmRSS:").ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

/// Peak resident memory of a process in KiB.
pub fn hwm_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    field_kib(&status, "VmHWM:").ok_or_else(|| anyhow!("no VmHWM for {pid}"))
}

fn field_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User plus system CPU time of a process, in seconds (clock ticks of 1/100 s).
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    Ok((utime + stime) / 100.0)
}

/// A snapshot of one process's cost, to diff over a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub cpu_s: f64,
}

impl ProcSample {
    pub fn of(pid: u32) -> ProcSample {
        ProcSample {
            rss_kib: rss_kib(pid).unwrap_or(0),
            cpu_s: cpu_secs(pid).unwrap_or(0.0),
        }
    }

    pub fn me() -> ProcSample {
        Self::of(std::process::id())
    }
}

/// CPU used between two samples, as a share of one core over `wall`.
pub fn cpu_share(before: ProcSample, after: ProcSample, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (after.cpu_s - before.cpu_s) / secs
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcCost {
    /// CPU seconds used during the measured window.
    pub cpu_s: f64,
    /// Average cores busy during the window (1.0 = one full core).
    pub cores: f64,
    pub rss_kib_end: u64,
    pub peak_rss_kib: u64,
}

pub fn cost(pid: u32, before: ProcSample, wall: Duration) -> ProcCost {
    let after = ProcSample::of(pid);
    ProcCost {
        cpu_s: round3(after.cpu_s - before.cpu_s),
        cores: round3(cpu_share(before, after, wall)),
        rss_kib_end: after.rss_kib,
        peak_rss_kib: hwm_kib(pid).unwrap_or(0),
    }
}

/// Busy CPU seconds of the whole machine (all processes, all cores) from /proc/stat.
pub fn machine_busy_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    (total - idle) / 100.0
}

/// Cores busy machine-wide over a window, and how many of them went to processes outside the test.
pub fn machine_load(busy_before: f64, wall: Duration, ours: &[&ProcCost]) -> Value {
    let secs = wall.as_secs_f64().max(1e-9);
    let busy = (machine_busy_s() - busy_before) / secs;
    let mine: f64 = ours.iter().map(|c| c.cores).sum();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "machine_busy_cores": round3(busy),
        "other_processes_cores": round3((busy - mine).max(0.0)),
        "loadavg": loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// The server under test.

pub struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Server {
    /// Starts `bin` on a free loopback port with a fresh SQLite file in /tmp and waits until it
    /// listens. `env` is added to (and overrides) the defaults used by every scenario.
    pub async fn start(bin: &Path, env: &[(&str, String)]) -> Result<Server> {
        let dir =
            std::env::temp_dir().join(format!("rapport-load-{}-{}", std::process::id(), now_us()));
        std::fs::create_dir_all(&dir)?;
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = tokio::process::Command::new(bin);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("rapport.db").display()),
            )
            .env("RAPPORT_ADDR", "127.0.0.1:0")
            .env("RAPPORT_LOG", "warn,rapport::app=info")
            .env("RAPPORT_LOG_FORMAT", "json")
            .env(
                "RAPPORT_JWT_SECRET",
                "load-test-secret-load-test-secret-0123456789",
            )
            .env("RAPPORT_RATE_LIMITS", "auth_ip=1000000,account=1000000")
            .env("RAPPORT_FREE_CREDITS", "1000000");
        for (key, value) in env {
            command.env(key, value);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("server exited at once"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            for line in text.lines() {
                let Ok(value) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                // Fields are at the top level or under `fields`, depending on the formatter.
                let fields = if value.get("fields").is_some() {
                    &value["fields"]
                } else {
                    &value
                };
                if fields["message"] == "listening" {
                    if let Some(addr) = fields["addr"].as_str() {
                        let addr: SocketAddr = addr.parse()?;
                        return Ok(Server {
                            child,
                            pid,
                            addr,
                            dir,
                        });
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("server did not listen within 30 s; log:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Registers `count` organisation owners and returns their access tokens (15 minutes of life).
pub async fn register_owners(server: &Server, count: usize, tag: &str) -> Result<Vec<String>> {
    let http = reqwest::Client::new();
    let mut tokens = Vec::with_capacity(count);
    let mut tasks = futures::stream::iter(0..count)
        .map(|i| {
            let http = http.clone();
            let url = server.http("/api/v1/auth/register");
            let tag = tag.to_string();
            async move {
                let body = json!({
                    "email": format!("load-{tag}-{i}-{}@example.com", now_us()),
                    "password": "correct-horse-battery-staple-42",
                    "org_name": format!("Load {tag} {i}"),
                });
                let response = http.post(url).json(&body).send().await?;
                let status = response.status();
                let value: Value = response.json().await?;
                if !status.is_success() {
                    bail!("register failed: {status} {value}");
                }
                value["accessToken"]
                    .as_str()
                    .or_else(|| value["access_token"].as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("no access_token in {value}"))
            }
        })
        .buffer_unordered(8);
    while let Some(token) = tasks.next().await {
        tokens.push(token?);
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients.

pub type Ws = WebSocketStream<TcpStream>;

/// Loopback source addresses 127.0.0.2, 127.0.0.3, ... (one address runs out of ports near 28k).
pub fn source_ip(index: usize, sources: usize) -> IpAddr {
    let n = (index % sources.max(1)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n))
}

/// The client side keeps small buffers too, so thousands of sockets stay cheap for the generator.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a socket from `source` and performs the upgrade with the bearer credential in the
/// `Sec-WebSocket-Protocol` header. Returns the socket (before reading `auth.ok`).
pub async fn connect(server: SocketAddr, source: IpAddr, token: &str) -> Result<Ws> {
    connect_with(
        server,
        source,
        &format!("rapport.v1, rapport.bearer.{token}"),
        None,
    )
    .await
}

/// Opens a socket from `source` and performs the upgrade offering `protocols` (the whole
/// `Sec-WebSocket-Protocol` value), with a browser `Origin` header when given.
pub async fn connect_with(
    server: SocketAddr,
    source: IpAddr,
    protocols: &str,
    origin: Option<&str>,
) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = tokio::time::timeout(Duration::from_secs(15), socket.connect(server))
        .await
        .map_err(|_| anyhow!("tcp connect timed out"))??;
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{server}/api/v1/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols.parse()?);
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse()?);
    }
    let (ws, _response) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::client_async_with_config(request, stream, Some(client_config())),
    )
    .await
    .map_err(|_| anyhow!("upgrade timed out"))??;
    Ok(ws)
}

/// Connects and waits for `auth.ok`.
pub async fn connect_authed(server: SocketAddr, source: IpAddr, token: &str) -> Result<Ws> {
    let mut ws = connect(server, source, token).await?;
    let frame = next_frame(&mut ws, Duration::from_secs(15)).await?;
    if frame["type"] != "auth.ok" {
        bail!("expected auth.ok, got {frame}");
    }
    Ok(ws)
}

/// The next JSON text frame (control frames are answered by the library and skipped).
pub async fn next_frame(ws: &mut Ws, wait: Duration) -> Result<Value> {
    loop {
        let message = tokio::time::timeout(wait, ws.next())
            .await
            .map_err(|_| anyhow!("no frame within {wait:?}"))?
            .ok_or_else(|| anyhow!("socket closed"))??;
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
            Message::Close(frame) => bail!("closed by server: {frame:?}"),
            _ => continue,
        }
    }
}

/// Like [`next_frame`], also returning the receive time in microseconds since the epoch.
pub async fn next_frame_at(ws: &mut Ws, wait: Duration) -> Result<(Value, u64)> {
    let frame = next_frame(ws, wait).await?;
    Ok((frame, now_us()))
}

pub async fn send(ws: &mut Ws, frame: Value) -> Result<()> {
    ws.send(Message::Text(frame.to_string().into())).await?;
    Ok(())
}

/// Tracks `seq` on one session: every numbered frame must be exactly the next one.
#[derive(Debug, Default)]
pub struct SeqCheck {
    pub last_seq: i64,
    pub gaps: u64,
    pub duplicates: u64,
}

impl SeqCheck {
    /// Records a frame; returns false when its `seq` was not `last_seq + 1`.
    pub fn see(&mut self, frame: &Value) -> bool {
        let Some(seq) = frame["seq"].as_i64() else {
            return true;
        };
        if seq <= self.last_seq {
            self.duplicates += 1;
            return false;
        }
        if seq != self.last_seq + 1 {
            self.gaps += 1;
            self.last_seq = seq;
            return false;
        }
        self.last_seq = seq;
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics and results.

#[derive(Debug, Clone, Serialize, Default)]
pub struct Dist {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// Percentiles of samples in microseconds, reported in milliseconds.
pub fn dist_ms(samples: &mut [u64]) -> Dist {
    if samples.is_empty() {
        return Dist::default();
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        round3(samples[index] as f64 / 1000.0)
    };
    let sum: u64 = samples.iter().sum();
    Dist {
        count: samples.len(),
        p50: at(0.50),
        p90: at(0.90),
        p95: at(0.95),
        p99: at(0.99),
        p999: at(0.999),
        max: round3(samples[samples.len() - 1] as f64 / 1000.0),
        mean: round3(sum as f64 / samples.len() as f64 / 1000.0),
    }
}

pub fn write_result(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")?;
    println!("result written to {}", path.display());
    Ok(())
}

/// Machine facts recorded beside every result.
pub fn machine() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    json!({ "cpus": cpus, "cpu_model": model, "kernel": kernel })
}

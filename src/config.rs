//! Typed configuration, read from command-line flags and `RAPPORT_*` environment variables.
//!
//! `Settings` is what the server runs on; tests build it directly. `ServeArgs` is its command-line and
//! environment face. Unknown `RAPPORT_*` variables are an error, because a misspelt setting that is
//! silently ignored is worse than a refusal to start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// Deployment environment: production refuses to start with missing secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlotExtraction {
    Model,
    Parser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub const DEFAULT_API_KEY_GRACE_SECS: u64 = 86_400;
pub const DEFAULT_MAIL_FROM: &str = "Rapport <no-reply@rapport.localhost>";

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub database_url: String,
    pub environment: Environment,
    /// HS256 signing key for access tokens; generated and persisted in development when absent.
    pub jwt_secret: Option<SecretString>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Origins allowed by CORS; empty means any origin (requests carry no cookies).
    pub cors_origins: Vec<String>,
    /// Maximum pooled database connections.
    pub database_max_connections: u32,
    /// Earlier signing keys that still verify tokens during a key rotation.
    pub jwt_previous_secrets: Vec<SecretString>,
    /// Base URL clients reach this server at, used in emailed links.
    pub public_url: Option<String>,
    pub rate_limits: crate::http::rate_limit::RateLimitSettings,
    /// How long a rotated-out API key keeps working (zero-downtime rotation).
    pub api_key_grace: Duration,
    /// `smtp://` or `smtps://` URL of the mail relay; without it mail goes to `mailbox_dir`.
    pub smtp_url: Option<SecretString>,
    /// Where undelivered-by-SMTP mail is written as `.eml` files; defaults beside the database.
    pub mailbox_dir: Option<PathBuf>,
    /// The `From` header of outgoing mail.
    pub mail_from: String,
    pub llm: LlmSettings,
    pub hub: crate::hub::HubSettings,
    pub knowledge: crate::knowledge::KnowledgeSettings,
    pub media: MediaSettings,
    pub stripe: StripeSettings,
    /// Reverse proxies whose `X-Forwarded-For` names the client (per-address limits).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Audio of generated content: speech provider, where files are kept, how long URLs live.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// Where audio files are written; defaults to `media/` beside the SQLite file.
    pub dir: Option<PathBuf>,
    /// How long a pre-signed media URL stays valid.
    pub url_ttl: Duration,
    /// `false` turns speech off entirely (audio is then reported unavailable).
    pub tts_enabled: bool,
    /// OpenAI-compatible speech API base (`…/v1`); unset uses `espeak-ng` when installed.
    pub tts_base_url: Option<String>,
    pub tts_api_key: Option<SecretString>,
    pub tts_model: String,
    pub tts_voice: String,
    /// How often the audio worker looks for queued jobs.
    pub audio_poll: Duration,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            dir: None,
            url_ttl: Duration::from_secs(3600),
            tts_enabled: true,
            tts_base_url: None,
            tts_api_key: None,
            tts_model: "tts-1".into(),
            tts_voice: "alloy".into(),
            audio_poll: Duration::from_millis(250),
        }
    }
}

impl MediaSettings {
    pub fn tts(&self) -> anyhow::Result<Option<std::sync::Arc<dyn crate::media::TextToSpeech>>> {
        if !self.tts_enabled {
            return Ok(None);
        }
        Ok(match &self.tts_base_url {
            Some(base) => Some(std::sync::Arc::new(
                crate::media::openai::OpenAiSpeech::new(
                    base.clone(),
                    self.tts_api_key.clone(),
                    self.tts_model.clone(),
                    self.tts_voice.clone(),
                )?,
            )),
            None => crate::media::espeak::Espeak::detect()
                .map(|e| std::sync::Arc::new(e) as std::sync::Arc<dyn crate::media::TextToSpeech>),
        })
    }
}

/// Stripe: API base and keys. Without a secret key checkout answers 503; without a webhook
/// secret the webhook does.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub api_base: String,
    pub secret_key: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    pub webhook_tolerance_secs: i64,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            api_base: crate::payments::stripe::DEFAULT_API_BASE.into(),
            secret_key: None,
            webhook_secret: None,
            webhook_tolerance_secs: crate::payments::signature::DEFAULT_TOLERANCE_SECS,
        }
    }
}

/// Which model answers: an OpenAI-compatible server when a base URL is set, else the offline
/// template provider.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub model: String,
    /// Pace of the offline provider's word-by-word stream.
    pub offline_word_delay: Duration,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: "gpt-4o-mini".into(),
            offline_word_delay: Duration::from_millis(15),
        }
    }
}

impl LlmSettings {
    pub fn provider(&self) -> anyhow::Result<std::sync::Arc<dyn crate::llm::ChatProvider>> {
        Ok(match &self.base_url {
            Some(base_url) => {
                let mut config =
                    crate::llm::OpenAiConfig::new(base_url.clone(), self.model.clone());
                config.api_key = self.api_key.clone();
                std::sync::Arc::new(
                    crate::llm::OpenAiProvider::new(config)
                        .map_err(|e| anyhow::anyhow!("configuring the LLM provider: {e}"))?,
                )
            }
            None => std::sync::Arc::new(crate::llm::OfflineProvider::new(self.offline_word_delay)),
        })
    }
}

impl Settings {
    /// Defaults suitable for a local run; `addr` port 0 picks a free port.
    pub fn local(database_url: impl Into<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            environment: Environment::Development,
            jwt_secret: None,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(20),
            cors_origins: Vec::new(),
            database_max_connections: 16,
            jwt_previous_secrets: Vec::new(),
            public_url: None,
            rate_limits: Default::default(),
            api_key_grace: Duration::from_secs(DEFAULT_API_KEY_GRACE_SECS),
            smtp_url: None,
            mailbox_dir: None,
            mail_from: DEFAULT_MAIL_FROM.to_string(),
            llm: LlmSettings::default(),
            hub: Default::default(),
            knowledge: Default::default(),
            media: MediaSettings::default(),
            stripe: StripeSettings::default(),
            trusted_proxies: Vec::new(),
        }
    }

    /// The base URL for links sent to users.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
            .trim_end_matches('/')
            .to_string()
    }

    /// The mailbox directory: configured, else `mailbox/` beside the SQLite file or the working dir.
    pub fn mailbox_dir(&self) -> PathBuf {
        self.mailbox_dir
            .clone()
            .unwrap_or_else(|| self.secret_dir().join("mailbox"))
    }

    /// The media directory: configured, else `media/` beside the SQLite file or the working dir.
    pub fn media_dir(&self) -> PathBuf {
        self.media
            .dir
            .clone()
            .unwrap_or_else(|| self.secret_dir().join("media"))
    }

    /// Where a generated development secret is kept: beside the SQLite file, else the working dir.
    pub fn secret_dir(&self) -> PathBuf {
        crate::storage::sqlite_path(&self.database_url)
            .and_then(|p| p.parent().map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "rapport",
    version,
    about = "A realtime, WebSocket-first conversation server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform superuser. The password is read from RAPPORT_SUPERUSER_PASSWORD or stdin.
    CreateSuperuser {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address; port 0 picks a free port (the chosen address is logged).
    #[arg(
        long,
        env = "RAPPORT_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub addr: SocketAddr,
    /// `sqlite://path` (created on first run) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://rapport.db",
        global = true
    )]
    pub database_url: String,
    #[arg(long, env = "RAPPORT_ENV", value_enum, default_value_t, global = true)]
    pub env: Environment,
    #[arg(
        long,
        env = "RAPPORT_LOG_FORMAT",
        value_enum,
        default_value_t,
        global = true
    )]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info,rapport=debug`.
    #[arg(long, env = "RAPPORT_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Access-token signing key (at least 32 bytes). Never printed.
    #[arg(
        long,
        env = "RAPPORT_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,
    #[arg(long, env = "RAPPORT_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,
    /// Per-request timeout in seconds (streams are timed only until their headers).
    #[arg(
        long,
        env = "RAPPORT_REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,
    /// How long a graceful shutdown waits for in-flight work, in seconds.
    #[arg(
        long,
        env = "RAPPORT_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 20,
        global = true
    )]
    pub shutdown_timeout_secs: u64,
    /// Comma-separated CORS origins; empty allows any origin.
    #[arg(
        long,
        env = "RAPPORT_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,
    #[arg(
        long,
        env = "RAPPORT_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub database_max_connections: u32,
    /// Comma-separated earlier signing keys, still accepted during a key rotation. Never printed.
    #[arg(
        long,
        env = "RAPPORT_JWT_PREVIOUS_SECRETS",
        hide_env_values = true,
        value_delimiter = ',',
        global = true
    )]
    pub jwt_previous_secrets: Vec<String>,
    /// Base URL clients reach this server at (used in emailed links); defaults to the listen address.
    #[arg(long, env = "RAPPORT_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Per-minute limits per route group, e.g. `auth_ip=30,account=600,org=3000,api_key=600`.
    #[arg(long, env = "RAPPORT_RATE_LIMITS", default_value = "", global = true)]
    pub rate_limits: String,
    /// Seconds a rotated-out API key stays valid.
    #[arg(long, env = "RAPPORT_API_KEY_GRACE_SECS", default_value_t = DEFAULT_API_KEY_GRACE_SECS, global = true)]
    pub api_key_grace_secs: u64,
    /// SMTP relay, e.g. `smtps://user:pass@smtp.example.com` or `smtp://localhost:1025`. Never printed.
    #[arg(long, env = "RAPPORT_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// Directory mail is written to as `.eml` files when no SMTP relay is configured.
    #[arg(long, env = "RAPPORT_MAILBOX_DIR", global = true)]
    pub mailbox_dir: Option<PathBuf>,
    /// `From` header of outgoing mail.
    #[arg(long, env = "RAPPORT_MAIL_FROM", default_value = DEFAULT_MAIL_FROM, global = true)]
    pub mail_from: String,
    /// OpenAI-compatible API base (e.g. `http://127.0.0.1:8000/v1`); unset uses the offline provider.
    #[arg(long, env = "RAPPORT_LLM_BASE_URL", global = true)]
    pub llm_base_url: Option<String>,
    /// API key for the LLM server. Never printed.
    #[arg(
        long,
        env = "RAPPORT_LLM_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub llm_api_key: Option<String>,
    #[arg(
        long,
        env = "RAPPORT_LLM_MODEL",
        default_value = "gpt-4o-mini",
        global = true
    )]
    pub llm_model: String,
    /// Milliseconds between words of the offline provider's stream.
    #[arg(
        long,
        env = "RAPPORT_OFFLINE_WORD_DELAY_MS",
        default_value_t = 15,
        global = true
    )]
    pub offline_word_delay_ms: u64,
    /// How free text fills the session's slots when a real model is configured: `model` (structured
    /// output, with the parser as fallback; one extra model call per message) or `parser` only.
    #[arg(long, env = "RAPPORT_LLM_SLOT_EXTRACTION", value_enum, default_value_t = SlotExtraction::Model, global = true)]
    pub llm_slot_extraction: SlotExtraction,
    /// Credits granted to every new account.
    #[arg(long, env = "RAPPORT_FREE_CREDITS", default_value_t = 3, global = true)]
    pub free_credits: i64,
    /// Comma-separated addresses or CIDR ranges of reverse proxies in front of the server; their
    /// `X-Forwarded-For` header names the client for per-address rate limits.
    #[arg(
        long,
        env = "RAPPORT_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<String>,
    /// Seconds a chat-widget session token stays valid without use.
    #[arg(
        long,
        env = "RAPPORT_CHAT_TOKEN_TTL_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub chat_token_ttl_secs: u64,
    /// Longest chat-widget visitor message, in characters (at most 4000).
    #[arg(
        long,
        env = "RAPPORT_CHAT_MAX_MESSAGE_CHARS",
        default_value_t = 2000,
        global = true
    )]
    pub chat_max_message_chars: usize,
    /// OpenAI-compatible embeddings API base (e.g. `http://127.0.0.1:8000/v1`); unset uses the
    /// built-in offline embedder.
    #[arg(long, env = "RAPPORT_EMBED_BASE_URL", global = true)]
    pub embed_base_url: Option<String>,
    /// API key for the embeddings server. Never printed.
    #[arg(
        long,
        env = "RAPPORT_EMBED_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub embed_api_key: Option<String>,
    #[arg(
        long,
        env = "RAPPORT_EMBED_MODEL",
        default_value = "text-embedding-3-small",
        global = true
    )]
    pub embed_model: String,
    /// Vector length (default 384 for the built-in embedder, 1536 for a service).
    #[arg(long, env = "RAPPORT_EMBED_DIMENSION", global = true)]
    pub embed_dimension: Option<usize>,
    /// Largest knowledge-base document accepted, in bytes.
    #[arg(long, env = "RAPPORT_MAX_UPLOAD_BYTES", default_value_t = crate::knowledge::DEFAULT_MAX_UPLOAD_BYTES, global = true)]
    pub max_upload_bytes: usize,
    /// Shared secret for the internal endpoints (`X-Internal-Key` header). Never printed.
    #[arg(
        long,
        env = "RAPPORT_INTERNAL_KEY",
        hide_env_values = true,
        global = true
    )]
    pub internal_key: Option<String>,
    /// Directory audio files are written to (default `media/` beside the SQLite file).
    #[arg(long, env = "RAPPORT_MEDIA_DIR", global = true)]
    pub media_dir: Option<PathBuf>,
    /// Seconds a pre-signed media URL stays valid.
    #[arg(
        long,
        env = "RAPPORT_MEDIA_URL_TTL_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub media_url_ttl_secs: u64,
    /// `auto` (OpenAI-compatible speech when a base URL is set, else espeak-ng when installed) or `off`.
    #[arg(long, env = "RAPPORT_TTS", default_value = "auto", global = true)]
    pub tts: TtsMode,
    /// OpenAI-compatible speech API base, e.g. `https://api.openai.com/v1`.
    #[arg(long, env = "RAPPORT_TTS_BASE_URL", global = true)]
    pub tts_base_url: Option<String>,
    /// API key for the speech server. Never printed.
    #[arg(
        long,
        env = "RAPPORT_TTS_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub tts_api_key: Option<String>,
    #[arg(
        long,
        env = "RAPPORT_TTS_MODEL",
        default_value = "tts-1",
        global = true
    )]
    pub tts_model: String,
    #[arg(
        long,
        env = "RAPPORT_TTS_VOICE",
        default_value = "alloy",
        global = true
    )]
    pub tts_voice: String,
    /// Stripe API base; tests point it at a local server speaking Stripe's wire format.
    #[arg(long, env = "RAPPORT_STRIPE_API_BASE", default_value = crate::payments::stripe::DEFAULT_API_BASE, global = true)]
    pub stripe_api_base: String,
    /// Stripe secret key (`sk_…`). Never printed.
    #[arg(
        long,
        env = "RAPPORT_STRIPE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub stripe_secret_key: Option<String>,
    /// Signing secret of the webhook endpoint (`whsec_…`). Never printed.
    #[arg(
        long,
        env = "RAPPORT_STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub stripe_webhook_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum TtsMode {
    #[default]
    Auto,
    Off,
}

impl ServeArgs {
    pub fn into_settings(self) -> anyhow::Result<Settings> {
        let jwt_secret = self.jwt_secret.map(SecretString::from);
        if self.env == Environment::Production && jwt_secret.is_none() {
            bail!("RAPPORT_ENV=production requires RAPPORT_JWT_SECRET");
        }
        if jwt_secret
            .as_ref()
            .is_some_and(|s| secrecy::ExposeSecret::expose_secret(s).len() < 32)
        {
            bail!("RAPPORT_JWT_SECRET must be at least 32 bytes");
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "RAPPORT_TRUSTED_PROXIES: `{p}` is not an address or CIDR range"
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !(1..=4000).contains(&self.chat_max_message_chars) {
            bail!("RAPPORT_CHAT_MAX_MESSAGE_CHARS must be between 1 and 4000");
        }
        if self.max_body_bytes == 0 {
            bail!("RAPPORT_MAX_BODY_BYTES must be positive");
        }
        if self
            .internal_key
            .as_ref()
            .is_some_and(|k| !k.is_empty() && k.len() < 32)
        {
            bail!("RAPPORT_INTERNAL_KEY must be at least 32 bytes");
        }
        Ok(Settings {
            trusted_proxies,
            addr: self.addr,
            database_url: self.database_url,
            environment: self.env,
            jwt_secret,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            cors_origins: self
                .cors_origins
                .into_iter()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            database_max_connections: self.database_max_connections.max(1),
            jwt_previous_secrets: self
                .jwt_previous_secrets
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(SecretString::from)
                .collect(),
            public_url: self.public_url,
            rate_limits: crate::http::rate_limit::RateLimitSettings::parse(&self.rate_limits)?,
            api_key_grace: Duration::from_secs(self.api_key_grace_secs),
            smtp_url: self
                .smtp_url
                .filter(|u| !u.trim().is_empty())
                .map(SecretString::from),
            mailbox_dir: self.mailbox_dir,
            mail_from: self.mail_from,
            llm: LlmSettings {
                base_url: self.llm_base_url.filter(|u| !u.is_empty()),
                api_key: self.llm_api_key.map(SecretString::from),
                model: self.llm_model,
                offline_word_delay: Duration::from_millis(self.offline_word_delay_ms),
            },
            hub: crate::hub::HubSettings {
                free_credits: self.free_credits.max(0),
                model_slot_extraction: self.llm_slot_extraction == SlotExtraction::Model,
                chat_token_ttl: Duration::from_secs(self.chat_token_ttl_secs.max(1)),
                chat_max_message_chars: self.chat_max_message_chars,
                ..Default::default()
            },
            media: MediaSettings {
                dir: self.media_dir,
                url_ttl: Duration::from_secs(self.media_url_ttl_secs.max(1)),
                tts_enabled: self.tts == TtsMode::Auto,
                tts_base_url: self.tts_base_url.filter(|u| !u.is_empty()),
                tts_api_key: self.tts_api_key.map(SecretString::from),
                tts_model: self.tts_model,
                tts_voice: self.tts_voice,
                ..Default::default()
            },
            stripe: StripeSettings {
                api_base: self.stripe_api_base,
                secret_key: self
                    .stripe_secret_key
                    .filter(|k| !k.is_empty())
                    .map(SecretString::from),
                webhook_secret: self
                    .stripe_webhook_secret
                    .filter(|k| !k.is_empty())
                    .map(SecretString::from),
                ..Default::default()
            },
            knowledge: crate::knowledge::KnowledgeSettings {
                embed_base_url: self.embed_base_url.filter(|u| !u.is_empty()),
                embed_api_key: self.embed_api_key.map(SecretString::from),
                embed_model: self.embed_model,
                embed_dimension: self.embed_dimension,
                max_upload_bytes: self.max_upload_bytes.max(1),
                internal_key: self
                    .internal_key
                    .filter(|k| !k.is_empty())
                    .map(SecretString::from),
                ..Default::default()
            },
        })
    }
}

/// Environment variables the server reads that are not declared as flags.
const EXTRA_VARIABLES: &[&str] = &["RAPPORT_SUPERUSER_PASSWORD"];

/// Namespaces of the development scripts (local PostgreSQL, test harness), not server settings.
const TOOLING_PREFIXES: &[&str] = &["RAPPORT_PG_", "RAPPORT_TEST_"];

/// Refuses `RAPPORT_*` variables that no setting reads.
pub fn reject_unknown_variables(
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    let command = Cli::command();
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .filter_map(|name| name.to_str().map(str::to_owned))
        .chain(EXTRA_VARIABLES.iter().map(|s| s.to_string()))
        .collect();
    let unknown: Vec<String> = vars
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("RAPPORT_") && !known.contains(name))
        .filter(|name| !TOOLING_PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "unknown configuration variable(s): {}; known: {}",
            unknown.join(", "),
            known.join(", ")
        );
    }
    Ok(())
}

/// Reads a secret file written by a previous development run, or writes a new random one.
pub fn load_or_create_dev_secret(dir: &std::path::Path) -> anyhow::Result<SecretString> {
    use rand::RngCore;
    let path = dir.join("rapport.jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let trimmed = existing.trim();
        if trimmed.len() >= 32 {
            return Ok(SecretString::from(trimmed.to_string()));
        }
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "no RAPPORT_JWT_SECRET set: generated a development signing key and saved it; set one in production"
    );
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn unknown_variables_are_refused() {
        let vars = vec![
            ("RAPPORT_ADDR".to_string(), "x".to_string()),
            ("RAPPORT_ADRR".to_string(), "x".to_string()),
            ("PATH".to_string(), "x".to_string()),
        ];
        let err = reject_unknown_variables(vars.into_iter()).unwrap_err();
        assert!(err.to_string().contains("RAPPORT_ADRR"));
        assert!(!err.to_string().contains("PATH,"));
    }

    #[test]
    fn known_variables_pass() {
        let vars = vec![
            ("RAPPORT_ADDR".to_string(), "x".to_string()),
            ("RAPPORT_JWT_SECRET".to_string(), "x".to_string()),
        ];
        reject_unknown_variables(vars.into_iter()).unwrap();
    }

    #[test]
    fn production_requires_a_secret() {
        let cli = Cli::try_parse_from(["rapport", "--env", "production"]).unwrap();
        assert!(cli.serve.into_settings().is_err());
    }

    #[test]
    fn dev_secret_is_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_dev_secret(dir.path()).unwrap();
        let b = load_or_create_dev_secret(dir.path()).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().len() >= 32);
    }
}

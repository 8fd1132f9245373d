//! Rapport: a realtime, WebSocket-first conversation server.
//!
//! See `ARCHITECTURE.md` for how the modules fit together.

pub mod admin;
pub mod app;
pub mod auth;
pub mod bot_config;
pub mod chat;
pub mod commerce;
pub mod config;
pub mod conversation;
pub mod error;
pub mod http;
pub mod hub;
pub mod knowledge;
pub mod llm;
pub mod mail;
pub mod media;
pub mod payments;
pub mod rag;
pub mod state;
pub mod storage;
pub mod telemetry;

pub use app::Application;
pub use config::Settings;

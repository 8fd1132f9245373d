//! Integration tests: the real server on a random port, driven over HTTP and WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit_logs;
mod auth;
mod chat;
mod cluster;
mod commerce;
mod employees;
mod fixtures;
mod foundation;
mod helpers;
mod hub;
mod knowledge;
mod knowledge_eval;
mod mail;
mod orgs;
mod passwords;
mod rate_limits;
mod stripe_mock;
mod superuser;
mod tenancy;
mod upstream;
mod users;
mod ws_client;

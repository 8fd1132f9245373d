//! Integration tests: the real server on a random port, driven over HTTP and WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod foundation;
mod helpers;
mod fixtures;
mod passwords;
mod orgs;
mod employees;
mod superuser;
mod tenancy;
mod rate_limits;
mod audit_logs;
mod mail;
mod users;

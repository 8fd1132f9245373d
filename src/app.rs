//! Start-up and shutdown: what `main` runs and what tests spawn.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::Request;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::config::Settings;
use crate::state::AppState;
use crate::storage::Db;

/// A bound, migrated, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    app: axum::Router,
    mail_sender: Arc<dyn crate::mail::Sender>,
}

impl Application {
    /// Connects to storage, applies migrations, builds the router and binds the listener.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        if settings.jwt_secret.is_none() {
            settings.jwt_secret = Some(crate::config::load_or_create_dev_secret(
                &settings.secret_dir(),
            )?);
        }
        let db = Db::connect(&settings.database_url, settings.database_max_connections).await?;
        db.migrate().await?;
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let addr = listener.local_addr()?;
        // Links the server hands out (media URLs, emails) must name the port actually bound.
        if settings.public_url.is_none() {
            settings.public_url = Some(format!("http://{addr}"));
        }
        let mut state = AppState::new(Arc::new(settings), db)?;
        let (routes, openapi) = crate::http::routes(&state);
        state.openapi_json = Arc::new(Bytes::from(
            openapi
                .to_json()
                .context("serialising the OpenAPI document")?,
        ));
        let app = crate::http::app(routes, state.clone());
        let mail_sender = crate::mail::sender_from_settings(&state.settings)?;
        Ok(Self {
            listener,
            addr,
            state,
            app,
            mail_sender,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Cancelling this token starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains: stops accepting, lets in-flight
    /// requests finish within the drain timeout, waits for background tasks, closes storage.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            addr,
            state,
            app,
            mail_sender,
        } = self;
        tracing::info!(%addr, backend = state.db.backend.name(), "listening");
        spawn_background_tasks(&state, mail_sender);
        // Trailing slashes are trimmed before routing so `/x/` and `/x` reach the same handler.
        let app = NormalizePathLayer::trim_trailing_slash().layer(app);
        let service =
            axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
        let shutdown = state.shutdown.clone();
        // Frames are small and latency-sensitive: no Nagle delay on accepted sockets.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, service)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut server = tokio::spawn(async move { server.await });

        tokio::select! {
            result = &mut server => {
                result.context("server task failed")?.context("server failed")?;
                return Ok(());
            }
            () = shutdown.cancelled() => {}
        }
        state.start_draining();
        tracing::info!(timeout = ?state.settings.shutdown_timeout, "shutting down: draining");
        let deadline = tokio::time::Instant::now() + state.settings.shutdown_timeout;
        // Live connections are told to reconnect elsewhere; sessions checkpoint and flush.
        state.hub.shutdown(deadline).await;
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(result) => result
                .context("server task failed")?
                .context("server failed")?,
            Err(_) => {
                tracing::warn!("drain timeout reached; closing remaining connections");
                server.abort();
            }
        }
        state.tasks.close();
        if tokio::time::timeout_at(deadline, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running at the drain deadline");
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Work that runs beside the server for its whole life and stops on shutdown.
fn spawn_background_tasks(state: &AppState, mail_sender: Arc<dyn crate::mail::Sender>) {
    state.tasks.spawn(crate::mail::worker::run(
        state.db.clone(),
        mail_sender,
        std::time::Duration::from_secs(2),
        state.shutdown.clone(),
    ));
    let cache = state.commerce.cache.clone();
    let worker = crate::media::worker::AudioWorker {
        db: state.db.clone(),
        tts: state.commerce.tts.clone(),
        store: state.commerce.store.clone(),
        on_change: std::sync::Arc::new(move |id: &str| cache.invalidate_content(id)),
        poll: state.settings.media.audio_poll,
    };
    state.tasks.spawn(worker.run(state.shutdown.clone()));
    state.knowledge.spawn_worker();
    // Rate-limit state is keyed by IP, account, org and key: forget idle keys so memory stays bounded.
    let (limits, shutdown) = (state.rate_limits.clone(), state.shutdown.clone());
    state.tasks.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => limits.prune(),
            }
        }
    });
}

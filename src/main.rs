use anyhow::Context;
use clap::Parser;
use rapport::config::{reject_unknown_variables, AdminCommand, Cli, Command};
use rapport::storage::Db;
use rapport::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    rapport::telemetry::init(cli.serve.log_format, &cli.serve.log);
    reject_unknown_variables(std::env::vars())?;
    let settings = cli.serve.into_settings()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            let shutdown = app.shutdown_token();
            tokio::spawn(async move {
                wait_for_signal().await;
                shutdown.cancel();
            });
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let db = Db::connect(&settings.database_url, 1).await?;
            db.migrate().await?;
            tracing::info!(backend = db.backend.name(), "migrations applied");
            Ok(())
        }
        Command::Admin(AdminCommand::CreateSuperuser { email }) => {
            let password = rapport::admin::read_superuser_password()?;
            let db = Db::connect(&settings.database_url, 1).await?;
            db.migrate().await?;
            let user = rapport::admin::create_superuser(&db, &email, &password).await?;
            db.close().await;
            tracing::info!(user_id = %user.id, "superuser created");
            Ok(())
        }
    }
    .context("rapport failed")
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}

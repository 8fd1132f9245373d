//! Spawns the real server on a random port over a fresh database, SQLite by default or PostgreSQL
//! when `RAPPORT_TEST_DATABASE_URL` names a server (each test then gets its own database).

use std::net::SocketAddr;

use rapport::{Application, Settings};
use sqlx::Connection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base, path)
    }

    /// Where the mail worker writes messages in tests.
    pub fn mailbox_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("mailbox")
    }

    pub fn backend(&self) -> &'static str {
        if self.database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Triggers a graceful shutdown and waits for the server to finish.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.server.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A database URL for one test: a file in `dir`, or a new PostgreSQL database.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    match std::env::var("RAPPORT_TEST_DATABASE_URL") {
        Ok(admin_url) if admin_url.starts_with("postgres") => {
            sqlx::any::install_default_drivers();
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::AnyConnection::connect(&admin_url)
                .await
                .expect("connect to the PostgreSQL test server");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create a test database");
            let _ = conn.close().await;
            let (base, _db) = admin_url
                .rsplit_once('/')
                .expect("RAPPORT_TEST_DATABASE_URL ends with /database");
            let query = _db
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{base}/{name}{query}")
        }
        _ => format!("sqlite://{}", dir.join("rapport.db").display()),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(dir.path()).await;
    start(dir, database_url, Box::new(configure)).await
}

impl TestApp {
    /// Stops the server gracefully and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// A second server (another node) on the same database.
    pub async fn second_node(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        start(dir, self.database_url.clone(), Box::new(configure)).await
    }

    /// Like `restart`, with the new server's settings adjusted first.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        self.stop().await.expect("clean stop");
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("temp dir"));
        start(dir, self.database_url.clone(), Box::new(configure)).await
    }
}

async fn start(
    dir: tempfile::TempDir,
    database_url: String,
    configure: Box<dyn FnOnce(&mut Settings) + '_>,
) -> TestApp {
    let mut settings = Settings::local(database_url.clone());
    settings.jwt_secret = Some("test-signing-key-that-is-long-enough-0123456789".into());
    settings.database_max_connections = 8;
    settings.llm.offline_word_delay = std::time::Duration::ZERO;
    configure(&mut settings);
    // Mail goes to the test's own directory, never the working tree.
    settings
        .mailbox_dir
        .get_or_insert_with(|| dir.path().join("mailbox"));
    // Audio files too.
    settings
        .media
        .dir
        .get_or_insert_with(|| dir.path().join("media"));
    let app = Application::build(settings).await.expect("build the app");
    let addr = app.addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        database_url,
        shutdown,
        server: Some(server),
        _dir: dir,
    }
}

/// Asserts a response is a problem document with the given status and code, and returns it.
pub async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content-type was {content_type}"
    );
    let trace = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: serde_json::Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "problem: {body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["trace_id"], trace.as_str());
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem lacks {field}: {body}");
    }
    body
}

/// A registered account with its tokens.
pub struct Account {
    pub id: String,
    pub email: String,
    pub org_id: String,
    pub access: String,
    pub refresh: String,
}

pub const PASSWORD: &str = "violet-tundra-42";

impl TestApp {
    pub async fn db(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect to the test database")
    }

    /// The newest token of `kind` mailed to `to`, read from the outbox.
    pub async fn mailed_token(&self, to: &str, kind: &str) -> String {
        let mut db = self.db().await;
        let (body,): (String,) = sqlx::query_as(
            "SELECT body FROM email_outbox WHERE to_address = $1 AND kind = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(to)
        .bind(kind)
        .fetch_one(&mut db)
        .await
        .expect("a mailed token");
        body.lines()
            .find_map(|l| l.split_once("token: ").map(|(_, t)| t.trim().to_string()))
            .expect("the mail carries a token")
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.api(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a new organisation owner and verifies the email.
    pub async fn owner(&self) -> Account {
        let email = format!("owner-{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self
            .post_json(
                "/auth/register",
                serde_json::json!({"email": email, "password": PASSWORD, "org_name": "Acme Wellness"}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let body: serde_json::Value = response.json().await.unwrap();
        let token = self.mailed_token(&email, "verify_email").await;
        let verified = self
            .client
            .get(self.api(&format!("/auth/verify/{token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(verified.status(), 200);
        Account {
            id: body["user"]["id"].as_str().unwrap().to_string(),
            email,
            org_id: body["user"]["org"]["id"].as_str().unwrap().to_string(),
            access: body["accessToken"].as_str().unwrap().to_string(),
            refresh: body["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.api(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

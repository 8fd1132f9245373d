use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_reports_the_database_up() {
    let app = spawn_app().await;
    let response = app.client.get(app.api("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"]["status"], "up");
    assert_eq!(body["checks"]["database"]["kind"], app.backend());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn probes_answer() {
    let app = spawn_app().await;
    for path in ["/livez", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn postgres_backend_has_pgvector() {
    let app = spawn_app().await;
    if app.backend() != "postgres" {
        return;
    }
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .unwrap();
    let version: (String,) =
        sqlx::query_as("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!version.0.is_empty());
}

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.api("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "ROUTE_NOT_FOUND").await;
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;
    let response = app.client.delete(app.api("/health")).send().await.unwrap();
    assert!(response.headers().get("allow").is_some());
    assert_problem(response, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn oversized_body_is_a_413_problem() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024).await;
    let response = app
        .client
        .post(app.api("/health"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE").await;
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.api("/missing"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let body = assert_problem(response, 404, "ROUTE_NOT_FOUND").await;
    assert_eq!(body["trace_id"], "trace-abc-123");

    // An id that could inject into logs is replaced by a generated one.
    let response = app
        .client
        .get(app.api("/health"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 32);
}

#[tokio::test]
async fn trailing_slash_reaches_the_same_route() {
    let app = spawn_app().await;
    let response = app.client.get(app.api("/health/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn openapi_is_3_1_and_every_documented_route_exists() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app
        .client
        .get(app.api("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/health"));
    assert!(paths.contains_key("/api/v1/openapi.json"));
    for (path, ops) in paths {
        // Substitute a syntactically valid value for every path parameter.
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "00000000-0000-0000-0000-000000000000"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ops.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert_ne!(
                body["code"], "ROUTE_NOT_FOUND",
                "{method} {path} is documented but not routed"
            );
        }
    }
}

/// A request whose body is still arriving when shutdown starts is finished, not cut off.
#[tokio::test]
async fn graceful_shutdown_finishes_an_in_flight_request() {
    let mut app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = br#"{"email":"nobody@example.com","password":"not-the-password"}"#;
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are refused while the in-flight one is still served.
    stream.write_all(&body[10..]).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("response within the drain timeout")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 401"), "got: {text}");
    app.stop().await.unwrap();
}

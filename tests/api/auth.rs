use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, PASSWORD};

#[tokio::test]
async fn register_verify_login_me() {
    let app = spawn_app().await;
    let email = "Founder@Example.com";
    let response = app
        .post_json(
            "/auth/register",
            json!({"email": email, "password": PASSWORD, "org_name": "Calm Co"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "founder@example.com");
    assert_eq!(body["user"]["roles"], json!(["owner"]));
    assert_eq!(body["user"]["status"], "pending");
    assert_eq!(body["user"]["org"]["status"], "pending");
    assert_eq!(body["tokenType"], "Bearer");

    let token = app
        .mailed_token("founder@example.com", "verify_email")
        .await;
    let verified = app
        .client
        .get(app.api(&format!("/auth/verify/{token}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    // Single use.
    let again = app
        .client
        .get(app.api(&format!("/auth/verify/{token}")))
        .send()
        .await
        .unwrap();
    assert_problem(again, 400, "INVALID_TOKEN").await;

    let login = app
        .post_json(
            "/auth/login",
            json!({"email": "founder@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 200);
    let login: serde_json::Value = login.json().await.unwrap();
    let me: serde_json::Value = app
        .get_auth("/auth/me", login["accessToken"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["status"], "active");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["org"]["status"], "active");
}

#[tokio::test]
async fn registration_is_validated() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/auth/register",
            json!({"email": "not-an-email", "password": "password123"}),
        )
        .await;
    let problem = assert_problem(response, 422, "VALIDATION_FAILED").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"email"));
    assert!(fields.contains(&"password"));
    assert!(fields.contains(&"org_name"));

    let malformed = app
        .client
        .post(app.api("/auth/register"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(malformed, 400, "MALFORMED_JSON").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));

    let wrong_type = app
        .post_json("/auth/login", json!({"email": 5, "password": "x"}))
        .await;
    let problem = assert_problem(wrong_type, 422, "VALIDATION_FAILED").await;
    assert_eq!(problem["errors"][0]["field"], "email");
}

#[tokio::test]
async fn duplicate_email_conflicts() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let response = app
        .post_json(
            "/auth/register",
            json!({"email": owner.email.to_uppercase(), "password": PASSWORD, "org_name": "Other"}),
        )
        .await;
    assert_problem(response, 409, "EMAIL_TAKEN").await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_answer_alike() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let wrong = app
        .post_json(
            "/auth/login",
            json!({"email": owner.email, "password": "wrong-password-1"}),
        )
        .await;
    let a = assert_problem(wrong, 401, "UNAUTHORIZED").await;
    let unknown = app
        .post_json(
            "/auth/login",
            json!({"email": "ghost@example.com", "password": "wrong-password-1"}),
        )
        .await;
    let b = assert_problem(unknown, 401, "UNAUTHORIZED").await;
    assert_eq!(a["detail"], b["detail"]);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let first = app
        .post_json("/auth/refresh", json!({"refreshToken": owner.refresh}))
        .await;
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    let second_refresh = first["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, owner.refresh);
    let new_access = first["accessToken"].as_str().unwrap().to_string();
    assert_eq!(app.get_auth("/auth/me", &new_access).await.status(), 200);

    // Presenting the spent token again revokes the whole family...
    let reuse = app
        .post_json("/auth/refresh", json!({"refreshToken": owner.refresh}))
        .await;
    assert_problem(reuse, 401, "REFRESH_TOKEN_REUSED").await;
    // ...so its newest refresh token and its access tokens stop working too.
    let after = app
        .post_json("/auth/refresh", json!({"refreshToken": second_refresh}))
        .await;
    assert_problem(after, 401, "UNAUTHORIZED").await;
    assert_problem(
        app.get_auth("/auth/me", &new_access).await,
        401,
        "UNAUTHORIZED",
    )
    .await;

    let mut db = app.db().await;
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_logs WHERE action = 'auth.refresh_token_reused' AND actor_id = $1",
    )
    .bind(&owner.id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn logout_revokes_the_session_at_once() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let out = app
        .client
        .post(app.api("/auth/logout"))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_problem(
        app.get_auth("/auth/me", &owner.access).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let refresh = app
        .post_json("/auth/refresh", json!({"refreshToken": owner.refresh}))
        .await;
    assert_eq!(refresh.status(), 401);
}

#[tokio::test]
async fn forged_tokens_are_rejected() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let app = spawn_app().await;
    let owner = app.owner().await;
    let parts: Vec<&str> = owner.access.split('.').collect();

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // HS256 signed with a different key, and the same token with an altered payload.
    let other_key =
        rapport::auth::tokens::KeyRing::new("some-other-key-that-is-long-enough-0000", &[]);
    let foreign = other_key
        .issue(
            &owner.id,
            Some(&owner.org_id),
            rapport::auth::Role::Superuser,
            "x",
            rapport::storage::now_ms() / 1000,
        )
        .unwrap();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("superuser");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    for bad in [alg_none, foreign, tampered, "garbage".to_string()] {
        assert_problem(app.get_auth("/auth/me", &bad).await, 401, "UNAUTHORIZED").await;
    }
    let missing = app.client.get(app.api("/auth/me")).send().await.unwrap();
    assert_problem(missing, 401, "UNAUTHORIZED").await;
}

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, PASSWORD};

const NEW_PASSWORD: &str = "maple-harbour-77";

#[tokio::test]
async fn forgot_answers_alike_for_known_and_unknown_emails() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let known = app
        .post_json("/auth/password/forgot", json!({"email": owner.email}))
        .await;
    assert_eq!(known.status(), 202);
    let known: serde_json::Value = known.json().await.unwrap();
    let unknown = app
        .post_json(
            "/auth/password/forgot",
            json!({"email": "nobody-here@example.com"}),
        )
        .await;
    assert_eq!(unknown.status(), 202);
    let unknown: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(known, unknown);
    // Only the real account is mailed.
    app.mailed_token_soon(&owner.email, "password_reset").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut db = app.db().await;
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM email_outbox WHERE kind = 'password_reset'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(n, 1);
    let invalid = app
        .post_json("/auth/password/forgot", json!({"email": "not an email"}))
        .await;
    assert_problem(invalid, 422, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn reset_sets_the_password_and_signs_out_everywhere() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let other_session = app.login(&owner.email, PASSWORD).await;
    app.post_json("/auth/password/forgot", json!({"email": owner.email}))
        .await;
    let token = app.mailed_token_soon(&owner.email, "password_reset").await;

    let check = app
        .client
        .get(app.api(&format!("/auth/password/reset/verify/{token}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let check: serde_json::Value = check.json().await.unwrap();
    assert_eq!(check["valid"], true);
    assert!(check["email"].as_str().unwrap().contains("***@example.com"));

    // A refused password does not spend the token.
    let weak = app
        .post_json(
            "/auth/password/reset",
            json!({"token": token, "password": "password1"}),
        )
        .await;
    let problem = assert_problem(weak, 422, "VALIDATION_FAILED").await;
    assert_eq!(problem["errors"][0]["field"], "password");

    let reset = app
        .post_json(
            "/auth/password/reset",
            json!({"token": token, "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(reset.status(), 200);

    // Every session is gone: access and refresh tokens alike.
    for access in [
        owner.access.as_str(),
        other_session["accessToken"].as_str().unwrap(),
    ] {
        assert_problem(app.get_auth("/auth/me", access).await, 401, "UNAUTHORIZED").await;
    }
    let refresh = app
        .post_json("/auth/refresh", json!({"refreshToken": owner.refresh}))
        .await;
    assert_eq!(refresh.status(), 401);

    let old = app
        .post_json(
            "/auth/login",
            json!({"email": owner.email, "password": PASSWORD}),
        )
        .await;
    assert_problem(old, 401, "UNAUTHORIZED").await;
    app.login(&owner.email, NEW_PASSWORD).await;

    // Single use.
    let again = app
        .post_json(
            "/auth/password/reset",
            json!({"token": token, "password": "another-fine-pass-9"}),
        )
        .await;
    assert_problem(again, 400, "INVALID_TOKEN").await;
    let check = app
        .client
        .get(app.api(&format!("/auth/password/reset/verify/{token}")))
        .send()
        .await
        .unwrap();
    assert_problem(check, 400, "INVALID_TOKEN").await;
    assert_eq!(app.audit_count("auth.password_reset").await, 1);
}

#[tokio::test]
async fn expired_and_forged_reset_tokens_are_refused() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    app.post_json("/auth/password/forgot", json!({"email": owner.email}))
        .await;
    let token = app.mailed_token_soon(&owner.email, "password_reset").await;
    app.exec(
        "UPDATE one_time_tokens SET expires_at = 0 WHERE purpose = 'password_reset'",
        &[],
    )
    .await;
    let expired = app
        .post_json(
            "/auth/password/reset",
            json!({"token": token, "password": NEW_PASSWORD}),
        )
        .await;
    assert_problem(expired, 400, "INVALID_TOKEN").await;
    let forged = app
        .post_json(
            "/auth/password/reset",
            json!({"token": "A".repeat(43), "password": NEW_PASSWORD}),
        )
        .await;
    assert_problem(forged, 400, "INVALID_TOKEN").await;
    // The verify token of the same account is not a reset token.
    let unknown = app
        .client
        .get(app.api("/auth/password/reset/verify/not-a-token"))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 400, "INVALID_TOKEN").await;
    app.login(&owner.email, PASSWORD).await;
}

#[tokio::test]
async fn change_keeps_this_session_and_revokes_the_others() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let other = app.login(&owner.email, PASSWORD).await;

    let wrong = app
        .call(
            Method::POST,
            "/auth/password/change",
            Some(&owner.access),
            Some(json!({"current_password": "not-my-password-1", "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_problem(wrong, 403, "WRONG_PASSWORD").await;
    let same = app
        .call(
            Method::POST,
            "/auth/password/change",
            Some(&owner.access),
            Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
        )
        .await;
    assert_problem(same, 422, "VALIDATION_FAILED").await;
    let weak = app
        .call(
            Method::POST,
            "/auth/password/change",
            Some(&owner.access),
            Some(json!({"currentPassword": PASSWORD, "newPassword": "qwerty12345"})),
        )
        .await;
    assert_problem(weak, 422, "VALIDATION_FAILED").await;
    let anonymous = app
        .call(
            Method::POST,
            "/auth/password/change",
            None,
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_problem(anonymous, 401, "UNAUTHORIZED").await;

    let changed = app
        .call(
            Method::POST,
            "/auth/password/change",
            Some(&owner.access),
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(changed.status(), 204);
    assert_eq!(app.get_auth("/auth/me", &owner.access).await.status(), 200);
    assert_problem(
        app.get_auth("/auth/me", other["accessToken"].as_str().unwrap())
            .await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    app.login(&owner.email, NEW_PASSWORD).await;
    assert_eq!(app.audit_count("auth.password_changed").await, 1);
    assert_eq!(app.audit_count("auth.password_change_failed").await, 1);
}

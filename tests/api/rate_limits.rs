use serde_json::json;

use rapport::http::rate_limit::RateLimitSettings;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, PASSWORD};

fn header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn assert_limited(response: reqwest::Response, limit: u64) {
    assert_eq!(header(&response, "ratelimit-limit"), Some(limit));
    assert_eq!(header(&response, "ratelimit-remaining"), Some(0));
    let retry = header(&response, "retry-after").expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(header(&response, "ratelimit-reset").is_some());
    assert_problem(response, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn public_auth_routes_are_limited_per_ip() {
    let app =
        spawn_app_with(|s| s.rate_limits = RateLimitSettings::parse("auth_ip=3").unwrap()).await;
    let body = json!({"email": "x@example.com"});
    for remaining in [2, 1, 0] {
        let response = app.post_json("/auth/password/forgot", body.clone()).await;
        assert_eq!(response.status(), 202);
        assert_eq!(header(&response, "ratelimit-limit"), Some(3));
        assert_eq!(header(&response, "ratelimit-remaining"), Some(remaining));
    }
    // The budget is per IP and shared by every public auth route.
    let login = app
        .post_json(
            "/auth/login",
            json!({"email": "x@example.com", "password": PASSWORD}),
        )
        .await;
    assert_limited(login, 3).await;
    let verify = app
        .client
        .get(app.api("/auth/invitations/verify/anything"))
        .send()
        .await
        .unwrap();
    assert_limited(verify, 3).await;
}

#[tokio::test]
async fn authenticated_requests_are_limited_per_account() {
    let app = spawn_app_with(|s| {
        s.rate_limits = RateLimitSettings::parse("account=3,auth_ip=1000").unwrap()
    })
    .await;
    let owner = app.owner().await;
    let other = app.owner().await;
    for remaining in [2, 1, 0] {
        let response = app.get_auth("/users/me", &owner.access).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-remaining"), Some(remaining));
    }
    assert_limited(app.get_auth("/auth/me", &owner.access).await, 3).await;
    // Another account has its own budget.
    assert_eq!(app.get_auth("/users/me", &other.access).await.status(), 200);
}

#[tokio::test]
async fn an_organisation_shares_one_budget() {
    let app =
        spawn_app_with(|s| s.rate_limits = RateLimitSettings::parse("org=4,auth_ip=1000").unwrap())
            .await;
    let owner = app.owner().await;
    // Creating the staff account spends one request of the organisation's budget.
    let staff = app.employee(&owner, "staff").await;
    let path = format!("/orgs/{}", owner.org_id);
    assert_eq!(app.get_auth(&path, &owner.access).await.status(), 200);
    assert_eq!(app.get_auth(&path, &staff.access).await.status(), 200);
    assert_eq!(app.get_auth(&path, &owner.access).await.status(), 200);
    assert_limited(app.get_auth(&path, &staff.access).await, 4).await;
}

#[tokio::test]
async fn api_keys_are_limited_per_key() {
    let app = spawn_app_with(|s| {
        s.rate_limits = RateLimitSettings::parse("api_key=2,auth_ip=1000").unwrap()
    })
    .await;
    let owner = app.owner().await;
    let pk = app.api_key(&owner, "publishable").await;
    assert_eq!(app.member_signup(&pk).await.status(), 201);
    assert_eq!(app.member_signup(&pk).await.status(), 201);
    assert_limited(app.member_signup(&pk).await, 2).await;
}

#[tokio::test]
async fn failed_logins_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    for _ in 0..5 {
        let wrong = app
            .post_json(
                "/auth/login",
                json!({"email": owner.email, "password": "not-the-password-1"}),
            )
            .await;
        assert_problem(wrong, 401, "UNAUTHORIZED").await;
    }
    // Locked: even the right password waits.
    let locked = app
        .post_json(
            "/auth/login",
            json!({"email": owner.email, "password": PASSWORD}),
        )
        .await;
    let retry = header(&locked, "retry-after").expect("Retry-After");
    assert!((1..=30).contains(&retry), "{retry}");
    assert_problem(locked, 429, "RATE_LIMITED").await;
    assert_eq!(app.audit_count("auth.login_failed").await, 5);
    // Other accounts are unaffected.
    let other = app.owner().await;
    app.login(&other.email, PASSWORD).await;

    // The lock lifts when it runs out.
    app.exec(
        "UPDATE users SET locked_until = 0 WHERE email = $1",
        &[&owner.email],
    )
    .await;
    app.login(&owner.email, PASSWORD).await;
}

#[tokio::test]
async fn limits_are_generous_by_default() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let response = app.get_auth("/users/me", &owner.access).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "ratelimit-limit"), Some(600));
}

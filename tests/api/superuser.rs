use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, PASSWORD};

#[tokio::test]
async fn the_superuser_creates_an_org_whose_owner_accepts() {
    let app = spawn_app().await;
    let admin = app.superuser().await;
    let me = app
        .ok(Method::GET, "/auth/me", &admin.access, None, 200)
        .await;
    assert_eq!(me["roles"], json!(["superuser"]));
    assert_eq!(me["org"], Value::Null);

    let created = app
        .ok(
            Method::POST,
            "/orgs",
            &admin.access,
            Some(json!({"name": "Bloom Clinic", "industry": "health", "owner_email": "Lead@Bloom.example.com"})),
            201,
        )
        .await;
    assert_eq!(created["org"]["status"], "pending");
    assert_eq!(created["invitation"]["role"], "owner");
    assert_eq!(created["invitation"]["email"], "lead@bloom.example.com");
    let org_id = created["org"]["id"].as_str().unwrap();

    let token = app
        .mailed_token("lead@bloom.example.com", "invitation")
        .await;
    let accepted = app
        .post_json(
            &format!("/auth/invitations/{token}/accept"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(accepted.status(), 201);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["user"]["roles"], json!(["owner"]));
    assert_eq!(accepted["user"]["org"]["status"], "active");
    let owner_access = accepted["accessToken"].as_str().unwrap();
    app.ok(
        Method::GET,
        &format!("/orgs/{org_id}"),
        owner_access,
        None,
        200,
    )
    .await;
    // The superuser sees any organisation.
    let seen = app
        .ok(
            Method::GET,
            &format!("/orgs/{org_id}"),
            &admin.access,
            None,
            200,
        )
        .await;
    assert_eq!(seen["name"], "Bloom Clinic");

    let taken = app
        .call(
            Method::POST,
            "/orgs",
            Some(&admin.access),
            Some(json!({"name": "Again", "owner_email": "lead@bloom.example.com"})),
        )
        .await;
    assert_problem(taken, 409, "EMAIL_TAKEN").await;
    let invalid = app
        .call(
            Method::POST,
            "/orgs",
            Some(&admin.access),
            Some(json!({"name": "", "owner_email": "nope"})),
        )
        .await;
    let problem = assert_problem(invalid, 422, "VALIDATION_FAILED").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);
    assert_eq!(app.audit_count("org.created").await, 1);
}

#[tokio::test]
async fn orgs_are_listed_with_a_status_filter_and_pages() {
    let app = spawn_app().await;
    let admin = app.superuser().await;
    let a = app.owner().await;
    let b = app.owner().await;
    app.ok(
        Method::POST,
        "/orgs",
        &admin.access,
        Some(json!({"name": "Pending Co", "owner_email": "p@example.com"})),
        201,
    )
    .await;

    let all = app.ok(Method::GET, "/orgs", &admin.access, None, 200).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    let active = app
        .ok(Method::GET, "/orgs?status=active", &admin.access, None, 200)
        .await;
    let ids: Vec<&str> = active["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b.org_id.as_str(), a.org_id.as_str()]);
    let page = app
        .ok(Method::GET, "/orgs?limit=2", &admin.access, None, 200)
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .ok(
            Method::GET,
            &format!("/orgs?limit=2&cursor={cursor}"),
            &admin.access,
            None,
            200,
        )
        .await;
    assert_eq!(next["data"][0]["id"], a.org_id.as_str());
    assert_eq!(next["next_cursor"], Value::Null);
    let bad = app
        .call(Method::GET, "/orgs?limit=0", Some(&admin.access), None)
        .await;
    assert_problem(bad, 422, "VALIDATION_FAILED").await;
    let bad = app
        .call(Method::GET, "/orgs?cursor=zzz", Some(&admin.access), None)
        .await;
    assert_problem(bad, 422, "VALIDATION_FAILED").await;

    // Not for owners.
    for (method, path) in [
        (Method::GET, "/orgs"),
        (Method::POST, "/orgs"),
        (Method::GET, "/analytics"),
    ] {
        let body = (method == Method::POST)
            .then(|| json!({"name": "Mine", "owner_email": "x@example.com"}));
        let response = app.call(method, path, Some(&a.access), body).await;
        assert_problem(response, 403, "FORBIDDEN").await;
    }
}

#[tokio::test]
async fn a_suspended_org_is_locked_out_at_once() {
    let app = spawn_app().await;
    let admin = app.superuser().await;
    let owner = app.owner().await;
    let pk = app.api_key(&owner, "publishable").await;
    let path = format!("/orgs/{}", owner.org_id);

    let suspended = app
        .ok(
            Method::PATCH,
            &path,
            &admin.access,
            Some(json!({"status": "suspended"})),
            200,
        )
        .await;
    assert_eq!(suspended["status"], "suspended");

    // Tokens, refresh, sign-in and keys all stop on the next request.
    assert_problem(
        app.get_auth("/auth/me", &owner.access).await,
        403,
        "ORG_SUSPENDED",
    )
    .await;
    let refresh = app
        .post_json("/auth/refresh", json!({"refreshToken": owner.refresh}))
        .await;
    assert_problem(refresh, 403, "ORG_SUSPENDED").await;
    let login = app
        .post_json(
            "/auth/login",
            json!({"email": owner.email, "password": PASSWORD}),
        )
        .await;
    assert_problem(login, 403, "ORG_SUSPENDED").await;
    assert_problem(app.member_signup(&pk).await, 403, "ORG_SUSPENDED").await;

    let invalid = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin.access),
            Some(json!({"status": "pending"})),
        )
        .await;
    assert_problem(invalid, 422, "VALIDATION_FAILED").await;

    app.ok(
        Method::PATCH,
        &path,
        &admin.access,
        Some(json!({"status": "active"})),
        200,
    )
    .await;
    assert_eq!(app.member_signup(&pk).await.status(), 201);
    app.login(&owner.email, PASSWORD).await;

    let events = app
        .ok(
            Method::GET,
            &format!("/audit-logs?org_id={}&resourceType=org", owner.org_id),
            &admin.access,
            None,
            200,
        )
        .await;
    let changes: Vec<(&str, &str)> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "org.status_changed")
        .map(|e| {
            (
                e["metadata"]["from"].as_str().unwrap(),
                e["metadata"]["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![("suspended", "active"), ("active", "suspended")]
    );
    let missing = app
        .call(
            Method::PATCH,
            "/orgs/00000000-0000-0000-0000-000000000000",
            Some(&admin.access),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_problem(missing, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn the_platform_summary_counts_orgs_users_signups_and_logins() {
    let app = spawn_app().await;
    let admin = app.superuser().await;
    let owner = app.owner().await;
    app.employee(&owner, "staff").await;
    let pk = app.api_key(&owner, "publishable").await;
    app.member(&pk).await;
    app.post_json(
        "/auth/register",
        json!({"email": "later@example.com", "password": PASSWORD, "org_name": "Later"}),
    )
    .await;
    app.login(&owner.email, PASSWORD).await;

    let summary = app
        .ok(Method::GET, "/analytics", &admin.access, None, 200)
        .await;
    assert_eq!(
        summary["orgs"],
        json!({"total": 2, "pending": 1, "active": 1, "suspended": 0})
    );
    assert_eq!(
        summary["users"],
        json!({"total": 5, "owner": 2, "staff": 1, "member": 1, "superuser": 1})
    );
    assert_eq!(summary["signups"]["last_7_days"], 4);
    assert_eq!(summary["signups"]["last_30_days"], 4);
    // The superuser's own sign-in and the owner's.
    assert_eq!(summary["logins"]["last_24_hours"], 2);
    assert_eq!(summary["logins"]["active_users_last_24_hours"], 2);
}

#[tokio::test]
async fn create_superuser_checks_the_password_and_the_email() {
    let app = spawn_app().await;
    let db = rapport::storage::Db::connect(&app.database_url, 1)
        .await
        .unwrap();
    let weak = rapport::admin::create_superuser(&db, "ops@example.com", "password")
        .await
        .unwrap_err();
    assert!(weak.to_string().contains("password"), "{weak}");
    let bad_email = rapport::admin::create_superuser(&db, "ops", PASSWORD)
        .await
        .unwrap_err();
    assert!(bad_email.to_string().contains("email"), "{bad_email}");
    rapport::admin::create_superuser(&db, "Ops@Example.com", PASSWORD)
        .await
        .unwrap();
    let twice = rapport::admin::create_superuser(&db, "ops@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(twice.to_string().contains("already exists"), "{twice}");
    db.close().await;
    app.login("ops@example.com", PASSWORD).await;
}

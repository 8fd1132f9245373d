use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn owners_edit_the_org_and_staff_only_read_it() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let path = format!("/orgs/{}", owner.org_id);

    let org = app.ok(Method::GET, &path, &staff.access, None, 200).await;
    assert_eq!(org["name"], "Acme Wellness");
    assert_eq!(org["status"], "active");

    let updated = app
        .ok(
            Method::PUT,
            &format!("{path}/"),
            &owner.access,
            Some(json!({"name": "  Acme Calm  ", "industry": "wellness", "website": "https://acme.example.com"})),
            200,
        )
        .await;
    assert_eq!(updated["name"], "Acme Calm");
    assert_eq!(updated["industry"], "wellness");

    let by_staff = app
        .call(
            Method::PUT,
            &path,
            Some(&staff.access),
            Some(json!({"name": "Hijacked"})),
        )
        .await;
    assert_problem(by_staff, 403, "FORBIDDEN").await;
    let invalid = app
        .call(
            Method::PUT,
            &path,
            Some(&owner.access),
            Some(json!({"name": ""})),
        )
        .await;
    assert_problem(invalid, 422, "VALIDATION_FAILED").await;
    let unknown_field = app
        .call(
            Method::PUT,
            &path,
            Some(&owner.access),
            Some(json!({"name": "X", "status": "active"})),
        )
        .await;
    assert_problem(unknown_field, 422, "VALIDATION_FAILED").await;
    // Owners cannot change their own organisation's status: that is the platform's.
    let status = app
        .call(
            Method::PATCH,
            &path,
            Some(&owner.access),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_problem(status, 403, "FORBIDDEN").await;
    assert_problem(
        app.call(Method::GET, &path, None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn members_and_unverified_owners_are_kept_out() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let pk = app.api_key(&owner, "publishable").await;
    let member = app.member(&pk).await;
    for path in [
        format!("/orgs/{}", owner.org_id),
        format!("/orgs/{}/config", owner.org_id),
        format!("/orgs/{}/employee", owner.org_id),
    ] {
        assert_problem(app.get_auth(&path, &member.access).await, 403, "FORBIDDEN").await;
    }

    let pending = app
        .post_json(
            "/auth/register",
            json!({"email": "pending-owner@example.com", "password": PASSWORD, "org_name": "Later Ltd"}),
        )
        .await;
    let pending: serde_json::Value = pending.json().await.unwrap();
    let org_id = pending["user"]["org"]["id"].as_str().unwrap();
    let access = pending["accessToken"].as_str().unwrap();
    assert_problem(
        app.get_auth(&format!("/orgs/{org_id}"), access).await,
        403,
        "EMAIL_NOT_VERIFIED",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            &format!("/orgs/{org_id}/credentials"),
            Some(access),
            Some(json!({"kind": "secret"})),
        )
        .await,
        403,
        "EMAIL_NOT_VERIFIED",
    )
    .await;
}

#[tokio::test]
async fn bot_config_has_defaults_and_is_validated() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let path = format!("/orgs/{}/config", owner.org_id);

    let defaults = app.ok(Method::GET, &path, &staff.access, None, 200).await;
    assert_eq!(defaults["temperature"], 0.3);
    assert_eq!(defaults["language"], "en");
    assert_eq!(defaults["rag"]["top_k"], 5);
    assert_eq!(defaults["allowed_origins"], json!([]));

    let stored = app
        .ok(
            Method::PUT,
            &path,
            &owner.access,
            Some(json!({
                "persona": "Noor",
                "greeting": "Ahlan! How can I help?",
                "language": "ar",
                "temperature": 1.2,
                "allowed_origins": ["HTTPS://Shop.Example.com/", "http://localhost:3000"],
                "rag": {"top_k": 8, "min_score": 0.5, "max_context_tokens": 4000},
                "fallback_answer": "Please call us."
            })),
            200,
        )
        .await;
    assert_eq!(
        stored["allowed_origins"],
        json!(["https://shop.example.com", "http://localhost:3000"])
    );
    let read = app.ok(Method::GET, &path, &owner.access, None, 200).await;
    assert_eq!(read, stored);
    assert_eq!(read["persona"], "Noor");
    assert_eq!(read["model"], "default");

    let invalid = app
        .call(
            Method::PUT,
            &path,
            Some(&owner.access),
            Some(json!({
                "temperature": 3,
                "allowed_origins": ["https://ok.example.com", "https://evil.example.com/path", "*"],
                "rag": {"top_k": 0},
                "language": "not a language"
            })),
        )
        .await;
    let problem = assert_problem(invalid, 422, "VALIDATION_FAILED").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in [
        "temperature",
        "allowed_origins[1]",
        "allowed_origins[2]",
        "rag.top_k",
        "language",
    ] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    let unknown = app
        .call(
            Method::PUT,
            &path,
            Some(&owner.access),
            Some(json!({"colour": "blue"})),
        )
        .await;
    assert_problem(unknown, 422, "VALIDATION_FAILED").await;
    let by_staff = app
        .call(Method::PUT, &path, Some(&staff.access), Some(json!({})))
        .await;
    assert_problem(by_staff, 403, "FORBIDDEN").await;
    // Unchanged after the refused writes.
    assert_eq!(
        app.ok(Method::GET, &path, &owner.access, None, 200).await,
        stored
    );
    assert_eq!(app.audit_count("org.config_updated").await, 1);
}

#[tokio::test]
async fn credentials_show_prefixes_never_keys() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let path = format!("/orgs/{}/credentials", owner.org_id);
    let empty = app.ok(Method::GET, &path, &owner.access, None, 200).await;
    assert_eq!(empty["keys"], json!([]));

    let created = app
        .ok(
            Method::POST,
            &path,
            &owner.access,
            Some(json!({"kind": "secret"})),
            201,
        )
        .await;
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("sk_"));
    assert_eq!(key.len(), 3 + 32);
    assert!(key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(created["kind"], "secret");
    assert_eq!(created["last4"], &key[key.len() - 4..]);
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["previous_key_expires_at"], serde_json::Value::Null);
    let pk = app.api_key(&owner, "publishable").await;
    assert!(pk.starts_with("pk_"));

    let listed = app.ok(Method::GET, &path, &owner.access, None, 200).await;
    let text = listed.to_string();
    assert!(!text.contains(key) && !text.contains(&pk), "{text}");
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert_eq!(k["status"], "active");
        assert_eq!(k["expires_at"], serde_json::Value::Null);
    }
    // Keys work: the publishable one signs members up, and records its use.
    assert_eq!(app.member_signup(&pk).await.status(), 201);
    let listed = app.ok(Method::GET, &path, &owner.access, None, 200).await;
    let used = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "publishable")
        .unwrap();
    assert!(used["last_used_at"].is_string());

    let staff = app.employee(&owner, "staff").await;
    assert_problem(app.get_auth(&path, &staff.access).await, 403, "FORBIDDEN").await;
    let bad_kind = app
        .call(
            Method::POST,
            &path,
            Some(&owner.access),
            Some(json!({"kind": "master"})),
        )
        .await;
    assert_problem(bad_kind, 422, "VALIDATION_FAILED").await;
    assert_eq!(app.audit_count("api_key.rotated").await, 2);
}

#[tokio::test]
async fn a_rotated_key_works_during_the_grace_period_then_stops() {
    // A grace period long enough for two sign-ups (password hashing) on a loaded machine.
    let app = spawn_app_with(|s| s.api_key_grace = Duration::from_secs(5)).await;
    let owner = app.owner().await;
    let old = app.api_key(&owner, "publishable").await;
    let rotated = app
        .ok(
            Method::POST,
            &format!("/orgs/{}/credentials", owner.org_id),
            &owner.access,
            Some(json!({"kind": "publishable"})),
            201,
        )
        .await;
    assert!(rotated["previous_key_expires_at"].is_string());
    let new = rotated["key"].as_str().unwrap().to_string();
    assert_ne!(old, new);

    // Both keys work during the grace period.
    assert_eq!(app.member_signup(&old).await.status(), 201);
    assert_eq!(app.member_signup(&new).await.status(), 201);
    let listed = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/credentials", owner.org_id),
            &owner.access,
            None,
            200,
        )
        .await;
    let statuses: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["active", "rotating"]);

    tokio::time::sleep(Duration::from_millis(5200)).await;
    assert_problem(app.member_signup(&old).await, 401, "UNAUTHORIZED").await;
    assert_eq!(app.member_signup(&new).await.status(), 201);
    let listed = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/credentials", owner.org_id),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_default_grace_period_is_a_day() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    app.api_key(&owner, "secret").await;
    let rotated = app
        .ok(
            Method::POST,
            &format!("/orgs/{}/credentials", owner.org_id),
            &owner.access,
            Some(json!({"kind": "secret"})),
            201,
        )
        .await;
    let expires = time::OffsetDateTime::parse(
        rotated["previous_key_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_secs = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((86_300..=86_400).contains(&in_secs), "{in_secs}");
}

#[tokio::test]
async fn publishable_keys_are_locked_to_the_allowed_origins() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let pk = app.api_key(&owner, "publishable").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/config", owner.org_id),
        &owner.access,
        Some(json!({"allowed_origins": ["https://shop.example.com"]})),
        200,
    )
    .await;
    let signup = |origin: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.api("/auth/register"))
            .header("x-api-key", &pk)
            .json(&json!({
                "email": format!("m-{}@example.com", uuid::Uuid::new_v4().simple()),
                "password": PASSWORD
            }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_problem(
        signup(Some("https://evil.example.com")).await.unwrap(),
        403,
        "ORIGIN_NOT_ALLOWED",
    )
    .await;
    assert_eq!(
        signup(Some("https://shop.example.com"))
            .await
            .unwrap()
            .status(),
        201
    );
    // Apps and servers send no Origin.
    assert_eq!(signup(None).await.unwrap().status(), 201);
}

#[tokio::test]
async fn the_secret_key_acts_for_its_organisation_only() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let other = app.owner().await;
    let secret = app.api_key(&owner, "secret").await;
    let publishable = app.api_key(&owner, "publishable").await;
    let get = |path: String, key: &str| {
        app.client
            .get(app.api(&path))
            .header("x-api-key", key)
            .send()
    };
    // Server-to-server: full organisation scope with the secret key...
    let org = get(format!("/orgs/{}", owner.org_id), &secret)
        .await
        .unwrap();
    assert_eq!(org.status(), 200);
    let kbs = get(format!("/orgs/{}/knowledge-bases", owner.org_id), &secret)
        .await
        .unwrap();
    assert_eq!(kbs.status(), 200);
    // ...never another organisation's, and never an account's own routes.
    assert_problem(
        get(format!("/orgs/{}", other.org_id), &secret)
            .await
            .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        get("/auth/me".into(), &secret).await.unwrap(),
        401,
        "UNAUTHORIZED",
    )
    .await;
    // The publishable key is for the widget and sign-up, not for organisation routes.
    assert_problem(
        get(format!("/orgs/{}", owner.org_id), &publishable)
            .await
            .unwrap(),
        401,
        "UNAUTHORIZED",
    )
    .await;
}

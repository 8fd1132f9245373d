use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, PASSWORD};

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn owners_filter_their_org_events() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    app.api_key(&owner, "secret").await;
    app.post_json(
        "/auth/login",
        json!({"email": staff.email, "password": "wrong-password-00"}),
    )
    .await;
    app.ok(
        Method::PATCH,
        &format!("/orgs/{}/employee/{}", owner.org_id, staff.id),
        &owner.access,
        Some(json!({"role": "owner"})),
        200,
    )
    .await;

    let all = app
        .ok(Method::GET, "/audit-logs", &owner.access, None, 200)
        .await;
    let all_actions = actions(&all);
    for expected in [
        "account.registered",
        "account.email_verified",
        "invitation.created",
        "invitation.accepted",
        "api_key.rotated",
        "auth.login_failed",
        "employee.role_changed",
    ] {
        assert!(
            all_actions.iter().any(|a| a == expected),
            "{expected} missing from {all_actions:?}"
        );
    }
    // Newest first.
    assert_eq!(all_actions[0], "employee.role_changed");

    // No secrets or plain emails in the trail.
    let text = all.to_string();
    assert!(!text.contains(&owner.email), "{text}");
    assert!(!text.contains(&staff.email), "{text}");
    assert!(!text.contains(PASSWORD));

    let by_staff = app
        .ok(
            Method::GET,
            &format!("/audit-logs?actorId={}", staff.id),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(
        actions(&by_staff),
        vec!["auth.login_failed", "invitation.accepted"]
    );
    let keys = app
        .ok(
            Method::GET,
            "/audit-logs?resourceType=api_key",
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(actions(&keys), vec!["api_key.rotated"]);
    assert_eq!(keys["data"][0]["metadata"]["kind"], "secret");
    let one_action = app
        .ok(
            Method::GET,
            "/audit-logs?action=auth.login_failed",
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(one_action["data"].as_array().unwrap().len(), 1);

    // Date range.
    let future = app
        .ok(
            Method::GET,
            "/audit-logs?from=2999-01-01T00:00:00Z",
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(future["data"], json!([]));
    let past = app
        .ok(
            Method::GET,
            "/audit-logs?to=2000-01-01T00:00:00Z",
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(past["data"], json!([]));
    let window = app
        .ok(
            Method::GET,
            "/audit-logs?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00%2B01:00",
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(window["data"], all["data"]);
    let bad = app
        .call(
            Method::GET,
            "/audit-logs?from=yesterday",
            Some(&owner.access),
            None,
        )
        .await;
    let problem = assert_problem(bad, 422, "VALIDATION_FAILED").await;
    assert_eq!(problem["errors"][0]["field"], "from");
    let reversed = app
        .call(
            Method::GET,
            "/audit-logs?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z",
            Some(&owner.access),
            None,
        )
        .await;
    assert_problem(reversed, 422, "VALIDATION_FAILED").await;

    // Pages walk the whole list without gaps or repeats.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/audit-logs?limit=2&cursor={c}"),
            None => "/audit-logs?limit=2".to_string(),
        };
        let page = app.ok(Method::GET, &path, &owner.access, None, 200).await;
        for e in page["data"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let ids: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn only_owners_and_the_superuser_read_the_trail() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    assert_problem(
        app.get_auth("/audit-logs", &staff.access).await,
        403,
        "FORBIDDEN",
    )
    .await;
    let pk = app.api_key(&owner, "publishable").await;
    let member = app.member(&pk).await;
    assert_problem(
        app.get_auth("/audit-logs", &member.access).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_problem(
        app.call(Method::GET, "/audit-logs", None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    // Naming one's own organisation is allowed.
    app.ok(
        Method::GET,
        &format!("/audit-logs?org_id={}", owner.org_id),
        &owner.access,
        None,
        200,
    )
    .await;

    let other = app.owner().await;
    let admin = app.superuser().await;
    let everything = app
        .ok(
            Method::GET,
            "/audit-logs?limit=100",
            &admin.access,
            None,
            200,
        )
        .await;
    let orgs: std::collections::HashSet<&str> = everything["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["org_id"].as_str())
        .collect();
    assert!(orgs.contains(owner.org_id.as_str()) && orgs.contains(other.org_id.as_str()));
    let scoped = app
        .ok(
            Method::GET,
            &format!("/audit-logs?org_id={}&limit=100", other.org_id),
            &admin.access,
            None,
            200,
        )
        .await;
    for e in scoped["data"].as_array().unwrap() {
        assert_eq!(e["org_id"], other.org_id.as_str());
    }
}

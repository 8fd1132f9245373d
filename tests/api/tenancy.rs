//! Every organisation-scoped route, called by an account of organisation A with organisation B's
//! ids, answers 404: other tenants' resources are invisible, not merely forbidden.
//!
//! Routes are listed in one table; a route added later is appended there. Placeholders:
//! `{b}` organisation B, `{a}` the caller's own organisation, `{b_employee}` an employee of B,
//! `{b_invitation}` a pending invitation of B.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, Account, TestApp};

fn routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/orgs/{b}", None),
        (
            Method::PUT,
            "/orgs/{b}",
            Some(json!({"name": "Taken over"})),
        ),
        (
            Method::PATCH,
            "/orgs/{b}",
            Some(json!({"status": "suspended"})),
        ),
        (Method::GET, "/orgs/{b}/config", None),
        (
            Method::PUT,
            "/orgs/{b}/config",
            Some(json!({"greeting": "pwned"})),
        ),
        (Method::GET, "/orgs/{b}/credentials", None),
        (
            Method::POST,
            "/orgs/{b}/credentials",
            Some(json!({"kind": "secret"})),
        ),
        (Method::GET, "/orgs/{b}/employee", None),
        (Method::GET, "/orgs/{b}/employee/{b_employee}", None),
        (
            Method::PATCH,
            "/orgs/{b}/employee/{b_employee}",
            Some(json!({"role": "staff"})),
        ),
        (Method::DELETE, "/orgs/{b}/employee/{b_employee}", None),
        (Method::GET, "/orgs/{b}/employee/invitations", None),
        (
            Method::POST,
            "/orgs/{b}/employee/invitations",
            Some(json!({"email": "intruder@example.com", "role": "owner"})),
        ),
        (
            Method::DELETE,
            "/orgs/{b}/employee/invitations/{b_invitation}",
            None,
        ),
        (
            Method::POST,
            "/orgs/{b}/employee/invitations/{b_invitation}/resend",
            None,
        ),
        // B's objects addressed through the caller's own organisation.
        (Method::GET, "/orgs/{a}/employee/{b_employee}", None),
        (
            Method::PATCH,
            "/orgs/{a}/employee/{b_employee}",
            Some(json!({"role": "staff"})),
        ),
        (Method::DELETE, "/orgs/{a}/employee/{b_employee}", None),
        (
            Method::DELETE,
            "/orgs/{a}/employee/invitations/{b_invitation}",
            None,
        ),
        (
            Method::POST,
            "/orgs/{a}/employee/invitations/{b_invitation}/resend",
            None,
        ),
        (Method::GET, "/audit-logs?org_id={b}", None),
        (Method::GET, "/orgs/{b}/analytics", None),
        (Method::GET, "/orgs/{b}/chat/sessions", None),
        (Method::GET, "/orgs/{b}/chat/feedback", None),
        (
            Method::GET,
            "/orgs/{b}/chat/sessions/{b_chat}/messages",
            None,
        ),
        (
            Method::GET,
            "/orgs/{a}/chat/sessions/{b_chat}/messages",
            None,
        ),
        // The library and the marketplace: B's content and packs.
        (Method::GET, "/content/{b_content}", None),
        (Method::DELETE, "/content/{b_content}", None),
        (Method::POST, "/content/{b_content}/play", Some(json!({}))),
        (
            Method::POST,
            "/content/{b_content}/complete",
            Some(json!({"practice_event_id": "x"})),
        ),
        (Method::GET, "/content/{b_content}/export", None),
        (Method::GET, "/catalog/packs/{b_pack}", None),
        (Method::POST, "/catalog/packs/{b_pack}/publish", None),
        (
            Method::POST,
            "/payments/checkout",
            Some(json!({"pack_id": "{b_pack}"})),
        ),
        (Method::GET, "/orgs/{b}/knowledge-bases", None),
        (
            Method::POST,
            "/orgs/{b}/knowledge-bases",
            Some(json!({"title": "Planted", "text": "Injected content."})),
        ),
        (Method::GET, "/orgs/{b}/knowledge-bases/{b_kb}", None),
        (
            Method::PUT,
            "/orgs/{b}/knowledge-bases/{b_kb}",
            Some(json!({"title": "Replaced", "text": "Replaced content."})),
        ),
        (Method::DELETE, "/orgs/{b}/knowledge-bases/{b_kb}", None),
        (Method::POST, "/orgs/{b}/knowledge-bases/{b_kb}/retry", None),
        (Method::GET, "/orgs/{a}/knowledge-bases/{b_kb}", None),
        (
            Method::PUT,
            "/orgs/{a}/knowledge-bases/{b_kb}",
            Some(json!({"title": "Replaced", "text": "Replaced content."})),
        ),
        (Method::DELETE, "/orgs/{a}/knowledge-bases/{b_kb}", None),
        (Method::POST, "/orgs/{a}/knowledge-bases/{b_kb}/retry", None),
    ]
}

struct OrgB {
    content_id: String,
    pack_id: String,
    owner: Account,
    staff: Account,
    invitation_id: String,
    kb_id: String,
    chat_id: String,
}

async fn org_b(app: &TestApp) -> OrgB {
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let (invitation, _) = app.invite(&owner, "pending-b@example.com", "staff").await;
    let content_id = uuid::Uuid::now_v7().to_string();
    app.exec(
        "INSERT INTO content_items (id, org_id, user_id, content_type, title, body, created_at, updated_at) \
         VALUES ($1, $2, $3, 'ritual', 'B', 'B', 0, 0)",
        &[&content_id, &owner.org_id, &owner.id],
    )
    .await;
    let pack = app
        .ok(
            Method::POST,
            "/catalog/packs",
            &owner.access,
            Some(json!({"title": "B's pack", "price_type": "free", "content_ids": [content_id]})),
            201,
        )
        .await;
    let kb = app
        .ok(
            Method::POST,
            &format!("/orgs/{}/knowledge-bases", owner.org_id),
            &owner.access,
            Some(json!({"title": "B's notes", "text": "Only for organisation B."})),
            201,
        )
        .await;
    let key = app.api_key(&owner, "publishable").await;
    let chat: Value = app
        .client
        .post(app.api("/chat/sessions"))
        .header("x-api-key", key)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    OrgB {
        chat_id: chat["session_id"].as_str().unwrap().to_string(),
        content_id,
        pack_id: pack["id"].as_str().unwrap().to_string(),
        owner,
        staff,
        invitation_id: invitation["id"].as_str().unwrap().to_string(),
        kb_id: kb["id"].as_str().unwrap().to_string(),
    }
}

fn fill(template: &str, a: &Account, b: &OrgB) -> String {
    template
        .replace("{b_employee}", &b.staff.id)
        .replace("{b_invitation}", &b.invitation_id)
        .replace("{b_content}", &b.content_id)
        .replace("{b_pack}", &b.pack_id)
        .replace("{b_kb}", &b.kb_id)
        .replace("{b_chat}", &b.chat_id)
        .replace("{b}", &b.owner.org_id)
        .replace("{a}", &a.org_id)
}

#[tokio::test]
async fn other_tenants_resources_are_not_found_on_every_route() {
    let app = spawn_app().await;
    let owner_a = app.owner().await;
    let staff_a = app.employee(&owner_a, "staff").await;
    let b = org_b(&app).await;
    let config_before = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/config", b.owner.org_id),
            &b.owner.access,
            None,
            200,
        )
        .await;

    for caller in [&owner_a, &staff_a] {
        for (method, template, body) in routes() {
            let path = fill(template, &owner_a, &b);
            let body =
                body.map(|v| serde_json::from_str(&fill(&v.to_string(), &owner_a, &b)).unwrap());
            let response = app
                .call(method.clone(), &path, Some(&caller.access), body)
                .await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            // Staff may be refused an owner's action in their own organisation before anything
            // is looked up; that reveals nothing about B.
            if caller.id == staff_a.id && template.contains("{a}") && status == 403 {
                continue;
            }
            assert_eq!(status, 404, "{method} {template} answered {status}: {text}");
            let problem: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(problem["code"], "NOT_FOUND", "{method} {template}: {text}");
        }
    }

    // Nothing of B changed.
    let config_after = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/config", b.owner.org_id),
            &b.owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(config_before, config_after);
    let org = app
        .ok(
            Method::GET,
            &format!("/orgs/{}", b.owner.org_id),
            &b.owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(org["status"], "active");
    assert_eq!(org["name"], "Acme Wellness");
    let staff = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/employee/{}", b.owner.org_id, b.staff.id),
            &b.owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(staff["role"], "staff");
    let invitations = app
        .ok(
            Method::GET,
            &format!(
                "/orgs/{}/employee/invitations?status=pending",
                b.owner.org_id
            ),
            &b.owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(invitations["data"].as_array().unwrap().len(), 1);
    let keys = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/credentials", b.owner.org_id),
            &b.owner.access,
            None,
            200,
        )
        .await;
    // Only B's own publishable key (for its chat session); no secret key planted by A.
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["kind"], "publishable");
    let kb = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/knowledge-bases/{}", b.owner.org_id, b.kb_id),
            &b.owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(kb["title"], "B's notes");
    assert_eq!(kb["version"], 1);
}

#[tokio::test]
async fn the_superuser_reaches_every_org_but_unknown_ids_are_404() {
    let app = spawn_app().await;
    let admin = app.superuser().await;
    let b = org_b(&app).await;
    app.ok(
        Method::GET,
        &format!("/orgs/{}/employee/{}", b.owner.org_id, b.staff.id),
        &admin.access,
        None,
        200,
    )
    .await;
    let unknown = "00000000-0000-0000-0000-000000000000";
    for path in [
        format!("/orgs/{unknown}"),
        format!("/orgs/{unknown}/config"),
        format!("/orgs/{unknown}/credentials"),
        format!("/orgs/{unknown}/employee"),
        format!("/orgs/{}/employee/{unknown}", b.owner.org_id),
    ] {
        assert_problem(app.get_auth(&path, &admin.access).await, 404, "NOT_FOUND").await;
    }
}

#[tokio::test]
async fn audit_logs_stay_within_the_callers_org() {
    let app = spawn_app().await;
    let a = app.owner().await;
    let b = org_b(&app).await;
    let events = app
        .ok(Method::GET, "/audit-logs?limit=100", &a.access, None, 200)
        .await;
    let events = events["data"].as_array().unwrap();
    assert!(!events.is_empty());
    for event in events {
        assert_eq!(event["org_id"], a.org_id.as_str(), "{event}");
    }
    // Filtering by an account of B finds nothing rather than B's events.
    let theirs = app
        .ok(
            Method::GET,
            &format!("/audit-logs?actorId={}", b.owner.id),
            &a.access,
            None,
            200,
        )
        .await;
    assert_eq!(theirs["data"], json!([]));
}

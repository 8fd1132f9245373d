use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn profile_and_preferences_are_merged() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let me = app
        .ok(Method::GET, "/users/me", &owner.access, None, 200)
        .await;
    assert_eq!(me["id"], owner.id.as_str());
    assert_eq!(me["role"], "owner");
    assert_eq!(
        me["preferences"],
        json!({"voice_id": null, "pace": null, "tone": null})
    );

    let updated = app
        .ok(
            Method::PUT,
            "/users/me/",
            &owner.access,
            Some(json!({"display_name": "Layla", "preferences": {"voice_id": "calm-guide_2", "pace": "slower"}})),
            200,
        )
        .await;
    assert_eq!(updated["display_name"], "Layla");
    assert_eq!(updated["preferences"]["pace"], "slower");

    // Only what is sent changes.
    let merged = app
        .ok(
            Method::PUT,
            "/users/me",
            &owner.access,
            Some(json!({"preferences": {"tone": "warm"}})),
            200,
        )
        .await;
    assert_eq!(
        merged["preferences"],
        json!({"voice_id": "calm-guide_2", "pace": "slower", "tone": "warm"})
    );
    assert_eq!(merged["display_name"], "Layla");

    // `null` clears.
    let cleared = app
        .ok(
            Method::PUT,
            "/users/me",
            &owner.access,
            Some(json!({"displayName": null, "preferences": {"pace": null}})),
            200,
        )
        .await;
    assert_eq!(cleared["display_name"], Value::Null);
    assert_eq!(cleared["preferences"]["pace"], Value::Null);
    assert_eq!(cleared["preferences"]["tone"], "warm");
    let read = app
        .ok(Method::GET, "/users/me", &owner.access, None, 200)
        .await;
    assert_eq!(read["preferences"], cleared["preferences"]);
}

#[tokio::test]
async fn preferences_are_validated() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    for body in [
        json!({"preferences": {"pace": "sprint"}}),
        json!({"preferences": {"tone": "angry"}}),
        json!({"preferences": {"volume": 11}}),
        json!({"role": "superuser"}),
    ] {
        let response = app
            .call(Method::PUT, "/users/me", Some(&owner.access), Some(body))
            .await;
        assert_problem(response, 422, "VALIDATION_FAILED").await;
    }
    let bad_voice = app
        .call(
            Method::PUT,
            "/users/me",
            Some(&owner.access),
            Some(json!({"preferences": {"voice_id": "../../etc/passwd"}})),
        )
        .await;
    let problem = assert_problem(bad_voice, 422, "VALIDATION_FAILED").await;
    assert_eq!(problem["errors"][0]["field"], "preferences.voice_id");
    let long_name = app
        .call(
            Method::PUT,
            "/users/me",
            Some(&owner.access),
            Some(json!({"display_name": "x".repeat(101)})),
        )
        .await;
    assert_problem(long_name, 422, "VALIDATION_FAILED").await;
    assert_problem(
        app.call(Method::GET, "/users/me", None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn bodies_must_be_objects() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    for (method, path) in [
        (Method::PUT, "/users/me".to_string()),
        (Method::PUT, format!("/orgs/{}/config", owner.org_id)),
    ] {
        for body in [
            json!([null, null]),
            json!([]),
            json!("x"),
            json!({"preferences": [null, null]}),
            json!({"rag": [5, 0.1, 1000]}),
        ] {
            let response = app
                .call(method.clone(), &path, Some(&owner.access), Some(body))
                .await;
            assert_problem(response, 422, "VALIDATION_FAILED").await;
        }
    }
    let typed = app
        .call(
            Method::PUT,
            &format!("/orgs/{}/config", owner.org_id),
            Some(&owner.access),
            Some(json!({"rag": {"top_k": "many"}})),
        )
        .await;
    let problem = assert_problem(typed, 422, "VALIDATION_FAILED").await;
    assert_eq!(problem["errors"][0]["field"], "rag.top_k");
}

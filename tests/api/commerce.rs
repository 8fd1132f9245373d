//! The content library, credits, marketplace and payments over HTTP.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, Account, TestApp};
use crate::stripe_mock::{self, now_secs, sign, StripeMock};

/// Inserts a content item owned by `user` directly (the hub tests cover generating them).
async fn content(app: &TestApp, user: &Account, kind: &str, depth: &str, tags: &[&str]) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let mut db = app.db().await;
    sqlx::query(
        "INSERT INTO content_items (id, org_id, user_id, content_type, title, body, depth, duration_minutes, \
         tags, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 10, $8, $9, $9)",
    )
    .bind(&id)
    .bind(&user.org_id)
    .bind(&user.id)
    .bind(kind)
    .bind(format!("A {kind}"))
    .bind("Breathe in. Breathe out.")
    .bind(depth)
    .bind(serde_json::to_string(tags).unwrap())
    .bind(chrono_ms())
    .execute(&mut db)
    .await
    .unwrap();
    id
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn paid_app() -> (TestApp, StripeMock) {
    paid_app_speaking(None).await
}

/// A server wired to the Stripe mock; with `speech`, audio is synthesised by that speech server.
async fn paid_app_speaking(speech: Option<String>) -> (TestApp, StripeMock) {
    let mock = stripe_mock::spawn().await;
    let base = mock.base_url.clone();
    let app = spawn_app_with(|s| {
        s.stripe.api_base = base;
        s.stripe.secret_key = Some(stripe_mock::SECRET_KEY.into());
        s.stripe.webhook_secret = Some(stripe_mock::WEBHOOK_SECRET.into());
        match speech {
            Some(url) => {
                s.media.tts_base_url = Some(url);
                s.media.audio_poll = std::time::Duration::from_millis(50);
            }
            None => s.media.tts_enabled = false,
        }
    })
    .await;
    (app, mock)
}

async fn webhook(app: &TestApp, event: &Value) -> reqwest::Response {
    let payload = event.to_string();
    let header = sign(&payload, now_secs());
    app.client
        .post(app.api("/payments/webhook"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap()
}

fn event(kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "type": kind,
        "created": created,
        "data": {"object": object},
    })
}

#[tokio::test]
async fn the_library_lists_filters_plays_completes_exports_and_deletes() {
    let app = spawn_app().await;
    let me = app.owner().await;
    let other = app.owner().await;
    let ritual = content(&app, &me, "ritual", "deep", &["evening", "calm"]).await;
    let _affirmation = content(&app, &me, "affirmation", "shallow", &["morning"]).await;
    let theirs = content(&app, &other, "ritual", "deep", &["evening"]).await;

    let all = app.ok(Method::GET, "/content", &me.access, None, 200).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let page = app
        .ok(Method::GET, "/content?limit=1", &me.access, None, 200)
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .ok(
            Method::GET,
            &format!("/content?limit=1&cursor={cursor}"),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(next["data"].as_array().unwrap().len(), 1);
    assert!(next["next_cursor"].is_null());
    let filtered = app
        .ok(
            Method::GET,
            "/content?content_type=ritual&depth=deep&tags=evening&tags=calm",
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(filtered["data"][0]["id"], ritual.as_str());
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    let none = app
        .ok(
            Method::GET,
            "/content?tags[]=nowhere",
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(none["data"], json!([]));
    assert_problem(
        app.call(
            Method::GET,
            "/content?depth=abyssal",
            Some(&me.access),
            None,
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        app.call(Method::GET, "/content?limit=0", Some(&me.access), None)
            .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        app.call(Method::GET, "/content", None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;

    let item = app
        .ok(
            Method::GET,
            &format!("/content/{ritual}"),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(item["content_text"], "Breathe in. Breathe out.");
    assert_eq!(item["duration"], 600);
    assert_eq!(item["play_count"], 0);
    // Another user's content does not exist for me.
    for (method, path) in [
        (Method::GET, format!("/content/{theirs}")),
        (Method::DELETE, format!("/content/{theirs}")),
        (Method::GET, format!("/content/{theirs}/export")),
    ] {
        assert_problem(
            app.call(method, &path, Some(&me.access), None).await,
            404,
            "NOT_FOUND",
        )
        .await;
    }
    assert_problem(
        app.call(
            Method::POST,
            &format!("/content/{theirs}/play"),
            Some(&me.access),
            Some(json!({})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    let started = app
        .ok(
            Method::POST,
            &format!("/content/{ritual}/play"),
            &me.access,
            Some(json!({"started_at": "2025-01-15T10:30:00Z"})),
            201,
        )
        .await;
    assert_eq!(started["status"], "started");
    let event_id = started["practice_event_id"].as_str().unwrap();
    assert_problem(
        app.call(
            Method::POST,
            &format!("/content/{ritual}/play"),
            Some(&me.access),
            Some(json!({"started_at": "yesterday"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    let body = json!({"practice_event_id": event_id, "completed_at": "2025-01-15T10:40:00Z"});
    let done = app
        .ok(
            Method::POST,
            &format!("/content/{ritual}/complete"),
            &me.access,
            Some(body.clone()),
            200,
        )
        .await;
    assert_eq!(done["status"], "completed");
    assert_problem(
        app.call(
            Method::POST,
            &format!("/content/{ritual}/complete"),
            Some(&me.access),
            Some(body),
        )
        .await,
        409,
        "ALREADY_COMPLETED",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            &format!("/content/{ritual}/complete"),
            Some(&me.access),
            Some(json!({"practice_event_id": "nope"})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    let item = app
        .ok(
            Method::GET,
            &format!("/content/{ritual}"),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(
        item["play_count"], 1,
        "the cache was invalidated by the play"
    );
    assert_eq!(item["last_played_at"], "2025-01-15T10:30:00Z");

    let history = app
        .ok(
            Method::GET,
            &format!("/users/me/history?content_id={ritual}"),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(history["data"][0]["duration"], 600);
    assert_eq!(history["data"][0]["content_title"], "A ritual");
    let empty = app
        .ok(
            Method::GET,
            &format!("/users/me/history?content_id={theirs}"),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(empty["data"], json!([]));

    let text = app
        .ok(
            Method::GET,
            &format!("/content/{ritual}/export?format=text"),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(text["text"], "Breathe in. Breathe out.");
    assert!(text["audio_url"].is_null());
    assert_problem(
        app.call(
            Method::GET,
            &format!("/content/{ritual}/export?format=audio"),
            Some(&me.access),
            None,
        )
        .await,
        409,
        "AUDIO_UNAVAILABLE",
    )
    .await;
    assert_problem(
        app.call(
            Method::GET,
            &format!("/content/{ritual}/export?format=pdf"),
            Some(&me.access),
            None,
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;

    let deleted = app
        .ok(
            Method::DELETE,
            &format!("/content/{ritual}"),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(deleted["status"], "deleted");
    assert_problem(
        app.call(
            Method::GET,
            &format!("/content/{ritual}"),
            Some(&me.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.call(
            Method::DELETE,
            &format!("/content/{ritual}"),
            Some(&me.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
}

/// A speech server that answers `/v1/audio/speech` with a few bytes of "audio".
async fn speech_server() -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/audio/speech",
        post(|axum::Json(body): axum::Json<Value>| async move {
            assert!(body["input"]
                .as_str()
                .is_some_and(|text| !text.trim().is_empty()));
            (
                [("content-type", "audio/mpeg")],
                b"ID3fake-mp3-bytes".to_vec(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn audio_is_synthesised_by_a_job_and_served_through_signed_expiring_urls() {
    let speech = speech_server().await;
    let app = spawn_app_with(|s| {
        s.media.tts_base_url = Some(speech);
        s.media.url_ttl = std::time::Duration::from_secs(2);
        s.media.audio_poll = std::time::Duration::from_millis(50);
    })
    .await;
    let me = app.owner().await;
    let id = content(&app, &me, "ritual", "deep", &["evening"]).await;
    app.exec(
        "INSERT INTO audio_jobs (content_id, status, run_after, created_at, updated_at) VALUES ($1, 'queued', 0, 0, 0)",
        &[&id],
    )
    .await;
    let mut item = Value::Null;
    for _ in 0..100 {
        item = app
            .ok(
                Method::GET,
                &format!("/content/{id}"),
                &me.access,
                None,
                200,
            )
            .await;
        if item["audio_status"] == "ready" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(item["audio_status"], "ready", "{item}");
    let url = item["audio_url"].as_str().unwrap().to_string();
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        b"ID3fake-mp3-bytes"
    );

    // Tampering with the key, the expiry or the signature is refused.
    let (path, query) = url.split_once('?').unwrap();
    let expires: i64 = query
        .split('&')
        .next()
        .unwrap()
        .trim_start_matches("expires=")
        .parse()
        .unwrap();
    let sig = query.rsplit_once("sig=").unwrap().1;
    for bad in [
        format!("{path}?expires={}&sig={sig}", expires + 100),
        format!("{}x.mp3?{query}", path.trim_end_matches(".mp3")),
        format!("{path}?expires={expires}&sig={}", "0".repeat(64)),
        format!("{path}?expires={expires}&sig=not-hex"),
    ] {
        assert_problem(
            app.client.get(&bad).send().await.unwrap(),
            403,
            "INVALID_SIGNATURE",
        )
        .await;
    }
    let export = app
        .ok(
            Method::GET,
            &format!("/content/{id}/export?format=audio"),
            &me.access,
            None,
            200,
        )
        .await;
    assert!(export["text"].is_null());
    assert!(export["audio_url"].is_string());
    // And once expired, the genuine URL is refused too.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_problem(
        app.client.get(&url).send().await.unwrap(),
        403,
        "URL_EXPIRED",
    )
    .await;
}

#[tokio::test]
async fn credits_balance_ledger_check_and_purchase() {
    let (app, mock) = paid_app().await;
    let me = app.owner().await;
    let balance = app
        .ok(Method::GET, "/credits/balance", &me.access, None, 200)
        .await;
    assert_eq!(balance["balance"], 3);
    assert_eq!(balance["free_tier_used"], false);
    assert!(balance["last_transaction_at"].is_string());
    let grants = app
        .ok(
            Method::GET,
            "/credits/transactions?type=grant",
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(grants["data"][0]["amount"], 3);
    assert_eq!(grants["data"][0]["balance_after"], 3);
    let none = app
        .ok(
            Method::GET,
            "/credits/transactions?transaction_type=refund",
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(none["data"], json!([]));
    assert_problem(
        app.call(
            Method::GET,
            "/credits/transactions?type=gift",
            Some(&me.access),
            None,
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        app.call(Method::GET, "/credits/balance", None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;

    let check = app
        .ok(
            Method::POST,
            "/credits/check",
            &me.access,
            Some(json!({"action": "ritual_creation"})),
            200,
        )
        .await;
    assert_eq!(check["sufficient"], true);
    assert_eq!(check["required"], 1);
    assert_problem(
        app.call(
            Method::POST,
            "/credits/check",
            Some(&me.access),
            Some(json!({"action": "time_travel"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    app.exec(
        "UPDATE credit_balances SET balance = 0 WHERE user_id = $1",
        &[&me.id],
    )
    .await;
    let check = app
        .ok(
            Method::POST,
            "/credits/check",
            &me.access,
            Some(json!({"action": "affirmation_creation"})),
            200,
        )
        .await;
    assert_eq!(check["sufficient"], false);

    let bought = app
        .ok(
            Method::POST,
            "/credits/purchase",
            &me.access,
            Some(json!({"pack_type": "seeker"})),
            201,
        )
        .await;
    assert_eq!(bought["credits_amount"], 10);
    assert!(bought["checkout_url"]
        .as_str()
        .unwrap()
        .starts_with("https://checkout.stripe.com/"));
    {
        let recorded = mock.recorded.lock().unwrap();
        let (path, key, form) = recorded.requests.last().unwrap();
        assert_eq!(path, "/v1/checkout/sessions");
        assert!(
            key.as_deref().unwrap().starts_with("checkout-"),
            "an idempotency key is sent"
        );
        assert_eq!(form["mode"], "payment");
        assert_eq!(form["line_items[0][price_data][unit_amount]"], "1299");
        assert_eq!(form["metadata[user_id]"], me.id);
    }
    assert_problem(
        app.call(
            Method::POST,
            "/credits/purchase",
            Some(&me.access),
            Some(json!({"pack_type": "galactic"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            "/credits/purchase",
            Some(&me.access),
            Some(json!({"pack_type": "starter", "success_url": "javascript:alert(1)"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;

    // Paid: the webhook adds the credits once, however often it is delivered.
    let completed = event(
        "checkout.session.completed",
        now_secs(),
        json!({"id": bought["session_id"], "object": "checkout.session", "payment_status": "paid", "payment_intent": "pi_1"}),
    );
    let ack: Value = webhook(&app, &completed).await.json().await.unwrap();
    assert_eq!(ack["duplicate"], false);
    let ack: Value = webhook(&app, &completed).await.json().await.unwrap();
    assert_eq!(ack["duplicate"], true);
    let balance = app
        .ok(Method::GET, "/credits/balance", &me.access, None, 200)
        .await;
    assert_eq!(balance["balance"], 10);
    let purchases = app
        .ok(
            Method::GET,
            "/credits/transactions?type=purchase",
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(purchases["data"].as_array().unwrap().len(), 1);

    // Refunded after spending 4: the 6 left are taken back, never more.
    app.exec(
        "UPDATE credit_balances SET balance = 6 WHERE user_id = $1",
        &[&me.id],
    )
    .await;
    let refund = event(
        "charge.refunded",
        now_secs(),
        json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "refunded": true}),
    );
    assert_eq!(webhook(&app, &refund).await.status(), 200);
    let balance = app
        .ok(Method::GET, "/credits/balance", &me.access, None, 200)
        .await;
    assert_eq!(balance["balance"], 0);
    let refunds = app
        .ok(
            Method::GET,
            "/credits/transactions?type=refund",
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(refunds["data"][0]["amount"], -6);
}

#[tokio::test]
async fn payments_are_unavailable_without_stripe_configured() {
    let app = spawn_app().await;
    let me = app.owner().await;
    assert_problem(
        app.call(
            Method::POST,
            "/credits/purchase",
            Some(&me.access),
            Some(json!({"pack_type": "starter"})),
        )
        .await,
        503,
        "UNAVAILABLE",
    )
    .await;
    let response = app
        .client
        .post(app.api("/payments/webhook"))
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(response, 503, "UNAVAILABLE").await;
}

#[tokio::test]
async fn concurrent_consumptions_never_overdraw_or_double_charge() {
    let app = spawn_app().await;
    let me = app.owner().await;
    let db = rapport::storage::Db::connect(&app.database_url, 16)
        .await
        .unwrap();
    // 40 spenders at a balance of 3; every reference is tried twice.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let db = db.clone();
        let user = me.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = db.pool.begin().await.unwrap();
            let result = db
                .spend_credits(&mut tx, &user, 1, &format!("job-{}", i / 2))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            result
        }));
    }
    let mut charged = 0;
    for task in tasks {
        if matches!(
            task.await.unwrap(),
            rapport::storage::credits::Spend::Charged(_)
        ) {
            charged += 1;
        }
    }
    assert_eq!(charged, 3);
    let mut conn = app.db().await;
    let (balance,): (i64,) =
        sqlx::query_as("SELECT balance FROM credit_balances WHERE user_id = $1")
            .bind(&me.id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let (sum, min_after): (i64, i64) = sqlx::query_as(
        "SELECT CAST(SUM(amount) AS BIGINT), MIN(balance_after) FROM credit_transactions WHERE user_id = $1",
    )
    .bind(&me.id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(balance, 0);
    assert_eq!(sum, balance, "the ledger sums to the balance");
    assert!(min_after >= 0, "the balance never went negative");
    db.close().await;
}

struct Shop {
    owner: Account,
    staff: Account,
    member: Account,
    pack: String,
}

async fn shop(app: &TestApp, price_type: &str, price_cents: i64) -> Shop {
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let key = app.api_key(&owner, "publishable").await;
    let member = app.member(&key).await;
    let item = content(
        app,
        &staff,
        "guided_meditation",
        "medium",
        &["sleep", "evening"],
    )
    .await;
    let mut body = json!({
        "title": "Deep Sleep Pack",
        "description": "Wind down for sleep",
        "tags": ["Sleep", "evening"],
        "price_type": price_type,
        "price_cents": price_cents,
        "content_ids": [item],
    });
    if price_type == "subscription" {
        body["subscription_interval"] = json!("month");
    }
    let pack = app
        .ok(
            Method::POST,
            "/catalog/packs",
            &staff.access,
            Some(body),
            201,
        )
        .await;
    let id = pack["id"].as_str().unwrap().to_string();
    app.ok(
        Method::POST,
        &format!("/catalog/packs/{id}/publish"),
        &staff.access,
        None,
        200,
    )
    .await;
    Shop {
        owner,
        staff,
        member,
        pack: id,
    }
}

#[tokio::test]
async fn creators_publish_packs_that_members_browse_and_get_recommended() {
    let app = spawn_app().await;
    let s = shop(&app, "one_time", 999).await;
    let member_item = content(&app, &s.member, "ritual", "deep", &["sleep"]).await;
    // Members may not create packs; invalid packs and foreign content are refused.
    let body = json!({"title": "Mine", "price_type": "free"});
    assert_problem(
        app.call(
            Method::POST,
            "/catalog/packs",
            Some(&s.member.access),
            Some(body),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            "/catalog/packs",
            Some(&s.staff.access),
            Some(json!({"title": "", "price_type": "barter"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            "/catalog/packs",
            Some(&s.staff.access),
            Some(json!({"title": "Sub", "price_type": "subscription", "price_cents": 500})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            "/catalog/packs",
            Some(&s.staff.access),
            Some(json!({"title": "Stolen", "price_type": "free", "content_ids": [member_item]})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    let empty = app
        .ok(
            Method::POST,
            "/catalog/packs",
            &s.owner.access,
            Some(json!({"title": "Empty", "price_type": "free"})),
            201,
        )
        .await;
    let empty_id = empty["id"].as_str().unwrap();
    assert_eq!(empty["status"], "draft");
    assert_problem(
        app.call(
            Method::POST,
            &format!("/catalog/packs/{empty_id}/publish"),
            Some(&s.owner.access),
            None,
        )
        .await,
        409,
        "EMPTY_PACK",
    )
    .await;
    // Drafts are invisible to members.
    assert_problem(
        app.call(
            Method::GET,
            &format!("/catalog/packs/{empty_id}"),
            Some(&s.member.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            &format!("/catalog/packs/{}/publish", s.pack),
            Some(&s.member.access),
            None,
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;

    let list = app
        .ok(Method::GET, "/catalog/packs", &s.member.access, None, 200)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["price_amount"], 9.99);
    assert_eq!(list["data"][0]["ritual_count"], 1);
    for (query, n) in [
        ("search=sleep", 1),
        ("search=yoga", 0),
        ("tags=sleep", 1),
        ("tags=sleep&tags=morning", 0),
        ("price_type=one_time", 1),
        ("price_type=free", 0),
        (&format!("creator_id={}", s.staff.id) as &str, 1),
        (&format!("creator_id={}", s.member.id) as &str, 0),
    ] {
        let page = app
            .ok(
                Method::GET,
                &format!("/catalog/packs?{query}"),
                &s.member.access,
                None,
                200,
            )
            .await;
        assert_eq!(page["data"].as_array().unwrap().len(), n, "{query}");
    }
    assert_problem(
        app.call(
            Method::GET,
            "/catalog/packs?price_type=barter",
            Some(&s.member.access),
            None,
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;

    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(detail["user_has_access"], false);
    assert_eq!(detail["rituals"][0]["duration"], 600);
    let creator_view = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.staff.access,
            None,
            200,
        )
        .await;
    assert_eq!(creator_view["user_has_access"], true);
    // The pack's content is not the member's until they have access.
    let item = detail["rituals"][0]["id"].as_str().unwrap();
    assert_problem(
        app.call(
            Method::GET,
            &format!("/content/{item}"),
            Some(&s.member.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    // Practising sleep content makes the sleep pack the top recommendation, with a reason.
    let started = app
        .ok(
            Method::POST,
            &format!("/content/{member_item}/play"),
            &s.member.access,
            Some(json!({})),
            201,
        )
        .await;
    assert!(started["practice_event_id"].is_string());
    let recs = app
        .ok(
            Method::GET,
            "/catalog/recommendations",
            &s.member.access,
            None,
            200,
        )
        .await;
    let top = &recs["recommendations"][0];
    assert_eq!(top["pack_id"], s.pack.as_str());
    assert!(top["reason"].as_str().unwrap().contains("sleep"), "{top}");
    assert!(top["score"].as_f64().unwrap() > 0.5);
    let fresh = app
        .member(&app.api_key(&s.owner, "publishable").await)
        .await;
    let recs = app
        .ok(
            Method::GET,
            "/catalog/recommendations",
            &fresh.access,
            None,
            200,
        )
        .await;
    assert_eq!(
        recs["recommendations"][0]["reason"],
        "New in your catalogue"
    );

    // Another organisation sees none of it.
    let stranger = app.owner().await;
    let list = app
        .ok(Method::GET, "/catalog/packs", &stranger.access, None, 200)
        .await;
    assert_eq!(list["data"], json!([]));
    assert_problem(
        app.call(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            Some(&stranger.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn webhooks_verify_signatures_grant_once_and_survive_refunds_out_of_order() {
    let (app, mock) = paid_app().await;
    let s = shop(&app, "one_time", 999).await;
    let checkout = app
        .ok(
            Method::POST,
            "/payments/checkout",
            &s.member.access,
            Some(json!({"pack_id": s.pack, "price_type": "one_time"})),
            201,
        )
        .await;
    let session = checkout["session_id"].as_str().unwrap().to_string();
    assert!(checkout["checkout_url"]
        .as_str()
        .unwrap()
        .contains(&session));
    {
        let recorded = mock.recorded.lock().unwrap();
        let (_, _, form) = recorded.requests.last().unwrap();
        assert_eq!(form["metadata[pack_id]"], s.pack);
        assert_eq!(form["line_items[0][price_data][unit_amount]"], "999");
    }
    assert_problem(
        app.call(
            Method::POST,
            "/payments/checkout",
            Some(&s.member.access),
            Some(json!({"pack_id": "nope"})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            "/payments/checkout",
            Some(&s.member.access),
            Some(json!({"pack_id": s.pack, "cancel_url": "ftp://x"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;

    let completed = event(
        "checkout.session.completed",
        now_secs(),
        json!({"id": session, "object": "checkout.session", "payment_status": "paid", "payment_intent": "pi_pack"}),
    );
    let payload = completed.to_string();
    // Bad signatures: wrong secret, stale timestamp, altered body, missing header, garbage.
    let good = sign(&payload, now_secs());
    let stale = sign(&payload, now_secs() - 301);
    let forged = {
        use hmac::{Hmac, Mac};
        let t = now_secs();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec_wrong").unwrap();
        mac.update(format!("{t}.{payload}").as_bytes());
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    };
    for (header, body) in [
        (Some(forged), payload.clone()),
        (Some(stale), payload.clone()),
        (Some(good.clone()), payload.replace("paid", "unpaid")),
        (None, payload.clone()),
        (Some("t=abc,v1=zz".to_string()), payload.clone()),
    ] {
        let mut request = app.client.post(app.api("/payments/webhook")).body(body);
        if let Some(header) = header {
            request = request.header("stripe-signature", header);
        }
        assert_problem(request.send().await.unwrap(), 400, "INVALID_SIGNATURE").await;
    }
    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(detail["user_has_access"], false);

    // Several v1 signatures (a secret being rolled): one matching is enough.
    let (t, v1) = good.split_once(",v1=").unwrap();
    let rolled = format!("{t},v1={},v1={v1}", "ab".repeat(32));
    let response = app
        .client
        .post(app.api("/payments/webhook"))
        .header("stripe-signature", rolled)
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(detail["user_has_access"], true);
    let item = detail["rituals"][0]["id"].as_str().unwrap();
    app.ok(
        Method::GET,
        &format!("/content/{item}"),
        &s.member.access,
        None,
        200,
    )
    .await;
    let library = app
        .ok(Method::GET, "/content", &s.member.access, None, 200)
        .await;
    assert_eq!(library["data"][0]["owned"], false);
    // A replay changes nothing; buying again is refused.
    let ack: Value = webhook(&app, &completed).await.json().await.unwrap();
    assert_eq!(ack["duplicate"], true);
    assert_problem(
        app.call(
            Method::POST,
            "/payments/checkout",
            Some(&s.member.access),
            Some(json!({"pack_id": s.pack})),
        )
        .await,
        409,
        "ALREADY_OWNED",
    )
    .await;

    // A refund takes the pack away.
    let refund = event(
        "charge.refunded",
        now_secs(),
        json!({"id": "ch_pack", "payment_intent": "pi_pack", "refunded": true}),
    );
    assert_eq!(webhook(&app, &refund).await.status(), 200);
    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(detail["user_has_access"], false);
    assert_problem(
        app.call(
            Method::GET,
            &format!("/content/{item}"),
            Some(&s.member.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    // Out of order: a refund that overtakes its completion means the completion grants nothing.
    let again = app
        .ok(
            Method::POST,
            "/payments/checkout",
            &s.member.access,
            Some(json!({"pack_id": s.pack})),
            201,
        )
        .await;
    let session = again["session_id"].as_str().unwrap();
    let early_refund = event(
        "charge.refunded",
        now_secs(),
        json!({"id": "ch_2", "payment_intent": "pi_2", "refunded": true, "metadata": {"checkout_session": session}}),
    );
    assert_eq!(webhook(&app, &early_refund).await.status(), 200);
    let late = event(
        "checkout.session.completed",
        now_secs(),
        json!({"id": session, "payment_status": "paid", "payment_intent": "pi_2"}),
    );
    assert_eq!(webhook(&app, &late).await.status(), 200);
    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(detail["user_has_access"], false);

    // Unknown event types are acknowledged and ignored.
    let other = event("invoice.created", now_secs(), json!({"id": "in_1"}));
    assert_eq!(webhook(&app, &other).await.status(), 200);

    // Free packs are granted at once, without Stripe.
    let free = shop(&app, "free", 0).await;
    let granted = app
        .ok(
            Method::POST,
            "/payments/checkout",
            &free.member.access,
            Some(json!({"pack_id": free.pack})),
            201,
        )
        .await;
    assert_eq!(granted["access_granted"], true);
    assert!(granted["checkout_url"].is_null());
}

#[tokio::test]
async fn subscriptions_follow_webhooks_in_order_and_change_through_stripe() {
    let (app, mock) = paid_app().await;
    let s = shop(&app, "subscription", 900).await;
    let checkout = app
        .ok(
            Method::POST,
            "/payments/checkout",
            &s.member.access,
            Some(json!({"pack_id": s.pack})),
            201,
        )
        .await;
    {
        let recorded = mock.recorded.lock().unwrap();
        let (_, _, form) = recorded.requests.last().unwrap();
        assert_eq!(form["mode"], "subscription");
        assert_eq!(
            form["line_items[0][price_data][recurring][interval]"],
            "month"
        );
        assert_eq!(form["subscription_data[metadata][pack_id]"], s.pack);
    }
    let t0 = now_secs();
    let completed = event(
        "checkout.session.completed",
        t0,
        json!({"id": checkout["session_id"], "payment_status": "paid", "subscription": "sub_1", "mode": "subscription"}),
    );
    assert_eq!(webhook(&app, &completed).await.status(), 200);
    let subs = app
        .ok(Method::GET, "/subscriptions", &s.member.access, None, 200)
        .await;
    assert_eq!(subs["data"][0]["id"], "sub_1");
    assert_eq!(subs["data"][0]["status"], "active");
    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(detail["user_has_access"], true);
    // Someone else's subscription does not exist for me.
    assert_problem(
        app.call(
            Method::GET,
            "/subscriptions/sub_1",
            Some(&s.staff.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.call(
            Method::GET,
            "/subscriptions/sub_nope",
            Some(&s.member.access),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    let updated = event(
        "customer.subscription.updated",
        t0 + 1,
        json!({"id": "sub_1", "object": "subscription", "status": "active", "items": {"data": [{"id": "si_1", "price": {"unit_amount": 900}}]}}),
    );
    assert_eq!(webhook(&app, &updated).await.status(), 200);

    // Pause goes to Stripe; resuming a subscription that is not paused is refused.
    assert_problem(
        app.call(
            Method::POST,
            "/subscriptions/sub_1/change",
            Some(&s.member.access),
            Some(json!({"action": "resume"})),
        )
        .await,
        409,
        "INVALID_STATE",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            "/subscriptions/sub_1/change",
            Some(&s.member.access),
            Some(json!({"action": "teleport"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        app.call(
            Method::POST,
            "/subscriptions/sub_1/change",
            Some(&s.member.access),
            Some(json!({"action": "upgrade"})),
        )
        .await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    let paused = app
        .ok(
            Method::POST,
            "/subscriptions/sub_1/change",
            &s.member.access,
            Some(json!({"action": "pause"})),
            200,
        )
        .await;
    assert_eq!(paused["status"], "paused");
    {
        let recorded = mock.recorded.lock().unwrap();
        let (path, key, form) = recorded.requests.last().unwrap();
        assert_eq!(path, "/v1/subscriptions/sub_1");
        assert!(key.is_some());
        assert_eq!(form["pause_collection[behavior]"], "void");
    }
    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(
        detail["user_has_access"], false,
        "a paused subscription gives no access"
    );

    // Deleted at t0+10, then a stale update from t0+5 arrives: the subscription stays cancelled.
    let deleted = event(
        "customer.subscription.deleted",
        t0 + 10,
        json!({"id": "sub_1", "status": "canceled"}),
    );
    assert_eq!(webhook(&app, &deleted).await.status(), 200);
    let stale = event(
        "customer.subscription.updated",
        t0 + 5,
        json!({"id": "sub_1", "status": "active"}),
    );
    assert_eq!(webhook(&app, &stale).await.status(), 200);
    let sub = app
        .ok(
            Method::GET,
            "/subscriptions/sub_1",
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(sub["status"], "canceled");
    let detail = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", s.pack),
            &s.member.access,
            None,
            200,
        )
        .await;
    assert_eq!(detail["user_has_access"], false);
    assert_problem(
        app.call(
            Method::POST,
            "/subscriptions/sub_1/change",
            Some(&s.member.access),
            Some(json!({"action": "cancel"})),
        )
        .await,
        409,
        "INVALID_STATE",
    )
    .await;
}

#[tokio::test]
async fn end_to_end_from_sign_up_to_a_bought_pack() {
    let speech = speech_server().await;
    let (app, _mock) = paid_app_speaking(Some(speech)).await;
    let creator_org = shop(&app, "one_time", 1500).await;
    // Sign up (a member of the organisation) → free credits.
    let key = app.api_key(&creator_org.owner, "publishable").await;
    let me = app.member(&key).await;
    let balance = app
        .ok(Method::GET, "/credits/balance", &me.access, None, 200)
        .await;
    assert_eq!(balance["balance"], 3);
    // A live session over the WebSocket → generated content.
    let (mut client, _session) = crate::hub::session_at_confirmation(&app, &me.access).await;
    client
        .send(json!({"type": "complete", "confirm": true}))
        .await;
    let frames = client.until("generation.completed").await;
    let content_id = frames.last().unwrap()["content_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Audio: synthesised by a job after the text, served through a pre-signed URL.
    let mut item = Value::Null;
    for _ in 0..100 {
        item = app
            .ok(
                Method::GET,
                &format!("/content/{content_id}"),
                &me.access,
                None,
                200,
            )
            .await;
        if item["audio_status"] != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(item["audio_status"], "ready", "{item}");
    let audio_url = item["audio_url"].as_str().unwrap();
    let audio = app.client.get(audio_url).send().await.unwrap();
    assert_eq!(audio.status(), 200);
    assert!(!audio.bytes().await.unwrap().is_empty());
    let balance = app
        .ok(Method::GET, "/credits/balance", &me.access, None, 200)
        .await;
    assert_eq!(balance["balance"], 2, "exactly one credit for the text");
    // Play, complete, history.
    let started = app
        .ok(
            Method::POST,
            &format!("/content/{content_id}/play"),
            &me.access,
            Some(json!({})),
            201,
        )
        .await;
    let event_id = started["practice_event_id"].as_str().unwrap();
    app.ok(
        Method::POST,
        &format!("/content/{content_id}/complete"),
        &me.access,
        Some(json!({"practice_event_id": event_id, "duration": 300})),
        200,
    )
    .await;
    let history = app
        .ok(Method::GET, "/users/me/history", &me.access, None, 200)
        .await;
    assert_eq!(history["data"][0]["content_id"], content_id.as_str());
    assert_eq!(history["data"][0]["duration"], 300);
    // Buy a pack: checkout, then Stripe's signed webhook → access.
    let checkout = app
        .ok(
            Method::POST,
            "/payments/checkout",
            &me.access,
            Some(json!({"pack_id": creator_org.pack})),
            201,
        )
        .await;
    let paid = event(
        "checkout.session.completed",
        now_secs(),
        json!({"id": checkout["session_id"], "payment_status": "paid", "payment_intent": "pi_e2e"}),
    );
    assert_eq!(webhook(&app, &paid).await.status(), 200);
    let pack = app
        .ok(
            Method::GET,
            &format!("/catalog/packs/{}", creator_org.pack),
            &me.access,
            None,
            200,
        )
        .await;
    assert_eq!(pack["user_has_access"], true);
}

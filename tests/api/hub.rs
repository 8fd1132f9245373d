use serde_json::json;

use crate::helpers::spawn_app;
use crate::ws_client::{last_state, Client};

async fn balance(app: &crate::helpers::TestApp, user_id: &str) -> i64 {
    let mut db = app.db().await;
    let (b,): (i64,) = sqlx::query_as("SELECT balance FROM credit_balances WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    b
}

/// Drives a guided session to Confirmation; returns the client and the session id.
pub async fn session_at_confirmation(
    app: &crate::helpers::TestApp,
    token: &str,
) -> (Client, String) {
    let mut client = Client::bearer(app, token).await;
    client
        .send(json!({"type": "session.start", "content_type": "ritual", "intent": "help me sleep better"}))
        .await;
    let attached = client.recv().await;
    assert_eq!(attached["type"], "session.attached", "{attached}");
    let session_id = attached["session_id"].as_str().unwrap().to_string();
    let opening = client.until("message.done").await;
    assert!(
        opening.iter().any(|f| f["type"] == "token"),
        "the greeting streams"
    );
    let frames = client.say("in the evening, before bed", "m1").await;
    assert_eq!(frames[0]["type"], "ack");
    let frames = client.say("ten minutes and fairly deep", "m2").await;
    let state = last_state(&frames).unwrap_or_default();
    assert_eq!(state, "Confirmation", "{frames:?}");
    (client, session_id)
}

#[tokio::test]
async fn a_guided_ritual_flow_completes_over_websocket() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    assert_eq!(balance(&app, &owner.id).await, 3);
    let (mut client, session_id) = session_at_confirmation(&app, &owner.access).await;

    client
        .send(json!({"type": "complete", "confirm": true}))
        .await;
    let frames = client.until("generation.completed").await;
    assert!(frames.iter().any(|f| f["type"] == "generation.progress"));
    let done = frames.last().unwrap();
    assert_eq!(done["credits_remaining"], 2);
    let content_id = done["content_id"].as_str().unwrap().to_string();
    let after = client.until("state").await;
    assert_eq!(after.last().unwrap()["state"], "Completed");
    assert_eq!(balance(&app, &owner.id).await, 2);

    let mut db = app.db().await;
    let (title, body, user): (String, String, String) =
        sqlx::query_as("SELECT title, body, user_id FROM content_items WHERE id = $1")
            .bind(&content_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(user, owner.id);
    assert!(!title.is_empty());
    assert!(
        body.contains("[offline template]"),
        "the offline provider labels its text"
    );
    let (ledger,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM credit_transactions WHERE user_id = $1 AND kind = 'consumption'",
    )
    .bind(&owner.id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(ledger, 1);

    // The REST mirror sees the same session.
    let state: serde_json::Value = app
        .get_auth(
            &format!("/conversation/state?session_id={session_id}"),
            &owner.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["state"], "Completed");
    assert_eq!(
        state["messages"].as_array().unwrap().len(),
        5,
        "greeting and two exchanges"
    );
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_frames() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client
        .send(json!({"type": "session.start", "content_type": "affirmation"}))
        .await;
    let attached = client.recv().await;
    let session_id = attached["session_id"].as_str().unwrap().to_string();
    client.until("message.done").await;
    let seen = client.last_seq;
    // Send a message, then drop the connection without reading the answer.
    client
        .send(
            json!({"type": "message", "content": "confidence at work", "client_message_id": "a1"}),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(client);

    let mut again = Client::bearer(&app, &owner.access).await;
    again.last_seq = seen;
    again
        .send(json!({"type": "session.resume", "session_id": session_id, "last_seq": seen}))
        .await;
    let attached = again.recv().await;
    assert_eq!(attached["type"], "session.attached");
    assert_eq!(attached["resumed"], true);
    let highest = attached["last_seq"].as_i64().unwrap();
    assert!(highest > seen);
    // Client::recv asserts that seq continues from `seen` with no gap and no duplicate.
    while again.last_seq < highest {
        again.recv().await;
    }
    // Then live frames continue the same numbering.
    let frames = again.say("in the morning", "a2").await;
    assert!(frames.iter().any(|f| f["type"] == "token"));
}

#[tokio::test]
async fn duplicate_client_message_ids_are_processed_once() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client
        .send(json!({"type": "session.start", "content_type": "ritual"}))
        .await;
    client.recv().await;
    client.until("message.done").await;
    client.say("better sleep", "same-id").await;
    client
        .send(json!({"type": "message", "content": "better sleep", "client_message_id": "same-id"}))
        .await;
    let ack = client.recv().await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["duplicate"], true);
    assert!(
        client
            .try_recv(std::time::Duration::from_millis(300))
            .await
            .is_none(),
        "nothing processed"
    );
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    for (raw, code) in [
        ("{not json", "invalid_json"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"type":"message","content":""}"#, "schema_violation"),
        (r#"[1,2,3]"#, "schema_violation"),
        (
            r#"{"type":"message","content":"hi","client_message_id":"x"}"#,
            "not_attached",
        ),
        (r#"{"type":"cancel","ref":"r-7"}"#, "not_attached"),
    ] {
        client.send_raw(raw).await;
        let error = client.recv().await;
        assert_eq!(error["type"], "error", "{raw}");
        assert_eq!(error["code"], code, "{raw}");
    }
    let oversized = format!(r#"{{"type":"ping","nonce":"{}"}}"#, "x".repeat(70 * 1024));
    client.send_raw(&oversized).await;
    assert_eq!(client.recv().await["code"], "frame_too_large");
    client
        .send(json!({"type": "ping", "nonce": "still-here"}))
        .await;
    let pong = client.recv().await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["nonce"], "still-here");
}

#[tokio::test]
async fn credentials_in_the_url_are_refused_and_bad_tokens_closed() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/ws?token=abc"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "rapport.v1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let mut client = Client::connect(&app, &["rapport.bearer.not-a-token".to_string()]).await;
    let error = client.recv().await;
    assert_eq!(error["code"], "unauthorized");
    let closed = client.recv().await;
    assert_eq!(closed["code"], 4401);

    // Without a credential, the first frame must authenticate.
    let owner = app.owner().await;
    let mut client = Client::connect(&app, &[]).await;
    client
        .send(json!({"type": "session.start", "content_type": "ritual"}))
        .await;
    assert_eq!(client.recv().await["code"], "invalid_state");
    client
        .send(json!({"type": "auth", "token": owner.access}))
        .await;
    assert_eq!(client.recv().await["type"], "auth.ok");
}

#[tokio::test]
async fn insufficient_credits_are_refused_and_concurrent_completes_charge_once() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let (mut client, session_id) = session_at_confirmation(&app, &owner.access).await;
    // Two completes at once over REST and one over WebSocket: one generation, one charge.
    let body = json!({"session_id": session_id, "confirm": true});
    let (a, b) = tokio::join!(
        app.client
            .post(app.api("/conversation/complete"))
            .bearer_auth(&owner.access)
            .json(&body)
            .send(),
        app.client
            .post(app.api("/conversation/complete"))
            .bearer_auth(&owner.access)
            .json(&body)
            .send(),
    );
    let statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    assert!(
        statuses.contains(&202) && statuses.contains(&409),
        "{statuses:?}"
    );
    client.until("generation.completed").await;
    assert_eq!(balance(&app, &owner.id).await, 2);

    // A user with no credits left is refused with 402 / insufficient_credits.
    let mut db = app.db().await;
    sqlx::query("UPDATE credit_balances SET balance = 0 WHERE user_id = $1")
        .bind(&owner.id)
        .execute(&mut db)
        .await
        .unwrap();
    let (mut client, session_id) = session_at_confirmation(&app, &owner.access).await;
    client
        .send(json!({"type": "complete", "confirm": true}))
        .await;
    let error = client.recv().await;
    assert_eq!(error["code"], "insufficient_credits");
    let response = app
        .client
        .post(app.api("/conversation/complete"))
        .bearer_auth(&owner.access)
        .json(&json!({"session_id": session_id, "confirm": true}))
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(response, 402, "INSUFFICIENT_CREDITS").await;
}

#[tokio::test]
async fn the_flow_works_with_an_openai_compatible_upstream() {
    let upstream = crate::upstream::spawn(12, std::time::Duration::from_millis(2)).await;
    let base = upstream.base_url.clone();
    let app = crate::helpers::spawn_app_with(|s| {
        s.llm.base_url = Some(base);
        s.llm.model = "mock".into();
    })
    .await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client
        .send(json!({"type": "session.start", "content_type": "guided_meditation", "intent": "calm before exams"}))
        .await;
    client.recv().await;
    let opening = client.until("message.done").await;
    let tokens = opening.iter().filter(|f| f["type"] == "token").count();
    assert_eq!(tokens, 12, "every upstream chunk becomes one token frame");
    assert_eq!(
        opening.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        12
    );
    // The engine still decides the flow; the upstream only phrases it.
    client.say("in the morning", "u1").await;
    let frames = client.say("5 minutes, shallow", "u2").await;
    assert_eq!(last_state(&frames).as_deref(), Some("Confirmation"));
    client
        .send(json!({"type": "complete", "confirm": true}))
        .await;
    let done = client.until("generation.completed").await;
    assert_eq!(done.last().unwrap()["credits_remaining"], 2);
    assert!(upstream.requests.load(std::sync::atomic::Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn cancel_stops_the_upstream_stream() {
    let upstream = crate::upstream::spawn(500, std::time::Duration::from_millis(20)).await;
    let base = upstream.base_url.clone();
    let app = crate::helpers::spawn_app_with(|s| s.llm.base_url = Some(base)).await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client
        .send(json!({"type": "session.start", "content_type": "ritual"}))
        .await;
    client.recv().await;
    // Let a few tokens of the (10 s long) greeting arrive, then cancel.
    client.until("token").await;
    client.until("token").await;
    assert_eq!(
        upstream
            .open_streams
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    client.send(json!({"type": "cancel"})).await;
    let frames = client.until("message.done").await;
    let done = frames.last().unwrap();
    assert_eq!(done["cancelled"], true);
    for _ in 0..50 {
        if upstream
            .open_streams
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        upstream
            .open_streams
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the upstream connection was closed"
    );
    // The session takes messages again.
    client
        .send(json!({"type": "message", "content": "better focus", "client_message_id": "c1"}))
        .await;
    assert_eq!(client.recv().await["type"], "ack");
    let echoed = client.recv().await;
    assert_eq!(echoed["type"], "message.done");
    assert_eq!(echoed["role"], "user");
}

#[tokio::test]
async fn a_session_resumes_after_a_server_restart() {
    let mut app = spawn_app().await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client
        .send(json!({"type": "session.start", "content_type": "ritual", "intent": "sleep"}))
        .await;
    let session_id = client.recv().await["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    client.until("message.done").await;
    client.say("at night", "r1").await;
    let seen = client.last_seq;
    drop(client);

    app = app.restart().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client.last_seq = seen;
    client
        .send(json!({"type": "session.resume", "session_id": session_id, "last_seq": seen}))
        .await;
    let attached = client.recv().await;
    assert_eq!(attached["resumed"], true);
    assert_eq!(
        attached["last_seq"], seen,
        "every frame survived the restart"
    );
    // The state machine was checkpointed: the next answer continues where it was.
    let frames = client.say("15 minutes, deep", "r2").await;
    assert_eq!(last_state(&frames).as_deref(), Some("Confirmation"));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off() {
    // 6,000 frames of 4 KiB: several times what the kernel's socket buffers hold.
    let upstream = crate::upstream::spawn_sized(6_000, std::time::Duration::ZERO, 4096).await;
    let base = upstream.base_url.clone();
    let app = crate::helpers::spawn_app_with(|s| {
        s.llm.base_url = Some(base);
        s.hub.outbound_queue = 16;
        s.hub.send_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client
        .send(json!({"type": "session.start", "content_type": "ritual"}))
        .await;
    // Read nothing until the server has consumed the whole upstream stream (all 6,000 frames
    // produced); only then look at what reached this client.
    for _ in 0..600 {
        let started = upstream.requests.load(std::sync::atomic::Ordering::SeqCst) > 0;
        if started
            && upstream
                .open_streams
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The server dropped this subscriber instead of buffering: the stream ends with a close, well
    // before all 20,000 tokens, and the session lives on for a resume.
    let mut tokens = 0;
    let mut closed = false;
    while let Some(frame) = client.try_recv(std::time::Duration::from_secs(5)).await {
        match frame["type"].as_str() {
            Some("token") => tokens += 1,
            Some("__close") => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "the slow connection was closed ({tokens} tokens)");
    assert!(
        tokens < 6_000,
        "not everything was buffered for it ({tokens})"
    );
    let health = app.client.get(app.api("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn draining_tells_clients_to_reconnect() {
    let mut app = spawn_app().await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    client
        .send(json!({"type": "session.start", "content_type": "affirmation"}))
        .await;
    client.recv().await;
    client.until("message.done").await;
    app.shutdown.cancel();
    let frame = client.recv().await;
    assert_eq!(frame["type"], "reconnect");
    assert!(frame["after_ms"].as_u64().is_some());
    let close = client.recv().await;
    assert_eq!(close["code"], 1001);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn saying_yes_at_the_summary_generates_like_complete() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let (mut client, _) = session_at_confirmation(&app, &owner.access).await;
    client
        .send(json!({"type": "message", "content": "yes, that sounds right", "client_message_id": "y1"}))
        .await;
    let frames = client.until("generation.completed").await;
    assert_eq!(frames[0]["type"], "ack");
    assert!(frames
        .iter()
        .any(|f| f["type"] == "state" && f["state"] == "Generating"));
    assert_eq!(balance(&app, &owner.id).await, 2);
}

#[tokio::test]
async fn frame_floods_are_refused_then_closed() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let mut client = Client::bearer(&app, &owner.access).await;
    for i in 0..20 {
        client
            .send(json!({"type": "ping", "nonce": format!("n{i}")}))
            .await;
        assert_eq!(client.recv().await["type"], "pong");
    }
    // The 21st to 39th frames are refused but the connection stays open.
    client.send(json!({"type": "ping", "nonce": "over"})).await;
    let refused = client.recv().await;
    assert_eq!(refused["code"], "rate_limited");
    assert!(refused["retry_after_ms"].as_u64().is_some());
    for _ in 21..39 {
        client.send(json!({"type": "ping"})).await;
        assert_eq!(client.recv().await["code"], "rate_limited");
    }
    // The 40th closes it with 1008.
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.recv().await["code"], "rate_limited");
    assert_eq!(client.recv().await["code"], 1008);
}

#[tokio::test]
async fn a_session_runs_on_one_node_at_a_time_and_moves_when_released() {
    let node_a = crate::helpers::spawn_app_with(|s| {
        s.hub.idle_evict = std::time::Duration::from_millis(300);
    })
    .await;
    let node_b = node_a.second_node(|_| {}).await;
    let owner = node_a.owner().await;
    let mut on_a = Client::bearer(&node_a, &owner.access).await;
    on_a.send(json!({"type": "session.start", "content_type": "ritual", "intent": "sleep"}))
        .await;
    let session_id = on_a.recv().await["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    on_a.until("message.done").await;
    on_a.say("at night", "n1").await;
    let seen = on_a.last_seq;

    // While node A runs the session, node B does not run it too: on SQLite (one node by design) it
    // refuses; on PostgreSQL it follows A's session (tests/api/cluster.rs covers that fully).
    let mut on_b = Client::bearer(&node_b, &owner.access).await;
    on_b.send(json!({"type": "session.resume", "session_id": session_id, "last_seq": 0}))
        .await;
    let answer = on_b.recv().await;
    if node_a.backend() == "postgres" {
        assert_eq!(answer["type"], "session.attached", "{answer}");
        assert_eq!(answer["last_seq"], seen);
    } else {
        assert_eq!(answer["code"], "busy");
    }

    // Once the client leaves A and A lets the session go, B takes it over with every frame.
    drop(on_a);
    let mut attached = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut probe = Client::bearer(&node_b, &owner.access).await;
        probe
            .send(json!({"type": "session.resume", "session_id": session_id, "last_seq": 0}))
            .await;
        let frame = probe.recv().await;
        if frame["type"] == "session.attached" {
            attached = frame;
            on_b = probe;
            break;
        }
    }
    assert_eq!(attached["resumed"], true, "node B took the session over");
    assert_eq!(attached["last_seq"], seen);
    while on_b.last_seq < seen {
        on_b.recv().await;
    }
    let frames = on_b.say("15 minutes, deep", "n2").await;
    assert_eq!(last_state(&frames).as_deref(), Some("Confirmation"));
}

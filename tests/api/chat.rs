//! The chat widget's API end to end: sessions opened with the publishable key from an allowed
//! origin, grounded answers with citations (JSON, SSE and WebSocket), the fallback when the
//! knowledge base has nothing, history, feedback, closing, analytics, and every refusal.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, Account, TestApp};
use crate::ws_client::Client;

pub const SITE: &str = "https://shop.example.com";
pub const FALLBACK: &str = "I can't answer that one. Please call us on 555-0100.";
pub const QUESTION: &str = "When does the Harbour Café open on weekdays?";
pub const OFF_TOPIC: &str = "Do you repair bicycle tyres?";

/// An organisation whose widget may run on `SITE`, with a document about its opening hours.
pub struct Shop {
    pub owner: Account,
    pub key: String,
}

pub async fn shop(app: &TestApp) -> Shop {
    let owner = app.owner().await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/config", owner.org_id),
        &owner.access,
        Some(json!({
            "allowed_origins": [SITE],
            "greeting": "Welcome to the Harbour Café!",
            "persona": "Harbour helper",
            "fallback_answer": FALLBACK,
        })),
        200,
    )
    .await;
    let key = app.api_key(&owner, "publishable").await;
    let kb = app
        .add_text(
            &owner,
            "Opening hours",
            "The Harbour Café opens at 7:45 on weekdays and at 9:00 on weekends. \
             The kitchen closes at 15:00 every day.",
        )
        .await;
    let kb = app.settled(&owner, kb["id"].as_str().unwrap()).await;
    assert_eq!(kb["status"], "ready", "{kb}");
    Shop { owner, key }
}

pub struct Visit {
    pub session_id: String,
    pub token: String,
}

impl TestApp {
    pub fn widget(&self, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(method, self.api(path))
            .header("origin", SITE);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request
    }

    pub async fn start_chat(&self, key: &str) -> (Visit, Value) {
        let response = self
            .widget(Method::POST, "/chat/sessions", Some(key))
            .json(&json!({"visitor_id": "browser-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let visit = Visit {
            session_id: body["session_id"].as_str().unwrap().to_string(),
            token: body["session_token"].as_str().unwrap().to_string(),
        };
        (visit, body)
    }

    pub fn in_chat(
        &self,
        method: Method,
        visit: &Visit,
        rest: &str,
        key: &str,
    ) -> reqwest::RequestBuilder {
        self.widget(
            method,
            &format!("/chat/sessions/{}{rest}", visit.session_id),
            Some(key),
        )
        .header("x-session-token", &visit.token)
    }

    pub async fn ask(&self, visit: &Visit, key: &str, content: &str) -> reqwest::Response {
        self.in_chat(Method::POST, visit, "/messages", key)
            .json(&json!({"content": content}))
            .send()
            .await
            .unwrap()
    }

    pub async fn analytics(&self, owner: &Account) -> Value {
        self.ok(
            Method::GET,
            &format!("/orgs/{}/analytics", owner.org_id),
            &owner.access,
            None,
            200,
        )
        .await
    }
}

#[tokio::test]
async fn a_visitor_is_answered_from_the_knowledge_base_with_citations_or_told_it_is_not_known() {
    let app = spawn_app().await;
    let shop = shop(&app).await;
    let (visit, started) = app.start_chat(&shop.key).await;
    assert_eq!(
        started["greeting"]["content"],
        "Welcome to the Harbour Café!"
    );
    assert_eq!(started["persona"], "Harbour helper");
    assert_eq!(started["max_message_chars"], 2000);
    assert!(started["session_token"]
        .as_str()
        .unwrap()
        .starts_with("st_"));

    let response = app.ask(&visit, &shop.key, QUESTION).await;
    assert_eq!(response.status(), 200);
    let grounded: Value = response.json().await.unwrap();
    assert_eq!(grounded["grounded"], true, "{grounded}");
    assert!(
        grounded["content"].as_str().unwrap().contains("7:45"),
        "{grounded}"
    );
    assert_eq!(grounded["citations"][0]["title"], "Opening hours");
    assert_eq!(grounded["citations"][0]["position"], 1);

    let response = app.ask(&visit, &shop.key, OFF_TOPIC).await;
    let fallback: Value = response.json().await.unwrap();
    assert_eq!(fallback["grounded"], false, "{fallback}");
    assert_eq!(fallback["content"], FALLBACK);
    assert_eq!(fallback["citations"], json!([]));

    // Streamed: started, tokens as they come, then done with the sources.
    let response = app
        .in_chat(Method::POST, &visit, "/messages", &shop.key)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "Is the café open at 7:45 on weekdays?", "client_message_id": "sse-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"started"), "{body}");
    assert!(
        events.iter().filter(|e| **e == "token").count() >= 2,
        "{body}"
    );
    assert_eq!(events.last(), Some(&"done"), "{body}");
    let done: Value = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap();
    assert_eq!(done["citations"][0]["title"], "Opening hours", "{done}");

    // History, newest first, the greeting oldest, in pages.
    let page: Value = app
        .in_chat(Method::GET, &visit, "/messages?limit=4", &shop.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = page["data"].as_array().unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(first[0]["role"], "assistant");
    assert_eq!(first[1]["content"], "Is the café open at 7:45 on weekdays?");
    assert_eq!(first[2]["grounded"], false);
    assert_eq!(first[3]["role"], "user");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .in_chat(
            Method::GET,
            &visit,
            &format!("/messages?limit=4&cursor={cursor}"),
            &shop.key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rest = rest["data"].as_array().unwrap();
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert_eq!(rest[0]["grounded"], true);
    assert_eq!(rest[0]["citations"][0]["title"], "Opening hours");
    assert_eq!(rest[2]["content"], "Welcome to the Harbour Café!");
    assert!(rest[2]["grounded"].is_null());

    // Feedback: an answer rated, re-rated (replaced), the session rated; only answers can be rated.
    let answer_id = grounded["message_id"].as_str().unwrap();
    let rate = |body: Value| {
        app.in_chat(Method::POST, &visit, "/feedback", &shop.key)
            .json(&body)
            .send()
    };
    let first = rate(json!({"rating": "up", "message_id": answer_id}))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let again = rate(json!({"rating": "down", "message_id": answer_id, "comment": "too short"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["rating"], "down");
    assert_eq!(again["comment"], "too short");
    let whole = rate(json!({"rating": "up"})).await.unwrap();
    assert_eq!(whole.status(), 201);
    let question_id = rest[1]["message_id"].as_str().unwrap();
    assert_problem(
        rate(json!({"rating": "up", "message_id": question_id}))
            .await
            .unwrap(),
        422,
        "VALIDATION_FAILED",
    )
    .await;
    assert_problem(
        rate(json!({"rating": "up", "message_id": uuid::Uuid::now_v7().to_string()}))
            .await
            .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;

    // Closed: no more messages, closing again is harmless, feedback still welcome.
    let closed: Value = app
        .in_chat(Method::POST, &visit, "/close", &shop.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(closed["session_id"], visit.session_id.as_str());
    let response = app.ask(&visit, &shop.key, QUESTION).await;
    assert_problem(response, 409, "SESSION_CLOSED").await;
    let again: Value = app
        .in_chat(Method::POST, &visit, "/close", &shop.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["closed_at"], closed["closed_at"]);
    assert_eq!(
        rate(json!({"rating": "down", "message_id": fallback["message_id"]}))
            .await
            .unwrap()
            .status(),
        201
    );

    // Owners and staff read the sessions, the transcript and the feedback with what was rated.
    let orgs = format!("/orgs/{}/chat", shop.owner.org_id);
    let owner = &shop.owner.access;
    let sessions = app
        .ok(Method::GET, &format!("{orgs}/sessions"), owner, None, 200)
        .await;
    assert_eq!(sessions["data"][0]["session_id"], visit.session_id.as_str());
    assert_eq!(sessions["data"][0]["visitor_id"], "browser-1");
    assert_eq!(sessions["data"][0]["messages"], 7);
    assert!(sessions["data"][0]["closed_at"].is_string());
    let transcript = app
        .ok(
            Method::GET,
            &format!("{orgs}/sessions/{}/messages?limit=100", visit.session_id),
            owner,
            None,
            200,
        )
        .await;
    assert_eq!(transcript["data"].as_array().unwrap().len(), 7);
    let down = app
        .ok(
            Method::GET,
            &format!("{orgs}/feedback?rating=down"),
            owner,
            None,
            200,
        )
        .await;
    let down = down["data"].as_array().unwrap();
    assert_eq!(down.len(), 2, "{down:?}");
    let rated = down.iter().find(|f| f["comment"] == "too short").unwrap();
    assert_eq!(rated["question"], QUESTION);
    assert!(rated["answer"].as_str().unwrap().contains("7:45"));
    let all = app
        .ok(Method::GET, &format!("{orgs}/feedback"), owner, None, 200)
        .await;
    let whole = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rating"] == "up")
        .unwrap();
    assert!(whole["message_id"].is_null() && whole["answer"].is_null());

    // Analytics reflect all of it.
    let stats = app.analytics(&shop.owner).await;
    assert_eq!(
        stats["sessions"],
        json!({"total": 1, "closed": 1}),
        "{stats}"
    );
    assert_eq!(
        stats["messages"],
        json!({"visitor": 3, "assistant": 3}),
        "{stats}"
    );
    assert_eq!(stats["answers"]["answered"], 2);
    assert_eq!(stats["answers"]["fallback"], 1);
    assert_eq!(stats["feedback"]["up"], 1);
    assert_eq!(stats["feedback"]["down"], 2);
    let hours = stats["busiest_hours"].as_array().unwrap();
    let counted: i64 = hours.iter().map(|h| h["messages"].as_i64().unwrap()).sum();
    assert_eq!(counted, 3);
    assert_eq!(stats["top_unanswered_questions"][0]["question"], OFF_TOPIC);
    assert_eq!(stats["top_unanswered_questions"][0]["count"], 1);
    assert_eq!(
        stats["top_unanswered_questions"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn wrong_keys_origins_tokens_and_sessions_are_refused_with_clear_problems() {
    let app = spawn_app_with(|s| s.api_key_grace = Duration::ZERO).await;
    let shop = shop(&app).await;
    let (visit, _) = app.start_chat(&shop.key).await;

    // Keys: missing, unknown, the secret key, a key of the wrong shape.
    let start = |key: Option<&str>| {
        app.widget(Method::POST, "/chat/sessions", key)
            .json(&json!({}))
            .send()
    };
    assert_problem(start(None).await.unwrap(), 401, "UNAUTHORIZED").await;
    assert_problem(
        start(Some("pk_not-a-real-key")).await.unwrap(),
        401,
        "UNAUTHORIZED",
    )
    .await;
    let secret = app.api_key(&shop.owner, "secret").await;
    assert_problem(start(Some(&secret)).await.unwrap(), 401, "UNAUTHORIZED").await;

    // Origins: another site is refused; a request with no Origin is not a browser and passes.
    let foreign = app
        .client
        .post(app.api("/chat/sessions"))
        .header("origin", "https://evil.example.net")
        .header("x-api-key", &shop.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(foreign, 403, "ORIGIN_NOT_ALLOWED").await;
    let server_side = app
        .client
        .post(app.api("/chat/sessions"))
        .header("x-api-key", &shop.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(server_side.status(), 201);

    // Tokens: missing, made up, and another session's.
    let no_token = app
        .widget(
            Method::GET,
            &format!("/chat/sessions/{}/messages", visit.session_id),
            Some(&shop.key),
        )
        .send()
        .await
        .unwrap();
    assert_problem(no_token, 401, "UNAUTHORIZED").await;
    let forged = Visit {
        session_id: visit.session_id.clone(),
        token: "st_forged0000000000000000000000000".into(),
    };
    assert_problem(
        app.ask(&forged, &shop.key, QUESTION).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let (other, _) = app.start_chat(&shop.key).await;
    let crossed = Visit {
        session_id: visit.session_id.clone(),
        token: other.token.clone(),
    };
    assert_problem(
        app.ask(&crossed, &shop.key, QUESTION).await,
        404,
        "NOT_FOUND",
    )
    .await;

    // Messages: empty, too long, a malformed idempotency key.
    for body in [
        json!({"content": "   "}),
        json!({"content": "x".repeat(2001)}),
        json!({"content": "hi", "client_message_id": "has spaces"}),
    ] {
        let response = app
            .in_chat(Method::POST, &visit, "/messages", &shop.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 422, "VALIDATION_FAILED").await;
    }

    // Another organisation: its key cannot reach this session, and its session ids are unknown here.
    let rival = app.owner().await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/config", rival.org_id),
        &rival.access,
        Some(json!({"allowed_origins": [SITE]})),
        200,
    )
    .await;
    let rival_key = app.api_key(&rival, "publishable").await;
    assert_problem(
        app.ask(&visit, &rival_key, QUESTION).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let (rival_visit, _) = app.start_chat(&rival_key).await;
    let cross_org = Visit {
        session_id: visit.session_id.clone(),
        token: rival_visit.token.clone(),
    };
    assert_problem(
        app.ask(&cross_org, &rival_key, QUESTION).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // Nothing of the rival's shows up in this organisation's numbers.
    let stats = app.analytics(&rival).await;
    assert_eq!(stats["sessions"]["total"], 1);
    assert_eq!(stats["messages"]["visitor"], 0);

    // Rotation: the old key stops at once (no grace here); the session goes on with the new key.
    let rotated = app.api_key(&shop.owner, "publishable").await;
    assert_problem(
        app.ask(&visit, &shop.key, QUESTION).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_problem(start(Some(&shop.key)).await.unwrap(), 401, "UNAUTHORIZED").await;
    let response = app.ask(&visit, &rotated, QUESTION).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_expired_session_token_is_refused() {
    let app = spawn_app_with(|s| s.hub.chat_token_ttl = Duration::from_secs(1)).await;
    let shop = shop(&app).await;
    let (visit, started) = app.start_chat(&shop.key).await;
    assert!(started["expires_at"].is_string());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let response = app.ask(&visit, &shop.key, QUESTION).await;
    assert_problem(response, 401, "SESSION_TOKEN_EXPIRED").await;
    let mut client = Client::try_connect_from(
        &app,
        &[format!("rapport.key.{}.{}", shop.key, visit.token)],
        Some(SITE),
    )
    .await
    .unwrap();
    let refused = client.recv().await;
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    assert_eq!(client.recv().await["code"], 4401);
}

#[tokio::test]
async fn a_chat_session_is_driven_over_websocket_and_resumes_exactly() {
    let app = spawn_app().await;
    let shop = shop(&app).await;
    let (visit, started) = app.start_chat(&shop.key).await;
    let credential = format!("rapport.key.{}.{}", shop.key, visit.token);

    // A page of another site cannot even open the socket with the key.
    let refused = Client::try_connect_from(
        &app,
        std::slice::from_ref(&credential),
        Some("https://evil.example.net"),
    )
    .await;
    assert!(refused.is_err(), "the upgrade is refused");

    let mut client = Client::try_connect_from(&app, std::slice::from_ref(&credential), Some(SITE))
        .await
        .unwrap();
    let ok = client.recv().await;
    assert_eq!(ok["type"], "auth.ok", "{ok}");
    assert_eq!(ok["principal"]["kind"], "visitor");
    assert_eq!(ok["principal"]["org_id"], shop.owner.org_id.as_str());
    client
        .send(json!({"type": "session.start", "content_type": "ritual"}))
        .await;
    assert_eq!(client.recv().await["code"], "forbidden");
    client
        .send(json!({"type": "session.resume", "session_id": visit.session_id, "last_seq": 0}))
        .await;
    let attached = client.recv().await;
    assert_eq!(attached["kind"], "chat", "{attached}");
    let greeting = client.recv().await;
    assert_eq!(greeting["type"], "message.done");
    assert_eq!(greeting["content"], "Welcome to the Harbour Café!");
    assert_eq!(greeting["message_id"], started["greeting"]["message_id"]);

    let frames = client.say(QUESTION, "ws-1").await;
    assert_eq!(frames[0]["type"], "ack");
    assert!(frames.iter().filter(|f| f["type"] == "token").count() >= 2);
    let answer = frames.last().unwrap();
    assert!(answer["content"].as_str().unwrap().contains("7:45"));
    assert_eq!(answer["citations"][0]["title"], "Opening hours");
    client
        .send(json!({"type": "complete", "confirm": true}))
        .await;
    assert_eq!(client.recv().await["code"], "invalid_state");

    // The visitor drops off; an answer is given meanwhile (over HTTP); resuming replays exactly it.
    let seen = client.last_seq;
    drop(client);
    let response = app.ask(&visit, &shop.key, OFF_TOPIC).await;
    assert_eq!(response.status(), 200);
    let mut client = Client::try_connect_from(&app, &[], Some(SITE))
        .await
        .unwrap();
    client
        .send(json!({"type": "auth", "api_key": shop.key, "session_token": visit.token}))
        .await;
    assert_eq!(client.recv().await["type"], "auth.ok");
    client
        .send(json!({"type": "session.resume", "session_id": visit.session_id, "last_seq": seen}))
        .await;
    assert_eq!(client.recv().await["resumed"], true);
    client.last_seq = seen;
    let replay = client.until("message.done").await;
    assert_eq!(replay.last().unwrap()["role"], "user");
    assert_eq!(replay.last().unwrap()["content"], OFF_TOPIC);
    let replay = client.until("message.done").await;
    assert_eq!(replay.last().unwrap()["content"], FALLBACK);
    assert_eq!(replay.last().unwrap()["citations"], json!([]));

    // Closed over HTTP: the live socket's next message is refused with a typed error.
    app.in_chat(Method::POST, &visit, "/close", &shop.key)
        .send()
        .await
        .unwrap();
    client
        .send(json!({"type": "message", "content": "still there?", "client_message_id": "late"}))
        .await;
    assert_eq!(client.recv().await["code"], "session_closed");

    // An auth frame from a page of another site: forbidden, closed with 4403.
    let mut intruder = Client::try_connect_from(&app, &[], Some("https://evil.example.net"))
        .await
        .unwrap();
    intruder
        .send(json!({"type": "auth", "api_key": shop.key, "session_token": visit.token}))
        .await;
    assert_eq!(intruder.recv().await["code"], "forbidden");
    assert_eq!(intruder.recv().await["code"], 4403);
}

#[tokio::test]
async fn abuse_limits_apply_per_session_per_visitor_address_and_per_key() {
    let app = spawn_app_with(|s| {
        s.rate_limits = rapport::http::rate_limit::RateLimitSettings::parse(
            "chat_session=2,visitor_ip=3,api_key=12",
        )
        .unwrap();
        // The test client plays a reverse proxy on loopback that forwards visitors' addresses.
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let shop = shop(&app).await;
    let from = |address: &str, request: reqwest::RequestBuilder| {
        request
            .header("x-forwarded-for", address.to_string())
            .send()
    };
    let start = |address: &str| {
        from(
            address,
            app.widget(Method::POST, "/chat/sessions", Some(&shop.key))
                .json(&json!({})),
        )
    };

    // Per session: two messages a minute, whatever address they come from.
    let response = start("192.0.2.1").await.unwrap();
    let body: Value = response.json().await.unwrap();
    let visit = Visit {
        session_id: body["session_id"].as_str().unwrap().to_string(),
        token: body["session_token"].as_str().unwrap().to_string(),
    };
    for (n, address) in ["192.0.2.2", "192.0.2.3", "192.0.2.4"]
        .into_iter()
        .enumerate()
    {
        let request = app
            .in_chat(Method::POST, &visit, "/messages", &shop.key)
            .json(&json!({"content": QUESTION}));
        let response = from(address, request).await.unwrap();
        if n < 2 {
            assert_eq!(response.status(), 200);
        } else {
            let problem = assert_problem(response, 429, "RATE_LIMITED").await;
            assert!(problem["detail"].is_string());
        }
    }

    // Per visitor address: three requests a minute from one address; other visitors are unaffected.
    for _ in 0..3 {
        assert_eq!(start("198.51.100.9").await.unwrap().status(), 201);
    }
    let limited = start("198.51.100.9").await.unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429, "RATE_LIMITED").await;
    assert_eq!(start("198.51.100.10").await.unwrap().status(), 201);

    // Per key: from ever new addresses the key's own budget still runs out; another key's does not.
    let mut refused = None;
    for n in 0..20 {
        let response = start(&format!("203.0.113.{n}")).await.unwrap();
        if response.status() == 429 {
            refused = Some(n);
            break;
        }
        assert_eq!(response.status(), 201);
    }
    assert!(refused.is_some(), "the key's budget ran out");
    let rival = app.owner().await;
    let rival_key = app.api_key(&rival, "publishable").await;
    let other = app
        .client
        .post(app.api("/chat/sessions"))
        .header("x-api-key", &rival_key)
        .header("x-forwarded-for", "203.0.113.200")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 201);
}

#[tokio::test]
async fn a_suspended_organisations_widget_stops_at_once() {
    let app = spawn_app().await;
    let shop = shop(&app).await;
    let (visit, _) = app.start_chat(&shop.key).await;
    let ops = app.superuser().await;
    app.ok(
        Method::PATCH,
        &format!("/orgs/{}", shop.owner.org_id),
        &ops.access,
        Some(json!({"status": "suspended"})),
        200,
    )
    .await;
    let start = app
        .widget(Method::POST, "/chat/sessions", Some(&shop.key))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(start, 403, "ORG_SUSPENDED").await;
    assert_problem(
        app.ask(&visit, &shop.key, QUESTION).await,
        403,
        "ORG_SUSPENDED",
    )
    .await;
    // Feedback may be sent with the session token alone; it is refused all the same.
    let feedback = app
        .client
        .post(app.api(&format!("/chat/sessions/{}/feedback", visit.session_id)))
        .header("x-session-token", &visit.token)
        .json(&json!({"rating": "up"}))
        .send()
        .await
        .unwrap();
    assert_problem(feedback, 403, "ORG_SUSPENDED").await;
}

#[tokio::test]
async fn with_a_model_answers_keep_the_sources_they_cite_and_a_fallback_reply_counts_as_unanswered()
{
    // The model cites its passage when asked about weekdays, and otherwise says the fallback, as
    // its instructions tell it to when the passages do not answer.
    let (base_url, requests) = crate::upstream::spawn_scripted(|body| {
        let question = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        if question.contains("weekdays") {
            "We open at 7:45 on weekdays [1].".to_string()
        } else {
            FALLBACK.to_string()
        }
    })
    .await;
    let app = spawn_app_with(move |s| {
        s.llm.base_url = Some(base_url);
        s.llm.model = "mock".into();
    })
    .await;
    let shop = shop(&app).await;
    let (visit, _) = app.start_chat(&shop.key).await;

    let cited: Value = app
        .ask(&visit, &shop.key, QUESTION)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cited["content"], "We open at 7:45 on weekdays [1].");
    assert_eq!(cited["grounded"], true);
    assert_eq!(cited["citations"].as_array().unwrap().len(), 1);
    assert_eq!(cited["citations"][0]["title"], "Opening hours");

    let kitchen = "When does the kitchen close?";
    let declined: Value = app
        .ask(&visit, &shop.key, kitchen)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(declined["content"], FALLBACK);
    assert_eq!(declined["grounded"], false, "{declined}");
    assert_eq!(declined["citations"], json!([]));

    // The model was given the organisation's instructions, the passages and the conversation so far.
    let requests = requests.lock().unwrap().clone();
    let last = requests.last().unwrap();
    let messages = last["messages"].as_array().unwrap();
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.contains("kitchen closes at 15:00"), "{system}");
    assert!(system.contains(FALLBACK));
    let transcript: Vec<&str> = messages[1..]
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        transcript,
        vec![
            "Welcome to the Harbour Café!",
            QUESTION,
            "We open at 7:45 on weekdays [1].",
            kitchen
        ]
    );
    let stats = app.analytics(&shop.owner).await;
    assert_eq!(stats["answers"]["answered"], 1);
    assert_eq!(stats["answers"]["fallback"], 1);
    assert_eq!(stats["top_unanswered_questions"][0]["question"], kitchen);
}

//! Several nodes on one PostgreSQL database: a session runs on one node, and clients reaching any
//! other node are served there (commands forwarded, frames followed), with nothing lost or doubled.
//! SQLite is a single-node store, so these tests apply to PostgreSQL only.

use reqwest::Method;
use serde_json::json;

use crate::chat::{shop, OFF_TOPIC, QUESTION, SITE};
use crate::helpers::{spawn_app, TestApp};
use crate::ws_client::Client;

#[tokio::test]
async fn a_chat_session_is_served_by_every_node_while_one_runs_it() {
    let node_a = spawn_app().await;
    if node_a.backend() != "postgres" {
        return;
    }
    let node_b = node_a.second_node(|_| {}).await;
    let shop = shop(&node_a).await;
    let (visit, _) = node_a.start_chat(&shop.key).await;
    let credential = format!("rapport.key.{}.{}", shop.key, visit.token);

    // The visitor's socket is on node A, which therefore runs the session.
    let mut on_a = Client::try_connect_from(&node_a, std::slice::from_ref(&credential), Some(SITE))
        .await
        .unwrap();
    assert_eq!(on_a.recv().await["type"], "auth.ok");
    on_a.send(json!({"type": "session.resume", "session_id": visit.session_id, "last_seq": 0}))
        .await;
    assert_eq!(on_a.recv().await["type"], "session.attached");
    assert_eq!(on_a.recv().await["role"], "assistant", "the greeting");

    // A message through node B (another worker behind the same load balancer) is answered, and the
    // socket on A sees the question and the streamed answer.
    let response = node_b.ask(&visit, &shop.key, QUESTION).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(
        answer["content"].as_str().unwrap().contains("7:45"),
        "{answer}"
    );
    let frames = on_a.until("message.done").await;
    assert_eq!(frames.last().unwrap()["role"], "user");
    let frames = on_a.until("message.done").await;
    assert!(frames.iter().any(|f| f["type"] == "token"));
    assert_eq!(frames.last().unwrap()["message_id"], answer["message_id"]);

    // A second socket, on node B, resumes from the start and then follows live frames.
    let mut on_b = Client::try_connect_from(&node_b, std::slice::from_ref(&credential), Some(SITE))
        .await
        .unwrap();
    assert_eq!(on_b.recv().await["type"], "auth.ok");
    on_b.send(json!({"type": "session.resume", "session_id": visit.session_id, "last_seq": 0}))
        .await;
    let attached = on_b.recv().await;
    assert_eq!(attached["last_seq"], on_a.last_seq, "{attached}");
    while on_b.last_seq < on_a.last_seq {
        on_b.recv().await;
    }
    let frames = on_b.say(OFF_TOPIC, "from-b").await;
    assert_eq!(frames[0]["type"], "ack", "{frames:?}");
    assert_eq!(frames.last().unwrap()["citations"], json!([]));
    // Both sockets saw the same frames, in the same order, with no gap (checked frame by frame).
    let on_a_frames = on_a.until("message.done").await;
    assert_eq!(on_a_frames.last().unwrap()["role"], "user");
    on_a.until("message.done").await;
    assert_eq!(on_a.last_seq, on_b.last_seq);

    // Closing through B is seen by A's actor at once.
    node_b
        .in_chat(Method::POST, &visit, "/close", &shop.key)
        .send()
        .await
        .unwrap();
    on_a.send(json!({"type": "message", "content": "hello?", "client_message_id": "late"}))
        .await;
    assert_eq!(on_a.recv().await["code"], "session_closed");
    let history: serde_json::Value = node_b
        .in_chat(Method::GET, &visit, "/messages", &shop.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn when_the_running_node_stops_its_followers_resume_the_session_elsewhere() {
    let mut node_a = spawn_app().await;
    if node_a.backend() != "postgres" {
        return;
    }
    let node_b = node_a.second_node(|_| {}).await;
    let shop = shop(&node_a).await;
    let (visit, _) = node_a.start_chat(&shop.key).await;
    let credential = format!("rapport.key.{}.{}", shop.key, visit.token);
    let mut on_a = visitor_socket(&node_a, &credential).await;
    on_a.send(json!({"type": "session.resume", "session_id": visit.session_id, "last_seq": 0}))
        .await;
    on_a.until("message.done").await;
    let mut on_b = visitor_socket(&node_b, &credential).await;
    on_b.send(json!({"type": "session.resume", "session_id": visit.session_id, "last_seq": 0}))
        .await;
    on_b.until("message.done").await;
    on_b.say(QUESTION, "before").await;
    let seen = on_b.last_seq;

    // Node A drains: the follower on B hears the session left A and tells its client to reconnect.
    drop(on_a);
    node_a.stop().await.unwrap();
    let told = on_b.recv().await;
    assert_eq!(told["type"], "reconnect", "{told}");

    // The client resumes on B, which now runs the session from its checkpoint, with every frame.
    let mut again = visitor_socket(&node_b, &credential).await;
    again
        .send(json!({"type": "session.resume", "session_id": visit.session_id, "last_seq": seen}))
        .await;
    let attached = again.recv().await;
    assert_eq!(attached["resumed"], true, "{attached}");
    assert_eq!(attached["last_seq"], seen);
    again.last_seq = seen;
    let frames = again.say(OFF_TOPIC, "after").await;
    assert_eq!(frames[0]["type"], "ack");
    assert_eq!(frames.last().unwrap()["citations"], json!([]));
}

async fn visitor_socket(node: &TestApp, credential: &str) -> Client {
    let credential = credential.to_string();
    let mut client = Client::try_connect_from(node, std::slice::from_ref(&credential), Some(SITE))
        .await
        .unwrap();
    assert_eq!(client.recv().await["type"], "auth.ok");
    client
}

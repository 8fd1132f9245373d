use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, PASSWORD};

/// Without SMTP, the worker writes each outbox message as an `.eml` file and marks it sent.
#[tokio::test]
async fn queued_mail_lands_in_the_mailbox_directory() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/auth/register",
            json!({"email": "postbox@example.com", "password": PASSWORD, "org_name": "Mail Co"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let dir = app.mailbox_dir();
    let mut found = None;
    for _ in 0..100 {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            found = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"));
        }
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = found.expect("an .eml file in the mailbox");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("To: postbox@example.com"), "{text}");
    assert!(
        text.contains("Subject: Verify your email address"),
        "{text}"
    );
    assert!(text.contains("Verification token: "), "{text}");
    // The file name carries no address.
    assert!(!path.to_string_lossy().contains("postbox"));

    let mut db = app.db().await;
    let mut sent = None;
    for _ in 0..50 {
        let (s,): (Option<i64>,) = sqlx::query_as(
            "SELECT sent_at FROM email_outbox WHERE to_address = 'postbox@example.com'",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        sent = s;
        if sent.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent.is_some());
}

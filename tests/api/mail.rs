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

/// A minimal SMTP server that accepts every message and hands each one's DATA to a channel.
async fn fake_smtp() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            tx.send(std::mem::take(body)).unwrap();
                            data = None;
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.to_ascii_uppercase();
                    let reply: &[u8] = if verb.starts_with("EHLO") || verb.starts_with("HELO") {
                        b"250 fake\r\n"
                    } else if verb.starts_with("DATA") {
                        data = Some(String::new());
                        b"354 go on\r\n"
                    } else if verb.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn with_an_smtp_relay_mail_is_sent_there() {
    let (port, mut received) = fake_smtp().await;
    let app = crate::helpers::spawn_app_with(|s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        s.mail_from = "Rapport Test <noreply@example.com>".into();
    })
    .await;
    let response = app
        .post_json(
            "/auth/register",
            json!({"email": "relay@example.com", "password": PASSWORD, "org_name": "Relay Co"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let message = tokio::time::timeout(Duration::from_secs(15), received.recv())
        .await
        .expect("the relay received the message")
        .unwrap();
    assert!(message.contains("To: relay@example.com"), "{message}");
    assert!(
        message.contains("From: \"Rapport Test\" <noreply@example.com>")
            || message.contains("From: Rapport Test <noreply@example.com>"),
        "{message}"
    );
    let token = app.mailed_token("relay@example.com", "verify_email").await;
    assert!(message.contains(&token), "{message}");
    // Nothing went to the mailbox directory.
    assert!(!app.mailbox_dir().exists());
}

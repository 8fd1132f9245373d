//! More ways to set up accounts and call the API, for the identity and tenancy tests.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Account, TestApp, PASSWORD};

impl TestApp {
    /// Any request, with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.api(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// A request expected to succeed with `status`; returns its JSON body (or null).
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let response = self.call(method.clone(), path, Some(token), body).await;
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .post_json("/auth/login", json!({"email": email, "password": password}))
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "login: {body}");
        body
    }

    /// Creates a platform superuser through the library (as the CLI does) and signs in.
    pub async fn superuser(&self) -> Account {
        let email = format!("ops-{}@example.com", uuid::Uuid::new_v4().simple());
        let db = rapport::storage::Db::connect(&self.database_url, 1)
            .await
            .unwrap();
        let user = rapport::admin::create_superuser(&db, &email, PASSWORD)
            .await
            .unwrap();
        db.close().await;
        let tokens = self.login(&email, PASSWORD).await;
        Account {
            id: user.id,
            email,
            org_id: String::new(),
            access: tokens["accessToken"].as_str().unwrap().to_string(),
            refresh: tokens["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    /// Invites `email` into the owner's organisation with `role` and returns the mailed token.
    pub async fn invite(&self, owner: &Account, email: &str, role: &str) -> (Value, String) {
        let invitation = self
            .ok(
                Method::POST,
                &format!("/orgs/{}/employee/invitations", owner.org_id),
                &owner.access,
                Some(json!({"email": email, "role": role})),
                201,
            )
            .await;
        let token = self.mailed_token(&email.to_lowercase(), "invitation").await;
        (invitation, token)
    }

    /// An employee of the owner's organisation, invited and signed in.
    pub async fn employee(&self, owner: &Account, role: &str) -> Account {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
        let (_, token) = self.invite(owner, &email, role).await;
        let response = self
            .post_json(
                &format!("/auth/invitations/{token}/accept"),
                json!({"password": PASSWORD, "display_name": "Sam Staff"}),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "accept: {body}");
        Account {
            id: body["user"]["id"].as_str().unwrap().to_string(),
            email,
            org_id: owner.org_id.clone(),
            access: body["accessToken"].as_str().unwrap().to_string(),
            refresh: body["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    /// Issues (rotates) an API key of `kind` for the owner's organisation; returns the raw key.
    pub async fn api_key(&self, owner: &Account, kind: &str) -> String {
        let body = self
            .ok(
                Method::POST,
                &format!("/orgs/{}/credentials", owner.org_id),
                &owner.access,
                Some(json!({"kind": kind})),
                201,
            )
            .await;
        body["key"].as_str().unwrap().to_string()
    }

    /// Signs up a member of an organisation with its publishable key.
    pub async fn member_signup(&self, publishable_key: &str) -> reqwest::Response {
        let email = format!("member-{}@example.com", uuid::Uuid::new_v4().simple());
        self.client
            .post(self.api("/auth/register"))
            .header("x-api-key", publishable_key)
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
    }

    /// A member of an organisation, signed in.
    pub async fn member(&self, publishable_key: &str) -> Account {
        let response = self.member_signup(publishable_key).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "member sign-up: {body}");
        Account {
            id: body["user"]["id"].as_str().unwrap().to_string(),
            email: body["user"]["email"].as_str().unwrap().to_string(),
            org_id: body["user"]["org"]["id"].as_str().unwrap().to_string(),
            access: body["accessToken"].as_str().unwrap().to_string(),
            refresh: body["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    /// Like `mailed_token`, for mail queued in the background after the response: waits for it.
    pub async fn mailed_token_soon(&self, to: &str, kind: &str) -> String {
        for _ in 0..100 {
            if self.outbox_count(to, kind).await > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.mailed_token(to, kind).await
    }

    /// How many messages of `kind` were queued for `to`.
    pub async fn outbox_count(&self, to: &str, kind: &str) -> i64 {
        let mut db = self.db().await;
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM email_outbox WHERE to_address = $1 AND kind = $2")
                .bind(to)
                .bind(kind)
                .fetch_one(&mut db)
                .await
                .unwrap();
        n
    }

    /// Runs a statement on the test database (to age tokens, for instance).
    pub async fn exec(&self, sql: &str, args: &[&str]) {
        let mut db = self.db().await;
        let mut query = sqlx::query(sql);
        for arg in args {
            query = query.bind(*arg);
        }
        query.execute(&mut db).await.unwrap();
    }

    /// How many audit events of `action` were recorded (optionally about `resource_id`).
    pub async fn audit_count(&self, action: &str) -> i64 {
        let mut db = self.db().await;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_logs WHERE action = $1")
            .bind(action)
            .fetch_one(&mut db)
            .await
            .unwrap();
        n
    }
}

//! Knowledge bases end to end: uploads of every document type, background ingestion to `ready`,
//! search with citations, replacement, deletion, crash recovery, a failing embedder, refusals,
//! tenant isolation and the internal endpoints' authentication.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, Account, TestApp};

pub const INTERNAL_KEY: &str = "internal-test-key-0123456789abcdef0123456789";

pub async fn spawn() -> TestApp {
    spawn_app_with(|s| s.knowledge.internal_key = Some(INTERNAL_KEY.into())).await
}

fn kbs(owner: &Account) -> String {
    format!("/orgs/{}/knowledge-bases", owner.org_id)
}

impl TestApp {
    pub async fn add_text(&self, owner: &Account, title: &str, text: &str) -> Value {
        self.ok(
            Method::POST,
            &kbs(owner),
            &owner.access,
            Some(json!({"title": title, "text": text})),
            201,
        )
        .await
    }

    pub async fn upload(
        &self,
        owner: &Account,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_string()));
        self.client
            .post(self.api(&kbs(owner)))
            .bearer_auth(&owner.access)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Polls an entry until it is `ready` or `failed` and returns it.
    pub async fn settled(&self, owner: &Account, kb_id: &str) -> Value {
        for _ in 0..400 {
            let kb = self
                .ok(
                    Method::GET,
                    &format!("{}/{kb_id}", kbs(owner)),
                    &owner.access,
                    None,
                    200,
                )
                .await;
            if kb["status"] == "ready" || kb["status"] == "failed" {
                return kb;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("entry {kb_id} did not settle");
    }

    pub async fn internal(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.api(path))
            .header("x-internal-key", INTERNAL_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn search(&self, org_id: &str, query: &str, mode: &str, top_k: u32) -> Value {
        let response = self
            .internal(
                "/internal/ai/rag/search",
                json!({"org_id": org_id, "query": query, "mode": mode, "top_k": top_k}),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn chunk_rows(&self, kb_id: &str) -> i64 {
        let mut db = self.db().await;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM knowledge_chunks WHERE kb_id = $1")
            .bind(kb_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        n
    }
}

const PDF: &[u8] = include_bytes!("../fixtures/rag-two-pages-embedded-font.pdf");
const SCANNED_PDF: &[u8] = include_bytes!("../fixtures/rag-image-only-scan.pdf");

#[tokio::test]
async fn every_document_type_is_ingested_and_found_with_its_citation() {
    let app = spawn().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;

    let text = app
        .add_text(
            &staff,
            "Parking",
            "Visitors park for free in the underground garage on Linden Street.\n\n\
             The garage closes at midnight.",
        )
        .await;
    assert_eq!(text["status"], "pending");
    assert_eq!(text["source"], "text");
    let markdown = app
        .upload(
            &owner,
            "notes.bin", // the name says nothing: the type comes from the content
            b"# Memberships\n\n## Family plan\n\nThe family plan covers two adults and up to three \
              children for forty euros a month.\n\n- Cancel any time\n- Includes sauna access\n"
                .to_vec(),
        )
        .await;
    assert_eq!(markdown.status(), 201);
    let markdown: Value = markdown.json().await.unwrap();
    let html = app
        .upload(
            &owner,
            "page.html",
            b"<!doctype html><html><head><title>Yoga classes</title></head><body>\
              <h1>Yoga classes</h1><p>Sunrise yoga starts at six thirty on the rooftop terrace.</p>\
              <script>ignored()</script></body></html>"
                .to_vec(),
        )
        .await;
    assert_eq!(html.status(), 201);
    let html: Value = html.json().await.unwrap();
    let pdf = app.upload(&owner, "cafe.pdf", PDF.to_vec()).await;
    assert_eq!(pdf.status(), 201);
    let pdf: Value = pdf.json().await.unwrap();
    assert_eq!(pdf["title"], "Café opening hours");

    let cases = [
        (&text, "plain_text", "Where can visitors park?"),
        (&markdown, "markdown", "family plan children price"),
        (&html, "html", "When does sunrise yoga start?"),
        (&pdf, "pdf", "When does the café open on weekdays?"),
    ];
    for (entry, kind, question) in cases {
        let id = entry["id"].as_str().unwrap();
        let ready = app.settled(&owner, id).await;
        assert_eq!(ready["status"], "ready", "{ready}");
        assert_eq!(ready["progress"], 100);
        assert_eq!(ready["document_kind"], kind);
        assert_eq!(ready["embedding_model"], "rapport-hash-384-v1");
        assert_eq!(ready["embedding_dimension"], 384);
        assert!(ready["chunk_count"].as_i64().unwrap() >= 1);

        for mode in ["hybrid", "vector", "text"] {
            let found = app.search(&owner.org_id, question, mode, 3).await;
            assert_eq!(
                found["results"][0]["kb_id"], id,
                "{mode} search for {question:?}: {found}"
            );
        }
        let context = app
            .internal(
                "/internal/ai/rag/context",
                json!({"org_id": owner.org_id, "query": question}),
            )
            .await;
        assert_eq!(context.status(), 200);
        let context: Value = context.json().await.unwrap();
        assert_eq!(context["found"], true);
        assert_eq!(context["citations"][0]["kb_id"], id, "{context}");
        assert_eq!(context["citations"][0]["number"], 1);
        assert_eq!(context["citations"][0]["title"], ready["title"]);
        assert!(context["text"].as_str().unwrap().starts_with("[1] "));
    }

    let markdown_hit = app
        .search(&owner.org_id, "family plan sauna", "hybrid", 1)
        .await;
    assert_eq!(
        markdown_hit["results"][0]["heading_path"],
        json!(["Memberships", "Family plan"])
    );

    let page = app
        .ok(
            Method::GET,
            &format!("{}?limit=3", kbs(&owner)),
            &staff.access,
            None,
            200,
        )
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    let rest = app
        .ok(
            Method::GET,
            &format!(
                "{}?limit=3&cursor={}",
                kbs(&owner),
                page["next_cursor"].as_str().unwrap()
            ),
            &staff.access,
            None,
            200,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let ready = app
        .ok(
            Method::GET,
            &format!("{}?status=ready", kbs(&owner)),
            &staff.access,
            None,
            200,
        )
        .await;
    assert_eq!(ready["data"].as_array().unwrap().len(), 4);

    // An answer grounded in the entries, and the fallback when nothing matches.
    let reply = app
        .internal(
            "/internal/ai/generate",
            json!({"org_id": owner.org_id, "message": "When does sunrise yoga start?"}),
        )
        .await;
    assert_eq!(reply.status(), 200);
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(reply["grounded"], true, "{reply}");
    assert!(
        reply["reply"].as_str().unwrap().contains("six thirty"),
        "{reply}"
    );
    let unknown = app
        .internal(
            "/internal/ai/generate",
            json!({"org_id": owner.org_id, "message": "quantum chromodynamics lattice"}),
        )
        .await;
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["grounded"], false, "{unknown}");
    assert_eq!(unknown["provider"], "fallback");
}

#[tokio::test]
async fn replacing_an_entry_reingests_it_and_deleting_removes_its_vectors() {
    let app = spawn().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let entry = app
        .add_text(
            &owner,
            "Pets",
            "Dogs are welcome on the terrace but not indoors.",
        )
        .await;
    let id = entry["id"].as_str().unwrap().to_string();
    app.settled(&owner, &id).await;

    let replaced = app
        .ok(
            Method::PUT,
            &format!("{}/{id}", kbs(&owner)),
            &staff.access,
            Some(json!({"title": "Bicycles", "text": "Bicycles can be rented at the front desk for ten euros a day."})),
            200,
        )
        .await;
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["status"], "pending");
    assert_eq!(replaced["chunk_count"], 0);
    let ready = app.settled(&owner, &id).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["title"], "Bicycles");
    let old = app
        .search(&owner.org_id, "dogs terrace indoors", "text", 5)
        .await;
    assert_eq!(old["results"], json!([]), "old content still found: {old}");
    let new = app
        .search(&owner.org_id, "rent a bicycle", "hybrid", 5)
        .await;
    assert_eq!(new["results"][0]["kb_id"], id.as_str());

    // Staff may not delete; the owner may, and the chunks and vectors go with the entry.
    let refused = app
        .call(
            Method::DELETE,
            &format!("{}/{id}", kbs(&owner)),
            Some(&staff.access),
            None,
        )
        .await;
    assert_problem(refused, 403, "FORBIDDEN").await;
    assert!(app.chunk_rows(&id).await > 0);
    app.ok(
        Method::DELETE,
        &format!("{}/{id}", kbs(&owner)),
        &owner.access,
        None,
        204,
    )
    .await;
    assert_eq!(app.chunk_rows(&id).await, 0);
    for mode in ["hybrid", "vector", "text"] {
        let gone = app.search(&owner.org_id, "rent a bicycle", mode, 5).await;
        assert_eq!(gone["results"], json!([]), "{mode}: {gone}");
    }
    let missing = app
        .call(
            Method::GET,
            &format!("{}/{id}", kbs(&owner)),
            Some(&owner.access),
            None,
        )
        .await;
    assert_problem(missing, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn an_ingestion_interrupted_by_a_crash_resumes_after_restart() {
    let app = spawn().await;
    let owner = app.owner().await;
    let body: String = (0..40)
        .map(|i| {
            format!("## Topic {i}\n\nParagraph {i} talks about lanterns number {i} in detail.\n\n")
        })
        .collect();
    let entry = app.add_text(&owner, "Lanterns", &body).await;
    let id = entry["id"].as_str().unwrap().to_string();
    let ready = app.settled(&owner, &id).await;
    let chunks = ready["chunk_count"].as_i64().unwrap();
    assert!(chunks > 1);

    // As a process killed halfway through embedding leaves it: job running, half the vectors.
    app.exec(
        "UPDATE knowledge_jobs SET status = 'running' WHERE kb_id = $1",
        &[&id],
    )
    .await;
    app.exec(
        "UPDATE knowledge_bases SET status = 'processing', progress = 40 WHERE id = $1",
        &[&id],
    )
    .await;
    app.exec(
        "UPDATE knowledge_chunks SET embedding = NULL, embedding_model = NULL \
         WHERE kb_id = $1 AND chunk_index % 2 = 0",
        &[&id],
    )
    .await;
    let app = app
        .restart_with(|s| s.knowledge.internal_key = Some(INTERNAL_KEY.into()))
        .await;
    let resumed = app.settled(&owner, &id).await;
    assert_eq!(resumed["status"], "ready", "{resumed}");
    assert_eq!(resumed["chunk_count"], chunks);
    let mut db = app.db().await;
    let (unembedded,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM knowledge_chunks WHERE kb_id = $1 AND embedding_model IS NULL",
    )
    .bind(&id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(unembedded, 0);
    let found = app
        .search(&owner.org_id, "lanterns number 12", "vector", 1)
        .await;
    assert_eq!(found["results"][0]["kb_id"], id.as_str());
}

#[tokio::test]
async fn a_model_change_re_embeds_existing_entries() {
    let app = spawn().await;
    let owner = app.owner().await;
    let entry = app
        .add_text(
            &owner,
            "Sauna",
            "The sauna is heated to ninety degrees every evening.",
        )
        .await;
    let id = entry["id"].as_str().unwrap().to_string();
    app.settled(&owner, &id).await;
    let app = app
        .restart_with(|s| {
            s.knowledge.internal_key = Some(INTERNAL_KEY.into());
            s.knowledge.embed_dimension = Some(256);
        })
        .await;
    let mut rebuilt = Value::Null;
    for _ in 0..200 {
        rebuilt = app.settled(&owner, &id).await;
        if rebuilt["embedding_model"] == "rapport-hash-256-v1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        rebuilt["embedding_model"], "rapport-hash-256-v1",
        "{rebuilt}"
    );
    assert_eq!(rebuilt["embedding_dimension"], 256);
    let found = app
        .search(&owner.org_id, "how hot is the sauna", "vector", 1)
        .await;
    assert_eq!(found["embedding_model"], "rapport-hash-256-v1");
    assert_eq!(found["results"][0]["kb_id"], id.as_str());

    // Operators can force a full rebuild.
    let queued = app
        .internal("/internal/kb/rebuild", json!({"org_id": owner.org_id}))
        .await;
    assert_eq!(queued.status(), 202);
    let queued: Value = queued.json().await.unwrap();
    assert_eq!(queued["queued"], 1);
    assert_eq!(app.settled(&owner, &id).await["status"], "ready");
}

/// An OpenAI-compatible embeddings endpoint that fails with 500 until told to work.
async fn flaky_embedder(healthy: Arc<AtomicBool>) -> String {
    use axum::http::StatusCode;
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move |axum::Json(body): axum::Json<Value>| {
            let healthy = healthy.clone();
            async move {
                if !healthy.load(Ordering::SeqCst) {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({"error": {"message": "model overloaded"}})),
                    );
                }
                let inputs = body["input"].as_array().cloned().unwrap_or_default();
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, _)| json!({"index": i, "embedding": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}))
                    .collect();
                (StatusCode::OK, axum::Json(json!({"data": data})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn a_failing_embedder_marks_the_entry_failed_and_it_can_be_retried() {
    let healthy = Arc::new(AtomicBool::new(false));
    let base_url = flaky_embedder(healthy.clone()).await;
    let app = spawn_app_with(move |s| {
        s.knowledge.embed_base_url = Some(base_url);
        s.knowledge.embed_model = "mock-embed".into();
        s.knowledge.embed_dimension = Some(8);
        s.knowledge.embed_retries = 0;
        s.knowledge.job_attempts = 2;
        s.knowledge.job_backoff = Duration::from_millis(20);
    })
    .await;
    let owner = app.owner().await;
    let entry = app
        .add_text(
            &owner,
            "Towels",
            "Fresh towels are handed out at the pool entrance.",
        )
        .await;
    let id = entry["id"].as_str().unwrap().to_string();
    let failed = app.settled(&owner, &id).await;
    assert_eq!(failed["status"], "failed");
    let reason = failed["error"].as_str().unwrap();
    assert!(reason.contains("500"), "{reason}");
    assert!(reason.contains("model overloaded"), "{reason}");

    healthy.store(true, Ordering::SeqCst);
    let retried = app
        .ok(
            Method::POST,
            &format!("{}/{id}/retry", kbs(&owner)),
            &owner.access,
            None,
            202,
        )
        .await;
    assert_eq!(retried["status"], "pending");
    let ready = app.settled(&owner, &id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["embedding_model"], "mock-embed");
    assert!(ready["error"].is_null());
    let again = app
        .call(
            Method::POST,
            &format!("{}/{id}/retry", kbs(&owner)),
            Some(&owner.access),
            None,
        )
        .await;
    assert_problem(again, 409, "NOT_FAILED").await;
}

#[tokio::test]
async fn malformed_oversized_and_unauthorised_uploads_get_clear_problems() {
    let app = spawn_app_with(|s| s.knowledge.max_upload_bytes = 4096).await;
    let owner = app.owner().await;

    let big = app.upload(&owner, "big.txt", vec![b'a'; 5000]).await;
    let problem = assert_problem(big, 413, "PAYLOAD_TOO_LARGE").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("4096"),
        "{problem}"
    );
    let big_text = app
        .call(
            Method::POST,
            &kbs(&owner),
            Some(&owner.access),
            Some(json!({"title": "Big", "text": "word ".repeat(1000)})),
        )
        .await;
    assert_problem(big_text, 413, "PAYLOAD_TOO_LARGE").await;

    let scanned = app.upload(&owner, "scan.pdf", SCANNED_PDF.to_vec()).await;
    let problem = assert_problem(scanned, 422, "NO_TEXT").await;
    assert!(problem["detail"].as_str().unwrap().contains("OCR"));
    let binary = app
        .upload(
            &owner,
            "notes.txt",
            vec![0x00, 0xFF, 0x10, 0x80, 0x00, 0x01, 0x02],
        )
        .await;
    assert_problem(binary, 422, "UNSUPPORTED_DOCUMENT").await;
    let broken = app
        .upload(
            &owner,
            "broken.pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog".to_vec(),
        )
        .await;
    assert_problem(broken, 422, "MALFORMED_DOCUMENT").await;

    let no_file = app
        .client
        .post(app.api(&kbs(&owner)))
        .bearer_auth(&owner.access)
        .multipart(Form::new().text("title", "Nothing"))
        .send()
        .await
        .unwrap();
    assert_problem(no_file, 422, "VALIDATION_FAILED").await;
    let no_title = app
        .call(
            Method::POST,
            &kbs(&owner),
            Some(&owner.access),
            Some(json!({"text": "hello"})),
        )
        .await;
    assert_problem(no_title, 422, "VALIDATION_FAILED").await;
    let empty = app
        .call(
            Method::POST,
            &kbs(&owner),
            Some(&owner.access),
            Some(json!({"title": "Empty", "text": "  \n "})),
        )
        .await;
    assert_problem(empty, 422, "VALIDATION_FAILED").await;

    // Members of the organisation are not employees.
    let key = app.api_key(&owner, "publishable").await;
    let member = app.member(&key).await;
    let refused = app
        .call(Method::GET, &kbs(&owner), Some(&member.access), None)
        .await;
    assert_problem(refused, 403, "FORBIDDEN").await;
    let anonymous = app.call(Method::GET, &kbs(&owner), None, None).await;
    assert_problem(anonymous, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn search_never_returns_another_organisations_chunks() {
    let app = spawn().await;
    let a = app.owner().await;
    let b = app.owner().await;
    let shared = "The wellness centre offers massages every Tuesday afternoon.";
    let ours = app.add_text(&a, "Massages", shared).await;
    let theirs = app.add_text(&b, "Massages", shared).await;
    let secret = app
        .add_text(&b, "Vault", "The vault combination is seven nine three.")
        .await;
    for (owner, entry) in [(&a, &ours), (&b, &theirs), (&b, &secret)] {
        app.settled(owner, entry["id"].as_str().unwrap()).await;
    }
    for mode in ["hybrid", "vector", "text"] {
        let found = app
            .search(&a.org_id, "massages Tuesday vault combination", mode, 50)
            .await;
        let results = found["results"].as_array().unwrap();
        assert!(!results.is_empty(), "{mode}");
        for result in results {
            assert_eq!(result["kb_id"], ours["id"], "{mode}: {result}");
        }
    }
    let context = app
        .internal(
            "/internal/ai/rag/context",
            json!({"org_id": a.org_id, "query": "vault combination", "min_score": 0.0}),
        )
        .await;
    let context: Value = context.json().await.unwrap();
    assert!(!context["text"]
        .as_str()
        .unwrap()
        .contains("seven nine three"));
}

#[tokio::test]
async fn internal_endpoints_need_the_service_key_or_a_superuser() {
    let app = spawn().await;
    let owner = app.owner().await;
    let admin = app.superuser().await;
    let body = json!({"org_id": owner.org_id, "query": "anything"});
    let path = "/internal/ai/rag/search";

    let anonymous = app.call(Method::POST, path, None, Some(body.clone())).await;
    assert_problem(anonymous, 401, "UNAUTHORIZED").await;
    let wrong = app
        .client
        .post(app.api(path))
        .header("x-internal-key", "not-the-key-not-the-key-not-the-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(wrong, 401, "UNAUTHORIZED").await;
    let tenant = app
        .call(Method::POST, path, Some(&owner.access), Some(body.clone()))
        .await;
    assert_problem(tenant, 403, "FORBIDDEN").await;
    app.ok(Method::POST, path, &admin.access, Some(body.clone()), 200)
        .await;
    assert_eq!(app.internal(path, body).await.status(), 200);

    // Without a configured key, a presented key never matches.
    let keyless = spawn_app().await;
    let refused = keyless
        .client
        .post(keyless.api(path))
        .header("x-internal-key", "")
        .json(&json!({"org_id": "x", "query": "y"}))
        .send()
        .await
        .unwrap();
    assert_problem(refused, 401, "UNAUTHORIZED").await;

    let unknown = app
        .internal(
            "/internal/ai/rag/search",
            json!({"org_id": "00000000-0000-0000-0000-000000000000", "query": "x"}),
        )
        .await;
    assert_problem(unknown, 404, "NOT_FOUND").await;
    let unknown_kb = app
        .internal("/internal/kb/embed", json!({"kb_id": "nope"}))
        .await;
    assert_problem(unknown_kb, 404, "NOT_FOUND").await;
}

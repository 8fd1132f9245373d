//! Retrieval benchmarks: chunking throughput, built-in embedding throughput, ingestion time of a
//! 1 MB document through the real job pipeline, and search latency (vector and hybrid) at 10k and
//! 100k chunks on SQLite and, given a server, PostgreSQL.
//!
//!   cargo run --release --example rag_bench                      # SQLite only
//!   cargo run --release --example rag_bench -- postgres://rapport@127.0.0.1:55432/rapport
//!
//! The PostgreSQL URL is an admin connection: a scratch database is created and dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport::knowledge::{Knowledge, KnowledgeSettings, SearchMode};
use rapport::rag::chunk::{chunk, ChunkConfig};
use rapport::rag::embed::HashEmbedder;
use rapport::rag::extract::{detect_and_extract, ExtractLimits};
use rapport::storage::knowledge::{NewChunk, NewKb};
use rapport::storage::orgs::NewOrg;
use rapport::storage::Db;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn vocabulary(rng: &mut StdRng, size: usize) -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ren", "sa", "to", "vel", "dor", "an", "is", "ur", "pen", "qua", "zi",
        "bel", "mor", "tha", "lin", "gro", "ve",
    ];
    (0..size)
        .map(|_| {
            (0..rng.gen_range(2..4))
                .map(|_| SYLLABLES[rng.gen_range(0..SYLLABLES.len())])
                .collect()
        })
        .collect()
}

fn sentence(rng: &mut StdRng, words: &[String], len: usize) -> String {
    let mut s: Vec<&str> = (0..len)
        .map(|_| words[rng.gen_range(0..words.len())].as_str())
        .collect();
    s.push("end.");
    s.join(" ")
}

/// A Markdown document of about `bytes` bytes: sections of paragraphs and lists.
fn document(rng: &mut StdRng, words: &[String], bytes: usize) -> String {
    let mut out = String::new();
    let mut section = 0;
    while out.len() < bytes {
        section += 1;
        out.push_str(&format!("## Section {section}\n\n"));
        for _ in 0..4 {
            let paragraph: Vec<String> = (0..5).map(|_| sentence(rng, words, 12)).collect();
            out.push_str(&paragraph.join(" "));
            out.push_str("\n\n");
        }
        for _ in 0..3 {
            out.push_str(&format!("- {}\n", sentence(rng, words, 8)));
        }
        out.push('\n');
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn fresh_database(
    admin: Option<&str>,
    dir: &std::path::Path,
    tag: &str,
) -> (String, Option<String>) {
    match admin {
        Some(admin) => {
            let name = format!("rag_bench_{tag}_{}", std::process::id());
            let mut conn = sqlx::AnyConnection::connect(admin).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            (format!("{base}/{name}"), Some(name))
        }
        None => (
            format!("sqlite://{}", dir.join(format!("{tag}.db")).display()),
            None,
        ),
    }
}

async fn drop_database(admin: Option<&str>, name: Option<String>) {
    if let (Some(admin), Some(name)) = (admin, name) {
        let mut conn = sqlx::AnyConnection::connect(admin).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

async fn org(db: &Db) -> String {
    db.insert_org(
        &db.pool,
        NewOrg {
            name: "Bench",
            industry: None,
            website: None,
            status: "active",
        },
    )
    .await
    .unwrap()
    .id
}

fn engine(db: &Db) -> Knowledge {
    Knowledge::new(
        db.clone(),
        KnowledgeSettings::default(),
        TaskTracker::new(),
        CancellationToken::new(),
    )
    .unwrap()
}

/// Ingests a 1 MB document through the job pipeline (queue, claim, extract, chunk, embed, store).
async fn ingestion(db: &Db, doc: &str) -> (Duration, i64) {
    let org_id = org(db).await;
    let knowledge = engine(db);
    knowledge.spawn_worker();
    let started = Instant::now();
    let kb = db
        .create_kb(NewKb {
            org_id: &org_id,
            title: "Bench",
            source: "text",
            filename: None,
            document_kind: "markdown",
            content: doc.as_bytes(),
            created_by: None,
        })
        .await
        .unwrap();
    knowledge.wake();
    loop {
        let row = db.kb(&org_id, &kb.id).await.unwrap().unwrap();
        if row.status == "ready" {
            return (started.elapsed(), row.chunk_count);
        }
        assert_ne!(row.status, "failed", "{:?}", row.error);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Loads `n` synthetic chunks with vectors into one organisation (plus a second organisation's
/// tenth as noise), then times searches.
async fn search_latency(db: &Db, n: usize, queries: usize, rng: &mut StdRng, words: &[String]) {
    let knowledge = engine(db);
    let embedder = HashEmbedder::default();
    let org_id = org(db).await;
    let other = org(db).await;
    let load = Instant::now();
    for (owner, count) in [(&org_id, n), (&other, n / 10)] {
        let per_kb = 5000;
        let mut made = 0;
        while made < count {
            let size = per_kb.min(count - made);
            let kb = db
                .create_kb(NewKb {
                    org_id: owner,
                    title: "Synthetic",
                    source: "text",
                    filename: None,
                    document_kind: "plain_text",
                    content: b"synthetic",
                    created_by: None,
                })
                .await
                .unwrap();
            let chunks: Vec<NewChunk> = (0..size)
                .map(|i| NewChunk {
                    index: i as i64,
                    text: (0..4)
                        .map(|_| sentence(rng, words, 12))
                        .collect::<Vec<_>>()
                        .join(" "),
                    token_count: 60,
                    heading_path: "[]".into(),
                    position: "{}".into(),
                })
                .collect();
            db.replace_chunks(&kb.id, owner, kb.version, &chunks)
                .await
                .unwrap();
            let pending = db
                .chunks_to_embed(&kb.id, "none", size as i64)
                .await
                .unwrap();
            let vectors: Vec<(String, Vec<f32>)> = pending
                .into_iter()
                .map(|c| {
                    let v = embedder.embed_text(&c.text);
                    (c.id, v)
                })
                .collect();
            db.store_embeddings(&knowledge.model(), &vectors)
                .await
                .unwrap();
            made += size;
        }
    }
    let loaded = load.elapsed();
    let index = Instant::now();
    db.prepare_vector_index(&knowledge.model()).await.unwrap();
    let indexed = index.elapsed();
    if db.backend == rapport::storage::Backend::Postgres {
        sqlx::query("ANALYZE knowledge_chunks")
            .execute(&db.pool)
            .await
            .unwrap();
    }
    for mode in [SearchMode::Vector, SearchMode::Hybrid] {
        let mut times = Vec::with_capacity(queries);
        for i in 0..queries + 5 {
            let query = (0..rng.gen_range(3..7))
                .map(|_| words[rng.gen_range(0..words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let started = Instant::now();
            let hits = knowledge.search(&org_id, &query, mode, 5).await.unwrap();
            let took = started.elapsed();
            assert!(!hits.is_empty());
            if i >= 5 {
                times.push(took); // the first few warm caches up
            }
        }
        times.sort();
        println!(
            "  {:>6} chunks  {:<6} search  p50 {:>8.2?}  p99 {:>8.2?}   (load {:.1?}, index {:.1?})",
            n,
            format!("{mode:?}").to_lowercase(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            loaded,
            indexed
        );
    }
}

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let admin = std::env::args().nth(1);
    let mut rng = StdRng::seed_from_u64(7);
    let words = vocabulary(&mut rng, 5000);
    let dir = tempfile::tempdir().unwrap();

    // Pure pipeline stages.
    let doc = document(&mut rng, &words, 2 * 1024 * 1024);
    let limits = ExtractLimits::default();
    let started = Instant::now();
    let extracted = detect_and_extract(doc.as_bytes(), &limits).unwrap();
    let chunks = chunk(&extracted, &ChunkConfig::default());
    let took = started.elapsed();
    let mb = doc.len() as f64 / (1024.0 * 1024.0);
    println!(
        "extract + chunk: {:.2} MB in {:.2?} = {:.2} MB/s ({} chunks of up to 300 tokens)",
        mb,
        took,
        mb / took.as_secs_f64(),
        chunks.len()
    );
    let embedder = HashEmbedder::default();
    let started = Instant::now();
    let mut sink = 0f32;
    for c in &chunks {
        sink += embedder.embed_text(&c.text)[0];
    }
    let took = started.elapsed();
    println!(
        "built-in embedding: {} chunks in {:.2?} = {:.0} chunks/s, {:.2} MB/s (checksum {sink:.3})",
        chunks.len(),
        took,
        chunks.len() as f64 / took.as_secs_f64(),
        mb / took.as_secs_f64()
    );

    let one_mb = document(&mut rng, &words, 1024 * 1024);
    let backends: Vec<(&str, Option<&str>)> = match admin.as_deref() {
        Some(url) => vec![("sqlite", None), ("postgres", Some(url))],
        None => vec![("sqlite", None)],
    };
    for (name, admin) in backends {
        println!("{name}:");
        let (url, scratch) = fresh_database(admin, dir.path(), "ingest").await;
        let db = Db::connect(&url, 8).await.unwrap();
        db.migrate().await.unwrap();
        let (took, n) = ingestion(&db, &one_mb).await;
        println!("  ingestion of a 1 MB Markdown document: {took:.2?} ({n} chunks)");
        db.close().await;
        drop_database(admin, scratch).await;
        for (n, queries) in [(10_000, 200), (100_000, 100)] {
            let (url, scratch) = fresh_database(admin, dir.path(), &format!("search{n}")).await;
            let db = Db::connect(&url, 8).await.unwrap();
            db.migrate().await.unwrap();
            search_latency(&db, n, queries, &mut rng, &words).await;
            db.close().await;
            drop_database(admin, scratch).await;
        }
    }
}

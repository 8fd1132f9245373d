//! Retrieval quality on a small corpus written for this repository (tests/fixtures/rag-eval):
//! recall@5 and MRR (over the top 10) for the built-in embedder alone, full text alone and hybrid
//! search, with floors so a regression fails the build. Figures are printed for the README.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::helpers::spawn_app_with;
use crate::knowledge::INTERNAL_KEY;

#[derive(Deserialize)]
struct Question {
    question: String,
    document: String,
    answer: String,
}

#[derive(Debug, Clone, Copy)]
struct Scores {
    recall_at_5: f64,
    mrr: f64,
}

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rag-eval");

#[tokio::test]
async fn retrieval_meets_its_quality_floors() {
    let app = spawn_app_with(|s| {
        s.knowledge.internal_key = Some(INTERNAL_KEY.into());
        // Small chunks, so relevance is judged per passage, not per document.
        s.knowledge.chunk.max_tokens = 48;
        s.knowledge.chunk.overlap_tokens = 8;
    })
    .await;
    let owner = app.owner().await;
    let mut documents: HashMap<String, String> = HashMap::new();
    let mut names: Vec<_> = std::fs::read_dir(format!("{CORPUS}/docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let response = app
            .upload(&owner, &name, std::fs::read(&path).unwrap())
            .await;
        assert_eq!(response.status(), 201);
        let entry: Value = response.json().await.unwrap();
        documents.insert(entry["id"].as_str().unwrap().to_string(), name);
    }
    let mut chunks = 0;
    for id in documents.keys() {
        let ready = app.settled(&owner, id).await;
        assert_eq!(ready["status"], "ready");
        chunks += ready["chunk_count"].as_i64().unwrap();
    }
    let questions: Vec<Question> =
        serde_json::from_str(&std::fs::read_to_string(format!("{CORPUS}/questions.json")).unwrap())
            .unwrap();
    assert!(questions.len() >= 30);

    let mut scores = HashMap::new();
    for mode in ["vector", "text", "hybrid"] {
        let (mut hits_at_5, mut reciprocal) = (0usize, 0f64);
        for q in &questions {
            let found = app.search(&owner.org_id, &q.question, mode, 10).await;
            let rank = found["results"]
                .as_array()
                .unwrap()
                .iter()
                .position(|r| {
                    documents.get(r["kb_id"].as_str().unwrap()) == Some(&q.document)
                        && r["text"].as_str().unwrap().contains(&q.answer)
                })
                .map(|i| i + 1);
            if rank.is_some_and(|r| r <= 5) {
                hits_at_5 += 1;
            }
            reciprocal += rank.map_or(0.0, |r| 1.0 / r as f64);
            if rank != Some(1) {
                eprintln!("{mode}: {:?} -> rank {rank:?}", q.question);
            }
        }
        let n = questions.len() as f64;
        scores.insert(
            mode,
            Scores {
                recall_at_5: hits_at_5 as f64 / n,
                mrr: reciprocal / n,
            },
        );
    }
    println!(
        "retrieval eval on {} ({} documents, {chunks} chunks, {} questions):",
        app.backend(),
        documents.len(),
        questions.len()
    );
    for mode in ["vector", "text", "hybrid"] {
        let s = scores[mode];
        println!(
            "  {mode:<7} recall@5 {:.3}  MRR {:.3}",
            s.recall_at_5, s.mrr
        );
    }
    let (vector, hybrid) = (scores["vector"], scores["hybrid"]);
    // Measured: vector 0.927 / 0.840 on both backends; hybrid 1.000 / 0.904 (SQLite FTS5) and
    // 0.976 / 0.888 (PostgreSQL tsvector). Floors leave room for one or two questions to move.
    assert!(
        vector.recall_at_5 >= 0.85,
        "built-in embedder recall@5 {vector:?}"
    );
    assert!(vector.mrr >= 0.75, "built-in embedder MRR {vector:?}");
    assert!(hybrid.recall_at_5 >= 0.95, "hybrid recall@5 {hybrid:?}");
    assert!(hybrid.mrr >= 0.85, "hybrid MRR {hybrid:?}");
}

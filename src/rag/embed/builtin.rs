//! The built-in embedder: deterministic feature hashing, no model, no network.
//!
//! Good at lexical similarity (shared words, phrases and word pieces), not at
//! paraphrase. It keeps retrieval working offline and in tests; deployments
//! that need semantic recall configure an embedding service instead.

use async_trait::async_trait;

use super::features::{family_weight, features, normalised_words};
use super::{EmbedError, Embedder};
use crate::rag::cosine::l2_normalize;

pub const DEFAULT_DIMENSION: usize = 384;

#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dimension: usize,
    model_id: String,
}

impl HashEmbedder {
    pub fn new(dimension: usize) -> Result<Self, EmbedError> {
        if dimension == 0 {
            return Err(EmbedError::Config("dimension must be positive".to_owned()));
        }
        Ok(Self {
            dimension,
            model_id: format!("rapport-hash-{dimension}-v1"),
        })
    }

    /// Embeds one text synchronously (CPU only, microseconds per chunk).
    pub fn embed_text(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0.0f32; self.dimension];
        let mut occurrences = features(&normalised_words(text));
        // Sorting groups equal features for term counting and fixes the order
        // of floating-point additions, so results are bit-for-bit repeatable.
        occurrences.sort_unstable();
        let mut start = 0;
        while start < occurrences.len() {
            let feature = occurrences[start];
            let mut end = start + 1;
            while end < occurrences.len() && occurrences[end] == feature {
                end += 1;
            }
            let term_frequency = (end - start) as f32;
            let weight = family_weight(feature.family) * (1.0 + term_frequency.ln());
            let bucket = ((u128::from(feature.hash) * self.dimension as u128) >> 64) as usize;
            let sign = if feature.hash & 1 == 0 { 1.0 } else { -1.0 };
            vector[bucket] += sign * weight;
            start = end;
        }
        l2_normalize(&mut vector);
        vector
    }
}

impl Default for HashEmbedder {
    fn default() -> Self {
        Self {
            dimension: DEFAULT_DIMENSION,
            model_id: format!("rapport-hash-{DEFAULT_DIMENSION}-v1"),
        }
    }
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|text| self.embed_text(text)).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::rag::cosine::dot;

    fn similarity(embedder: &HashEmbedder, a: &str, b: &str) -> f32 {
        dot(&embedder.embed_text(a), &embedder.embed_text(b))
    }

    #[test]
    fn is_deterministic_and_normalised() {
        let embedder = HashEmbedder::default();
        assert_eq!(embedder.model_id(), "rapport-hash-384-v1");
        let a = embedder.embed_text("How do I reset my password?");
        let b = HashEmbedder::new(384)
            .unwrap()
            .embed_text("How do I reset my password?");
        assert_eq!(a, b);
        assert_eq!(a.len(), 384);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn pinned_vector() {
        // Guards the frozen feature function behind the model id.
        let vector = HashEmbedder::new(16)
            .unwrap()
            .embed_text("Refunds within 30 days");
        let rounded: Vec<i32> = vector.iter().map(|v| (v * 1000.0).round() as i32).collect();
        assert_eq!(rounded, PINNED_16);
    }

    const PINNED_16: [i32; 16] = [
        -122, 471, -122, 349, -122, 471, 0, 0, 244, -349, -244, 122, -244, 122, -244, 0,
    ];

    #[test]
    fn empty_text_is_the_zero_vector() {
        let vector = HashEmbedder::default().embed_text("  ... ");
        assert!(vector.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn similar_texts_score_higher_than_unrelated_ones() {
        let embedder = HashEmbedder::default();
        let query = "How can I get a refund for my order?";
        let related = "Refunds: orders can be refunded within 30 days of purchase.";
        let unrelated = "The office is closed on public holidays and weekends.";
        assert!(
            similarity(&embedder, query, related) > similarity(&embedder, query, unrelated) + 0.05
        );

        let typo = similarity(
            &embedder,
            "password reset instructions",
            "pasword reseting instruction",
        );
        let other = similarity(
            &embedder,
            "password reset instructions",
            "billing address update",
        );
        assert!(
            typo > other + 0.1,
            "trigrams tolerate typos: {typo} vs {other}"
        );
    }

    #[test]
    fn word_order_matters_a_little() {
        let embedder = HashEmbedder::default();
        let same = similarity(&embedder, "dog bites man", "dog bites man");
        let swapped = similarity(&embedder, "dog bites man", "man bites dog");
        assert!(swapped < same && swapped > 0.5);
    }

    #[tokio::test]
    async fn trait_embeds_in_order() {
        let embedder = HashEmbedder::default();
        let texts = vec!["alpha".to_owned(), String::new(), "beta".to_owned()];
        let vectors = embedder.embed(&texts).await.unwrap();
        assert_eq!(vectors.len(), 3);
        assert_eq!(vectors[0], embedder.embed_text("alpha"));
        assert_eq!(vectors[2], embedder.embed_text("beta"));
        assert!(HashEmbedder::new(0).is_err());
    }
}

//! Exact cosine top-k over L2-normalised vectors, and vector encodings for
//! storage: little-endian `f32` BLOBs (SQLite) and pgvector text literals.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Dot product; for unit vectors this is the cosine similarity. Lengths must
/// match (extra elements of the longer slice are ignored).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise the loop.
    let mut sums = [0.0f32; 8];
    let a_chunks = a.chunks_exact(8);
    let b_chunks = b.chunks_exact(8);
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Cosine similarity of vectors of any length; 0 when either is zero.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let norms = dot(a, a).sqrt() * dot(b, b).sqrt();
    if norms == 0.0 {
        0.0
    } else {
        dot(a, b) / norms
    }
}

/// Scales `vector` to unit length; the zero vector stays zero.
pub fn l2_normalize(vector: &mut [f32]) {
    let norm = dot(vector, vector).sqrt();
    if norm > 0.0 && norm.is_finite() {
        for value in vector.iter_mut() {
            *value /= norm;
        }
    }
}

/// Keeps the `k` best-scoring items seen so far, in O(log k) per item.
pub struct TopK<Id> {
    k: usize,
    seen: u64,
    heap: BinaryHeap<Reverse<Scored<Id>>>,
}

struct Scored<Id> {
    score: f32,
    /// Arrival order: on equal scores the earlier item ranks higher.
    seq: u64,
    id: Id,
}

impl<Id> Ord for Scored<Id> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl<Id> PartialOrd for Scored<Id> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<Id> PartialEq for Scored<Id> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<Id> Eq for Scored<Id> {}

impl<Id> TopK<Id> {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            seen: 0,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// Offers an item; NaN scores are ignored.
    pub fn push(&mut self, id: Id, score: f32) {
        if self.k == 0 || score.is_nan() {
            return;
        }
        let item = Scored {
            score,
            seq: self.seen,
            id,
        };
        self.seen += 1;
        if self.heap.len() < self.k {
            self.heap.push(Reverse(item));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if item > worst.0 {
                *worst = Reverse(item);
            }
        }
    }

    /// The kept items, best first.
    pub fn into_sorted_vec(self) -> Vec<(Id, f32)> {
        // Ascending order of Reverse(...) is descending order of score.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(item)| (item.id, item.score))
            .collect()
    }
}

/// Exact top-`k` by cosine for a normalised `query` against normalised
/// candidates. Candidates of the wrong dimension are skipped.
pub fn top_k_cosine<Id, V, I>(query: &[f32], candidates: I, k: usize) -> Vec<(Id, f32)>
where
    I: IntoIterator<Item = (Id, V)>,
    V: AsRef<[f32]>,
{
    let mut top = TopK::new(k);
    for (id, vector) in candidates {
        let vector = vector.as_ref();
        if vector.len() == query.len() {
            top.push(id, dot(query, vector));
        }
    }
    top.into_sorted_vec()
}

/// Like [`top_k_cosine`], scoring stored BLOBs directly without decoding
/// them into vectors first. Malformed BLOBs are skipped.
pub fn top_k_cosine_blobs<Id, B, I>(query: &[f32], candidates: I, k: usize) -> Vec<(Id, f32)>
where
    I: IntoIterator<Item = (Id, B)>,
    B: AsRef<[u8]>,
{
    let mut top = TopK::new(k);
    for (id, blob) in candidates {
        if let Some(score) = dot_blob(query, blob.as_ref()) {
            top.push(id, score);
        }
    }
    top.into_sorted_vec()
}

/// Dot product of `query` with a little-endian `f32` BLOB of the same dimension.
pub fn dot_blob(query: &[f32], blob: &[u8]) -> Option<f32> {
    if blob.len() != query.len() * 4 {
        return None;
    }
    let mut sums = [0.0f32; 4];
    let mut tail = 0.0f32;
    let q_chunks = query.chunks_exact(4);
    let b_chunks = blob.chunks_exact(16);
    for (q, b) in q_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder().chunks_exact(4))
    {
        tail += q * f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    for (q, b) in q_chunks.zip(b_chunks) {
        for lane in 0..4 {
            let at = lane * 4;
            sums[lane] += q[lane] * f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        }
    }
    Some(sums.iter().sum::<f32>() + tail)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VectorFormatError {
    #[error("vector BLOB length {0} is not a multiple of 4")]
    BlobLength(usize),
    #[error("vector contains a NaN or infinite value")]
    NotFinite,
    #[error("invalid pgvector literal: {0}")]
    Literal(String),
}

/// Encodes a vector as little-endian `f32` bytes.
pub fn vector_to_blob(vector: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(vector.len() * 4);
    for value in vector {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// Decodes little-endian `f32` bytes.
pub fn vector_from_blob(bytes: &[u8]) -> Result<Vec<f32>, VectorFormatError> {
    if bytes.len() % 4 != 0 {
        return Err(VectorFormatError::BlobLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Formats a vector as a pgvector literal such as `[0.1,-0.2,3]`, using the
/// shortest text that reads back to the same `f32`. pgvector rejects NaN and
/// infinity, so they are refused here.
pub fn vector_to_pgvector(vector: &[f32]) -> Result<String, VectorFormatError> {
    use std::fmt::Write as _;
    let mut literal = String::with_capacity(vector.len() * 12 + 2);
    literal.push('[');
    for (index, value) in vector.iter().enumerate() {
        if !value.is_finite() {
            return Err(VectorFormatError::NotFinite);
        }
        if index > 0 {
            literal.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(literal, "{value}");
    }
    literal.push(']');
    Ok(literal)
}

/// Parses a pgvector literal such as `[0.1,-0.2,3e-05]`.
pub fn vector_from_pgvector(literal: &str) -> Result<Vec<f32>, VectorFormatError> {
    let inner = literal
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(|| VectorFormatError::Literal("expected [...]".to_owned()))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|part| {
            let value: f32 = part.trim().parse().map_err(|_| {
                VectorFormatError::Literal(format!("{:?} is not a number", part.trim()))
            })?;
            if value.is_finite() {
                Ok(value)
            } else {
                Err(VectorFormatError::NotFinite)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let mut v = values.to_vec();
        l2_normalize(&mut v);
        v
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        let query = unit(&[1.0, 0.5, 0.0]);
        let candidates: Vec<(usize, Vec<f32>)> = (0..200)
            .map(|i| {
                let angle = i as f32 * 0.37;
                (i, unit(&[angle.cos(), angle.sin(), (i % 7) as f32 * 0.1]))
            })
            .collect();
        let top = top_k_cosine(&query, candidates.iter().map(|(i, v)| (*i, v)), 5);
        let mut all: Vec<(usize, f32)> = candidates
            .iter()
            .map(|(i, v)| (*i, dot(&query, v)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(top, all[..5].to_vec());

        let blobs: Vec<(usize, Vec<u8>)> = candidates
            .iter()
            .map(|(i, v)| (*i, vector_to_blob(v)))
            .collect();
        assert_eq!(top_k_cosine_blobs(&query, blobs, 5), top);
    }

    #[test]
    fn top_k_edge_cases() {
        let query = [1.0, 0.0];
        assert!(top_k_cosine(&query, [(1, [1.0, 0.0])], 0).is_empty());
        let wrong_dimension = top_k_cosine(
            &query,
            vec![(1, vec![1.0, 0.0, 0.0]), (2, vec![0.0, 1.0])],
            3,
        );
        assert_eq!(wrong_dimension, vec![(2, 0.0)]);
        let mut top = TopK::new(2);
        top.push("nan", f32::NAN);
        top.push("a", 0.5);
        top.push("b", 0.5);
        top.push("c", 0.5);
        assert_eq!(
            top.into_sorted_vec(),
            vec![("a", 0.5), ("b", 0.5)],
            "ties keep arrival order"
        );
        assert!(dot_blob(&query, &[0u8; 7]).is_none());
    }

    #[test]
    fn cosine_handles_zero_and_unnormalised_vectors() {
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine_similarity(&[3.0, 0.0], &[2.0, 2.0]) - 0.70710677).abs() < 1e-6);
    }

    #[test]
    fn pgvector_literals() {
        assert_eq!(
            vector_to_pgvector(&[0.1, -2.0, 3e-5]).unwrap(),
            "[0.1,-2,0.00003]"
        );
        assert_eq!(
            vector_from_pgvector(" [0.1, -2 ,3e-05] ").unwrap(),
            vec![0.1, -2.0, 3e-5]
        );
        assert_eq!(vector_from_pgvector("[]").unwrap(), Vec::<f32>::new());
        assert_eq!(
            vector_to_pgvector(&[f32::NAN]),
            Err(VectorFormatError::NotFinite)
        );
        assert!(vector_from_pgvector("0.1,0.2").is_err());
        assert!(vector_from_pgvector("[0.1,abc]").is_err());
        assert_eq!(
            vector_from_blob(&[0, 0, 0]),
            Err(VectorFormatError::BlobLength(3))
        );
    }

    proptest! {
        #[test]
        fn encodings_round_trip(values in prop::collection::vec(-1e6f32..1e6, 0..64)) {
            prop_assert_eq!(vector_from_blob(&vector_to_blob(&values)).unwrap(), values.clone());
            let literal = vector_to_pgvector(&values).unwrap();
            prop_assert_eq!(vector_from_pgvector(&literal).unwrap(), values);
        }

        #[test]
        fn dot_matches_naive(pairs in prop::collection::vec((-10f32..10.0, -10f32..10.0), 0..100)) {
            let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            prop_assert!((dot(&a, &b) - naive).abs() <= 1e-3 * (1.0 + naive.abs()));
            let blob = vector_to_blob(&b);
            prop_assert!((dot_blob(&a, &blob).unwrap() - naive).abs() <= 1e-3 * (1.0 + naive.abs()));
        }
    }
}

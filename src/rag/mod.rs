//! Knowledge-base retrieval: the pure building blocks.
//!
//! Extraction, chunking, embedding, scoring, fusion and context assembly.
//! Nothing here touches storage.

pub mod chunk;
pub mod context;
pub mod cosine;
pub mod embed;
pub mod extract;
pub mod fuse;
pub mod tokens;

//! The chat widget's conversations: visitor session tokens and grounded answers (the organisation's
//! bot configuration, its knowledge base and the recent transcript, streamed from the model). The
//! hub runs chat sessions like any other session; this module decides what they say.

pub mod answer;
pub mod token;

pub use answer::{Grounding, PreparedAnswer, Responder};

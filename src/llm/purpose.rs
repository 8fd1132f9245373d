//! What a completion is for.
//!
//! Model-backed providers ignore the purpose (the messages carry the instructions).
//! The offline provider has no model, so the caller hands it here whatever it already
//! knows, and the offline provider turns that into a clearly labelled template text.

/// The kind of text a completion should produce, with the facts the caller already has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Purpose {
    /// A free conversational reply to the latest user message.
    #[default]
    Reply,
    /// Ask the user this question; `text` is the question the caller wants asked
    /// (a model may rephrase it, the offline provider streams it as given).
    Question { text: String },
    /// Extract structured data as one JSON object with these keys. Offline, every key
    /// is `null`: nothing is guessed without a model.
    Extraction { fields: Vec<String> },
    /// Write a piece of content (e.g. a practice) from the answers collected so far.
    Generation {
        /// Kind of content, e.g. `"practice"`, `"checklist"`.
        content_type: String,
        /// Preferred title, if the caller has one.
        title: Option<String>,
        /// Collected answers in the order they were given. Well-known names shape the
        /// offline template: `topic`, `goal`, `audience`, `tone`, `duration`; any other
        /// slot is listed under "Details".
        slots: Vec<Slot>,
    },
    /// Answer `question` from retrieved passages. `context_found` is false when
    /// retrieval found nothing relevant; the answer must then say it does not know.
    Answer {
        question: String,
        context_found: bool,
        passages: Vec<Passage>,
    },
}

/// One named answer collected from the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub value: String,
}

impl Slot {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A piece of retrieved context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// Where the passage comes from (document title, URL, ...), shown when quoted.
    pub source: Option<String>,
    pub text: String,
}

impl Passage {
    pub fn new(source: Option<String>, text: impl Into<String>) -> Self {
        Self {
            source,
            text: text.into(),
        }
    }
}

//! A grounded answer: the organisation's bot configuration + the passages its knowledge base has
//! on the question + the recent transcript → the model, streamed. When nothing relevant is found
//! the configured fallback is said instead, without asking the model to invent anything.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bot_config::BotConfig;
use crate::hub::frames::Citation;
use crate::knowledge::{Knowledge, KnowledgeError};
use crate::llm::{
    ChatMessage, ChatProvider, ChatRequest, LlmError, Passage, Purpose, StreamEvent, TokenStream,
};
use crate::rag::context::BuiltContext;
use crate::storage::chat::ChatMessageRow;
use crate::storage::Db;

/// Where an answer's facts come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grounding {
    pub citations: Vec<Citation>,
    /// True when the answer is drawn from retrieved passages; false for the fallback.
    pub grounded: bool,
    /// The organisation's fallback answer, which the model is told to give when the passages do
    /// not answer the question.
    pub fallback_answer: String,
}

impl Grounding {
    /// The sources of the finished `answer`: none when the model gave the fallback; when it marked
    /// sources with `[n]`, only those; otherwise every passage it was given.
    pub fn settle(&self, answer: &str) -> Grounding {
        let mut settled = self.clone();
        if !self.grounded {
            return settled;
        }
        if normalise(answer) == normalise(&self.fallback_answer) {
            settled.grounded = false;
            settled.citations.clear();
            return settled;
        }
        let cited: Vec<&Citation> = self
            .citations
            .iter()
            .filter(|c| answer.contains(&format!("[{}]", c.position)))
            .collect();
        if !cited.is_empty() {
            settled.citations = cited.into_iter().cloned().collect();
        }
        settled
    }
}

/// Text compared loosely: case, surrounding quotes and whitespace do not matter.
fn normalise(text: &str) -> String {
    text.trim()
        .trim_matches(|c: char| c == '"' || c == '“' || c == '”')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

pub struct PreparedAnswer {
    pub stream: TokenStream,
    pub grounding: Grounding,
    /// The retrieved context the answer was given (empty for the fallback).
    pub context: BuiltContext<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("the knowledge base could not be searched: {0}")]
    Knowledge(#[from] KnowledgeError),
    #[error(transparent)]
    Llm(#[from] LlmError),
}

impl From<AnswerError> for LlmError {
    fn from(error: AnswerError) -> Self {
        match error {
            AnswerError::Llm(error) => error,
            other => LlmError::Unavailable(other.to_string()),
        }
    }
}

/// Composes and starts answers; shared by the hub's chat sessions and the internal API.
pub struct Responder {
    db: Db,
    knowledge: Knowledge,
    llm: Arc<dyn ChatProvider>,
}

impl Responder {
    pub fn new(db: Db, knowledge: Knowledge, llm: Arc<dyn ChatProvider>) -> Self {
        Self { db, knowledge, llm }
    }

    pub fn llm(&self) -> &Arc<dyn ChatProvider> {
        &self.llm
    }

    pub async fn config(&self, org_id: &str) -> Result<Option<BotConfig>, sqlx::Error> {
        Ok(self
            .db
            .org(org_id)
            .await?
            .map(|org| BotConfig::from_stored(&org.bot_config)))
    }

    /// Starts the answer to `question`; `history` is the transcript before it, oldest first.
    pub async fn answer(
        &self,
        config: &BotConfig,
        org_id: &str,
        question: &str,
        history: &[ChatMessageRow],
        cancel: CancellationToken,
    ) -> Result<PreparedAnswer, AnswerError> {
        let context = self
            .knowledge
            .retrieve(org_id, question, &config.rag)
            .await?;
        if context.is_empty() {
            return Ok(PreparedAnswer {
                stream: fixed_text(config.fallback_answer.clone()),
                grounding: Grounding {
                    fallback_answer: config.fallback_answer.clone(),
                    ..Grounding::default()
                },
                context,
            });
        }
        let grounding = Grounding {
            citations: citations_of(&context),
            grounded: true,
            fallback_answer: config.fallback_answer.clone(),
        };
        let request = compose(config, question, history, &context);
        let stream = self.llm.stream(request, cancel).await?;
        Ok(PreparedAnswer {
            stream,
            grounding,
            context,
        })
    }
}

/// A stream that says `text` at once: the fallback needs no model.
fn fixed_text(text: String) -> TokenStream {
    Box::pin(futures::stream::iter([
        Ok(StreamEvent::Delta(text)),
        Ok(StreamEvent::Done {
            finish_reason: Some("fallback".into()),
        }),
    ]))
}

fn citations_of(context: &BuiltContext<String>) -> Vec<Citation> {
    context
        .citations
        .iter()
        .map(|c| Citation {
            kb_id: c.kb_id.clone(),
            title: c.title.clone(),
            position: u32::try_from(c.number).unwrap_or(u32::MAX),
        })
        .collect()
}

/// Transcript turns given to the model besides the question (each side of the last few exchanges).
pub const HISTORY_MESSAGES: usize = 10;

/// The model request: instructions and passages, the recent transcript, then the question.
pub fn compose(
    config: &BotConfig,
    question: &str,
    history: &[ChatMessageRow],
    context: &BuiltContext<String>,
) -> ChatRequest {
    let system = format!(
        "{}\n\nYou are {}. Answer in the language `{}`. Use only the numbered passages below and \
         cite them as [n]. If they do not answer the question, reply exactly: {}\n\n{}",
        config.system_prompt, config.persona, config.language, config.fallback_answer, context.text
    );
    let mut messages = vec![ChatMessage::system(system)];
    let earlier = history.len().saturating_sub(HISTORY_MESSAGES);
    for row in &history[earlier..] {
        match row.role.as_str() {
            "user" => messages.push(ChatMessage::user(&row.content)),
            "assistant" => messages.push(ChatMessage::assistant(&row.content)),
            _ => {}
        }
    }
    messages.push(ChatMessage::user(question));
    let passages = passage_bodies(&context.text, context.citations.len())
        .into_iter()
        .zip(&context.citations)
        .map(|(text, citation)| Passage::new(Some(citation.title.clone()), text))
        .collect();
    let mut request = ChatRequest::new(
        messages,
        Purpose::Answer {
            question: question.to_string(),
            context_found: true,
            passages,
        },
    );
    request.temperature = Some(config.temperature as f32);
    if config.model != "default" {
        request.model = Some(config.model.clone());
    }
    request
}

/// The bodies of the `count` numbered passages of a built context (each `[n] title` header line
/// dropped), for the offline provider, which quotes passages rather than reading a prompt.
fn passage_bodies(text: &str, count: usize) -> Vec<String> {
    let mut starts = Vec::with_capacity(count);
    let mut from = 0;
    for number in 1..=count {
        let marker = format!("[{number}] ");
        let found = if number == 1 && text.starts_with(&marker) {
            Some(0)
        } else {
            text[from..]
                .find(&format!("\n\n{marker}"))
                .map(|i| from + i + 2)
        };
        let Some(start) = found else { break };
        starts.push(start);
        from = start + marker.len();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).map_or(text.len(), |&next| next - 2);
            let passage = &text[start..end];
            passage
                .split_once('\n')
                .map_or("", |(_, body)| body)
                .trim()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rag::context::{ChunkRange, Citation as ContextCitation};

    fn cite(position: u32, title: &str) -> Citation {
        Citation {
            kb_id: format!("kb{position}"),
            title: title.into(),
            position,
        }
    }

    #[test]
    fn a_finished_answer_keeps_only_the_sources_it_marked() {
        let given = Grounding {
            citations: vec![cite(1, "Hours"), cite(2, "Prices"), cite(3, "Menu")],
            grounded: true,
            fallback_answer: "Please call us.".into(),
        };
        let marked = given.settle("We open at nine [1]; coffee is two euros [3].");
        assert_eq!(
            marked
                .citations
                .iter()
                .map(|c| c.position)
                .collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(marked.grounded);
        // Unmarked answers keep every passage they were given.
        assert_eq!(given.settle("We open at nine.").citations.len(), 3);
        // The model saying the fallback is not an answer from the knowledge base.
        let fallback = given.settle("  \"please call US.\" ");
        assert!(!fallback.grounded && fallback.citations.is_empty());
    }

    #[test]
    fn passage_bodies_follow_the_numbered_headers() {
        let text =
            "[1] Hours — Opening\nWe open at nine.\n\nClosed Sundays.\n\n[2] Prices\nTen euros.";
        assert_eq!(
            passage_bodies(text, 2),
            vec!["We open at nine.\n\nClosed Sundays.", "Ten euros."]
        );
        assert!(passage_bodies("", 0).is_empty());
    }

    fn row(role: &str, content: &str) -> ChatMessageRow {
        ChatMessageRow {
            id: crate::storage::new_id(),
            role: role.into(),
            content: content.into(),
            citations: "[]".into(),
            grounded: None,
            in_reply_to: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_request_carries_config_passages_history_and_question_last() {
        let config = BotConfig {
            persona: "Ada".into(),
            model: "small-model".into(),
            temperature: 0.5,
            ..BotConfig::default()
        };
        let context = BuiltContext {
            text: "[1] Hours\nWe open at nine.".into(),
            citations: vec![ContextCitation {
                number: 1,
                kb_id: "kb1".to_string(),
                title: "Hours".into(),
                heading_path: Vec::new(),
                position: ChunkRange { first: 0, last: 0 },
                score: 0.9,
            }],
            token_count: 6,
        };
        let history: Vec<_> = (0..14)
            .map(|i| {
                row(
                    if i % 2 == 0 { "assistant" } else { "user" },
                    &format!("m{i}"),
                )
            })
            .collect();
        let request = compose(&config, "When do you open?", &history, &context);
        let system = &request.messages[0].content;
        assert!(system.contains("You are Ada") && system.contains("We open at nine."));
        assert_eq!(request.messages.len(), 1 + HISTORY_MESSAGES + 1);
        assert_eq!(request.messages[1].content, "m4");
        assert_eq!(
            request.messages.last().map(|m| m.content.as_str()),
            Some("When do you open?")
        );
        assert_eq!(request.model.as_deref(), Some("small-model"));
        assert_eq!(request.temperature, Some(0.5));
        assert!(matches!(
            &request.purpose,
            Purpose::Answer { passages, .. } if passages[0].text == "We open at nine."
        ));
        assert_eq!(citations_of(&context)[0].position, 1);
    }
}

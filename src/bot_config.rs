//! How an organisation's bot behaves: persona, greeting, model, language, widget origins and
//! retrieval settings. Stored as JSON in `orgs.bot_config`; every field has a default, so a stored
//! document from an older version (or `{}`) still reads as a complete configuration.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::FieldError;

pub const MAX_PROMPT_CHARS: usize = 8000;
pub const MAX_TEXT_CHARS: usize = 1000;
pub const MAX_ORIGINS: usize = 50;

/// The bot's behaviour. On `PUT`, the whole configuration is replaced; omitted fields take their
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// Instructions given to the model before every conversation (at most 8000 characters).
    #[schema(max_length = 8000)]
    pub system_prompt: String,
    /// The name the bot presents itself with.
    #[schema(min_length = 1, max_length = 100)]
    pub persona: String,
    /// The first message a visitor sees.
    #[schema(max_length = 1000)]
    pub greeting: String,
    /// Model name passed to the LLM provider; `default` uses the provider's configured model.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[A-Za-z0-9._:/-]+$")]
    pub model: String,
    /// Sampling temperature, 0 to 2.
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: f64,
    /// Language the bot answers in, as a BCP 47 tag such as `en`, `ar` or `pt-BR`.
    #[schema(min_length = 2, max_length = 35, example = "en")]
    pub language: String,
    /// Web origins allowed to embed the chat widget with the publishable key, e.g.
    /// `https://shop.example.com`. Empty: the widget works on no site.
    #[schema(max_items = 50)]
    pub allowed_origins: Vec<String>,
    pub rag: RagSettings,
    /// What the bot says when the knowledge base has no answer.
    #[schema(min_length = 1, max_length = 1000)]
    pub fallback_answer: String,
}

/// Retrieval-augmented generation: how much of the knowledge base goes into each answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RagSettings {
    /// Passages retrieved per question, 1 to 50.
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: u32,
    /// Minimum relevance score (0 to 1) for a passage to be used.
    #[schema(minimum = 0, maximum = 1)]
    pub min_score: f64,
    /// Token budget for retrieved context, 100 to 32000.
    #[schema(minimum = 100, maximum = 32000)]
    pub max_context_tokens: u32,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            system_prompt:
                "You are a friendly, concise assistant for this organisation. Answer from \
                            the organisation's knowledge base; when it does not cover a question, \
                            say so plainly instead of guessing."
                    .to_string(),
            persona: "Assistant".to_string(),
            greeting: "Hi! How can I help you today?".to_string(),
            model: "default".to_string(),
            temperature: 0.3,
            language: "en".to_string(),
            allowed_origins: Vec::new(),
            rag: RagSettings::default(),
            fallback_answer: "I'm sorry, I don't have an answer to that yet. Please contact us \
                              directly and we'll be glad to help."
                .to_string(),
        }
    }
}

impl Default for RagSettings {
    fn default() -> Self {
        Self {
            top_k: 5,
            min_score: 0.2,
            max_context_tokens: 2000,
        }
    }
}

impl BotConfig {
    /// Reads a stored document; anything unreadable falls back to the defaults rather than
    /// breaking the organisation's bot.
    pub fn from_stored(json: &str) -> Self {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// Checks every field and normalises the origins; returns every problem at once.
    pub fn validate(mut self) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut text = |field: &str, value: &mut String, min: usize, max: usize| {
            *value = value.trim().to_string();
            let n = value.chars().count();
            if n < min || n > max {
                errors.push(FieldError::new(
                    field,
                    if min == 0 {
                        format!("must be at most {max} characters")
                    } else {
                        format!("must be {min} to {max} characters")
                    },
                ));
            }
        };
        text(
            "system_prompt",
            &mut self.system_prompt,
            0,
            MAX_PROMPT_CHARS,
        );
        text("persona", &mut self.persona, 1, 100);
        text("greeting", &mut self.greeting, 0, MAX_TEXT_CHARS);
        text(
            "fallback_answer",
            &mut self.fallback_answer,
            1,
            MAX_TEXT_CHARS,
        );
        text("model", &mut self.model, 1, 100);
        if !self
            .model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c))
        {
            errors.push(FieldError::new(
                "model",
                "may only contain letters, digits and . _ : / -",
            ));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            errors.push(FieldError::new("temperature", "must be between 0 and 2"));
        }
        if !is_language_tag(&self.language) {
            errors.push(FieldError::new(
                "language",
                "must be a BCP 47 language tag such as `en` or `pt-BR`",
            ));
        }
        if self.allowed_origins.len() > MAX_ORIGINS {
            errors.push(FieldError::new(
                "allowed_origins",
                format!("must list at most {MAX_ORIGINS} origins"),
            ));
        }
        let mut origins: Vec<String> = Vec::new();
        for (i, raw) in self.allowed_origins.iter().enumerate() {
            match normalise_origin(raw) {
                Some(origin) if !origins.contains(&origin) => origins.push(origin),
                Some(_) => {}
                None => errors.push(FieldError::new(
                    format!("allowed_origins[{i}]"),
                    "must be an origin such as `https://shop.example.com` (scheme, host and optional port; no path)",
                )),
            }
        }
        self.allowed_origins = origins;
        if !(1..=50).contains(&self.rag.top_k) {
            errors.push(FieldError::new("rag.top_k", "must be between 1 and 50"));
        }
        if !(0.0..=1.0).contains(&self.rag.min_score) {
            errors.push(FieldError::new("rag.min_score", "must be between 0 and 1"));
        }
        if !(100..=32000).contains(&self.rag.max_context_tokens) {
            errors.push(FieldError::new(
                "rag.max_context_tokens",
                "must be between 100 and 32000",
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }

    /// Whether a browser `Origin` header names one of the allowed origins.
    pub fn allows_origin(&self, origin: &str) -> bool {
        normalise_origin(origin).is_some_and(|o| self.allowed_origins.contains(&o))
    }
}

/// A web origin in canonical form (`scheme://host[:port]`, lower-case, default port dropped), or
/// `None` when `raw` is not one.
pub fn normalise_origin(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (scheme, rest) = raw.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    // An origin has no path, query, fragment or credentials; a lone trailing slash is tolerated.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok().filter(|p| *p > 0)?)),
        None => (rest, None),
    };
    let host = host.to_ascii_lowercase();
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-'])
        && !host.contains("..")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !valid_host {
        return None;
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    Some(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_valid_and_fill_in_missing_fields() {
        assert!(BotConfig::default().validate().is_ok());
        let stored = BotConfig::from_stored(r#"{"greeting": "Salaam!", "rag": {"top_k": 9}}"#);
        assert_eq!(stored.greeting, "Salaam!");
        assert_eq!(stored.rag.top_k, 9);
        assert_eq!(stored.rag.min_score, 0.2);
        assert_eq!(stored.model, "default");
        assert_eq!(BotConfig::from_stored("not json"), BotConfig::default());
    }

    #[test]
    fn origins_are_validated_and_normalised() {
        assert_eq!(
            normalise_origin("HTTPS://Shop.Example.com/").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(
            normalise_origin("https://shop.example.com:443").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(
            normalise_origin("http://localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
        for bad in [
            "shop.example.com",
            "ftp://shop.example.com",
            "https://shop.example.com/path",
            "https://user@shop.example.com",
            "https://",
            "https://shop..example.com",
            "https://shop.example.com:0",
            "https://shop.example.com:99999",
            "*",
        ] {
            assert_eq!(normalise_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let config = BotConfig {
            temperature: 2.5,
            language: "english!".into(),
            allowed_origins: vec!["https://ok.example.com".into(), "nope".into()],
            rag: RagSettings {
                top_k: 0,
                min_score: 1.5,
                max_context_tokens: 10,
            },
            persona: " ".into(),
            ..BotConfig::default()
        };
        let fields: Vec<String> = config
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        for f in [
            "temperature",
            "language",
            "allowed_origins[1]",
            "rag.top_k",
            "rag.min_score",
            "rag.max_context_tokens",
            "persona",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn origin_checks_use_the_canonical_form() {
        let config = BotConfig {
            allowed_origins: vec!["https://shop.example.com".into()],
            ..BotConfig::default()
        }
        .validate()
        .unwrap();
        assert!(config.allows_origin("https://SHOP.example.com"));
        assert!(!config.allows_origin("https://evil.example.com"));
    }
}

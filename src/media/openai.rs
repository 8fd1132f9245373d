//! OpenAI-compatible speech: `POST {base}/audio/speech` (OpenAI, and servers that mimic it).

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{Audio, TextToSpeech, TtsError};

#[derive(Debug, Clone)]
pub struct OpenAiSpeech {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<SecretString>,
    model: String,
    voice: String,
}

impl OpenAiSpeech {
    pub fn new(
        base_url: String,
        api_key: Option<SecretString>,
        model: String,
        voice: String,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            model,
            voice,
        })
    }
}

#[async_trait]
impl TextToSpeech for OpenAiSpeech {
    fn id(&self) -> &str {
        "openai-speech"
    }

    async fn synthesize(&self, text: &str) -> Result<Audio, TtsError> {
        let mut request = self
            .http
            .post(format!("{}/audio/speech", self.base_url))
            .json(&serde_json::json!({
                "model": self.model,
                "voice": self.voice,
                "input": text,
                "response_format": "mp3",
            }));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| TtsError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("speech server answered {status}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                TtsError::Transient(message)
            } else {
                TtsError::Permanent(message)
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TtsError::Transient(e.without_url().to_string()))?;
        if bytes.is_empty() {
            return Err(TtsError::Permanent("speech server sent no audio".into()));
        }
        Ok(Audio {
            bytes: bytes.to_vec(),
            extension: "mp3",
        })
    }
}

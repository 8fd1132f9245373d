//! Slot values delivered as JSON by a language model, checked before use.
//!
//! The model is asked to fill `extraction_schema()`. Its answer is validated
//! strictly (unknown keys, wrong types and out-of-range values are errors) so
//! that the caller can fall back to the deterministic parser instead of
//! trusting a malformed answer. Two leniencies, both harmless: a missing key
//! or an empty string means "not mentioned", and choice values are matched
//! without regard to case or surrounding spaces.

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::extract::EXTRACTED_INTENT_MAX_CHARS;
use super::slots::{
    Depth, DurationMinutes, Intent, SlotName, SlotUpdate, SlotValueError, TimePreference, Tone,
    Voice, DURATION_MAX, DURATION_MIN, VOICE_MAX_CHARS,
};

/// The slots a model may fill, in schema order.
const FIELDS: [SlotName; 6] = [
    SlotName::Intent,
    SlotName::TimePreference,
    SlotName::DurationMinutes,
    SlotName::Depth,
    SlotName::Tone,
    SlotName::Voice,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructuredSlotsError {
    #[error("the extraction must be a JSON object")]
    NotAnObject,
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("field `{field}` must be {expected} or null")]
    WrongType {
        field: SlotName,
        expected: &'static str,
    },
    #[error("field `{field}` has an unknown value `{value}`")]
    UnknownChoice { field: SlotName, value: String },
    #[error("field `{field}`: {source}")]
    InvalidValue {
        field: SlotName,
        #[source]
        source: SlotValueError,
    },
}

/// Validates a model's structured answer and turns it into a `SlotUpdate`.
pub fn slot_update_from_json(value: &Value) -> Result<SlotUpdate, StructuredSlotsError> {
    let object = value.as_object().ok_or(StructuredSlotsError::NotAnObject)?;
    if let Some(unknown) = object
        .keys()
        .find(|key| !FIELDS.iter().any(|field| field.as_str() == key.as_str()))
    {
        return Err(StructuredSlotsError::UnknownField(unknown.clone()));
    }

    let intent = text_field(object, SlotName::Intent)?
        .map(|text| {
            if text.chars().count() > EXTRACTED_INTENT_MAX_CHARS {
                return Err(SlotValueError::IntentTooLong);
            }
            Intent::new(text)
        })
        .transpose()
        .map_err(|source| invalid(SlotName::Intent, source))?;
    let voice = text_field(object, SlotName::Voice)?
        .map(Voice::new)
        .transpose()
        .map_err(|source| invalid(SlotName::Voice, source))?;
    let duration_minutes = match object.get(SlotName::DurationMinutes.as_str()) {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => {
            let minutes = number.as_i64().ok_or(StructuredSlotsError::WrongType {
                field: SlotName::DurationMinutes,
                expected: "an integer",
            })?;
            Some(
                DurationMinutes::new(minutes)
                    .map_err(|source| invalid(SlotName::DurationMinutes, source))?,
            )
        }
        Some(_) => {
            return Err(StructuredSlotsError::WrongType {
                field: SlotName::DurationMinutes,
                expected: "an integer",
            })
        }
    };

    Ok(SlotUpdate {
        intent,
        time_preference: choice_field::<TimePreference>(object, SlotName::TimePreference)?,
        duration_minutes,
        depth: choice_field::<Depth>(object, SlotName::Depth)?,
        tone: choice_field::<Tone>(object, SlotName::Tone)?,
        voice,
    })
}

/// The JSON Schema (draft 2020-12) a model fills when extracting slots from a
/// message. Every key is required but nullable, which suits strict
/// structured-output modes; `null` means "not mentioned in this message".
pub fn extraction_schema() -> Value {
    let choices = |names: Vec<&'static str>| {
        let mut values: Vec<Value> = names.into_iter().map(Value::from).collect();
        values.push(Value::Null);
        values
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SlotExtraction",
        "description": "Values for a personalised practice mentioned in the user's latest message. Use null for anything the message does not mention.",
        "type": "object",
        "properties": {
            "intent": {
                "type": ["string", "null"],
                "maxLength": EXTRACTED_INTENT_MAX_CHARS,
                "description": "What the practice should help with, in the user's words without filler, e.g. \"sleep\" or \"calm before a presentation\"."
            },
            "time_preference": {
                "type": ["string", "null"],
                "enum": choices(TimePreference::ALL.iter().map(|t| t.as_str()).collect()),
                "description": "When in the day the user will practise."
            },
            "duration_minutes": {
                "type": ["integer", "null"],
                "minimum": DURATION_MIN,
                "maximum": DURATION_MAX,
                "description": "Length of the practice in whole minutes."
            },
            "depth": {
                "type": ["string", "null"],
                "enum": choices(Depth::ALL.iter().map(|d| d.as_str()).collect()),
                "description": "shallow = light and quick, medium = moderate, deep = intense and immersive."
            },
            "tone": {
                "type": ["string", "null"],
                "enum": choices(Tone::ALL.iter().map(|t| t.as_str()).collect()),
                "description": "The emotional tone of the wording, only if the user asks for one."
            },
            "voice": {
                "type": ["string", "null"],
                "maxLength": VOICE_MAX_CHARS,
                "description": "The narrating voice, only if the user asks for one, e.g. \"female\"."
            }
        },
        "required": FIELDS.iter().map(|field| field.as_str()).collect::<Vec<_>>(),
        "additionalProperties": false
    })
}

fn invalid(field: SlotName, source: SlotValueError) -> StructuredSlotsError {
    StructuredSlotsError::InvalidValue { field, source }
}

/// A string field; absent, null and blank all mean "not mentioned".
fn text_field(
    object: &Map<String, Value>,
    field: SlotName,
) -> Result<Option<&str>, StructuredSlotsError> {
    match object.get(field.as_str()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(StructuredSlotsError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A string field holding one of an enum's wire names.
fn choice_field<T: DeserializeOwned>(
    object: &Map<String, Value>,
    field: SlotName,
) -> Result<Option<T>, StructuredSlotsError> {
    let Some(text) = text_field(object, field)? else {
        return Ok(None);
    };
    let normalised = text.trim().to_lowercase();
    serde_json::from_value(Value::String(normalised))
        .map(Some)
        .map_err(|_| StructuredSlotsError::UnknownChoice {
            field,
            value: text.to_owned(),
        })
}

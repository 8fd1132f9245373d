//! A model's structured answer: validation and the schema it fills.

use serde_json::json;

use super::support::*;
use crate::conversation::{
    extraction_schema, slot_update_from_json, Depth, SlotName, SlotUpdate, SlotValueError,
    StructuredSlotsError, TimePreference, Tone,
};

#[test]
fn a_full_answer_is_accepted() {
    let update = slot_update_from_json(&json!({
        "intent": "sleep",
        "time_preference": "night",
        "duration_minutes": 10,
        "depth": "deep",
        "tone": "gentle",
        "voice": "female"
    }))
    .unwrap();
    assert_eq!(update, everything());
}

#[test]
fn nulls_missing_keys_and_blanks_mean_not_mentioned() {
    let update = slot_update_from_json(&json!({
        "intent": null,
        "time_preference": "",
        "depth": "  "
    }))
    .unwrap();
    assert_eq!(update, SlotUpdate::default());
    assert_eq!(
        slot_update_from_json(&json!({})).unwrap(),
        SlotUpdate::default()
    );
}

#[test]
fn choices_ignore_case_and_spaces() {
    let update = slot_update_from_json(&json!({
        "time_preference": " Evening ",
        "depth": "MEDIUM",
        "tone": "Energising"
    }))
    .unwrap();
    assert_eq!(update.time_preference, Some(TimePreference::Evening));
    assert_eq!(update.depth, Some(Depth::Medium));
    assert_eq!(update.tone, Some(Tone::Energising));
}

#[test]
fn malformed_answers_are_errors() {
    use StructuredSlotsError as E;
    let cases = [
        (json!("sleep"), E::NotAnObject),
        (json!([1, 2]), E::NotAnObject),
        (json!({"mood": "happy"}), E::UnknownField("mood".into())),
        (
            json!({"content_type": "ritual"}),
            E::UnknownField("content_type".into()),
        ),
        (
            json!({"intent": 42}),
            E::WrongType {
                field: SlotName::Intent,
                expected: "a string",
            },
        ),
        (
            json!({"duration_minutes": "10"}),
            E::WrongType {
                field: SlotName::DurationMinutes,
                expected: "an integer",
            },
        ),
        (
            json!({"duration_minutes": 10.5}),
            E::WrongType {
                field: SlotName::DurationMinutes,
                expected: "an integer",
            },
        ),
        (
            json!({"duration_minutes": 0}),
            E::InvalidValue {
                field: SlotName::DurationMinutes,
                source: SlotValueError::DurationOutOfRange(0),
            },
        ),
        (
            json!({"duration_minutes": 61}),
            E::InvalidValue {
                field: SlotName::DurationMinutes,
                source: SlotValueError::DurationOutOfRange(61),
            },
        ),
        (
            json!({"duration_minutes": -5}),
            E::InvalidValue {
                field: SlotName::DurationMinutes,
                source: SlotValueError::DurationOutOfRange(-5),
            },
        ),
        (
            json!({"depth": "bottomless"}),
            E::UnknownChoice {
                field: SlotName::Depth,
                value: "bottomless".into(),
            },
        ),
        (
            json!({"time_preference": true}),
            E::WrongType {
                field: SlotName::TimePreference,
                expected: "a string",
            },
        ),
        (
            json!({"intent": "x".repeat(201)}),
            E::InvalidValue {
                field: SlotName::Intent,
                source: SlotValueError::IntentTooLong,
            },
        ),
        (
            json!({"voice": "v".repeat(65)}),
            E::InvalidValue {
                field: SlotName::Voice,
                source: SlotValueError::VoiceTooLong,
            },
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(slot_update_from_json(&value), Err(expected), "{value}");
    }
}

#[test]
fn the_schema_lists_every_fillable_slot() {
    let schema = extraction_schema();
    assert_eq!(schema["type"], json!("object"));
    assert_eq!(schema["additionalProperties"], json!(false));
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        [
            "intent",
            "time_preference",
            "duration_minutes",
            "depth",
            "tone",
            "voice"
        ]
    );
    let properties = schema["properties"].as_object().unwrap();
    assert_eq!(properties.len(), required.len());
    assert_eq!(
        properties["time_preference"]["enum"],
        json!([
            "morning",
            "midday",
            "afternoon",
            "evening",
            "night",
            "anytime",
            null
        ])
    );
    assert_eq!(
        properties["depth"]["enum"],
        json!(["shallow", "medium", "deep", null])
    );
    assert_eq!(
        properties["tone"]["enum"],
        json!(["warm", "gentle", "energising", "neutral", null])
    );
    assert_eq!(properties["duration_minutes"]["minimum"], json!(1));
    assert_eq!(properties["duration_minutes"]["maximum"], json!(60));
    assert_eq!(properties["intent"]["maxLength"], json!(200));
}

#[test]
fn every_enum_value_in_the_schema_is_accepted() {
    let schema = extraction_schema();
    for field in ["time_preference", "depth", "tone"] {
        for choice in schema["properties"][field]["enum"].as_array().unwrap() {
            let answer = json!({ field: choice });
            assert!(slot_update_from_json(&answer).is_ok(), "{answer}");
        }
    }
}

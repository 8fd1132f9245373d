//! The facts a guided session collects before a practice can be generated.
//!
//! Every value type validates itself on construction (and on deserialisation),
//! so a `Slots` value can never hold an out-of-range duration or an empty intent.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest intent accepted from any source (matches the `session.start` frame limit).
pub const INTENT_MAX_CHARS: usize = 500;
/// Longest voice identifier accepted.
pub const VOICE_MAX_CHARS: usize = 64;
/// Shortest practice, in minutes.
pub const DURATION_MIN: u8 = 1;
/// Longest practice, in minutes.
pub const DURATION_MAX: u8 = 60;

/// What kind of practice the session creates. Fixed when the session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Affirmation,
    GuidedMeditation,
    Ritual,
}

impl ContentType {
    pub const ALL: [ContentType; 3] = [
        ContentType::Affirmation,
        ContentType::GuidedMeditation,
        ContentType::Ritual,
    ];

    /// The wire name (`"guided_meditation"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Affirmation => "affirmation",
            ContentType::GuidedMeditation => "guided_meditation",
            ContentType::Ritual => "ritual",
        }
    }
}

/// When in the day the user means to practise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePreference {
    Morning,
    Midday,
    Afternoon,
    Evening,
    Night,
    Anytime,
}

impl TimePreference {
    pub const ALL: [TimePreference; 6] = [
        TimePreference::Morning,
        TimePreference::Midday,
        TimePreference::Afternoon,
        TimePreference::Evening,
        TimePreference::Night,
        TimePreference::Anytime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimePreference::Morning => "morning",
            TimePreference::Midday => "midday",
            TimePreference::Afternoon => "afternoon",
            TimePreference::Evening => "evening",
            TimePreference::Night => "night",
            TimePreference::Anytime => "anytime",
        }
    }
}

/// How immersive the practice should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Depth {
    Shallow,
    Medium,
    Deep,
}

impl Depth {
    pub const ALL: [Depth; 3] = [Depth::Shallow, Depth::Medium, Depth::Deep];

    pub fn as_str(self) -> &'static str {
        match self {
            Depth::Shallow => "shallow",
            Depth::Medium => "medium",
            Depth::Deep => "deep",
        }
    }
}

/// The emotional colour of the wording (optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Warm,
    Gentle,
    Energising,
    Neutral,
}

impl Tone {
    pub const ALL: [Tone; 4] = [Tone::Warm, Tone::Gentle, Tone::Energising, Tone::Neutral];

    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Warm => "warm",
            Tone::Gentle => "gentle",
            Tone::Energising => "energising",
            Tone::Neutral => "neutral",
        }
    }
}

macro_rules! display_as_str {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(ContentType, TimePreference, Depth, Tone);

/// Why a slot value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotValueError {
    #[error("the intent is empty")]
    EmptyIntent,
    #[error("the intent is longer than {INTENT_MAX_CHARS} characters")]
    IntentTooLong,
    #[error("the duration must be between {DURATION_MIN} and {DURATION_MAX} minutes, got {0}")]
    DurationOutOfRange(i64),
    #[error("the voice is empty")]
    EmptyVoice,
    #[error("the voice is longer than {VOICE_MAX_CHARS} characters")]
    VoiceTooLong,
}

/// What the practice should help with: trimmed, single-spaced, 1..=500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Intent(String);

impl Intent {
    /// Strict constructor: refuses empty or over-long text.
    pub fn new(text: &str) -> Result<Self, SlotValueError> {
        let text = collapse_whitespace(text);
        if text.is_empty() {
            return Err(SlotValueError::EmptyIntent);
        }
        if text.chars().count() > INTENT_MAX_CHARS {
            return Err(SlotValueError::IntentTooLong);
        }
        Ok(Intent(text))
    }

    /// Lenient constructor for user-supplied text: over-long text is cut
    /// (at `max_chars`, capped at the global limit) rather than refused.
    pub fn truncated(text: &str, max_chars: usize) -> Option<Self> {
        let text = collapse_whitespace(text);
        let limit = max_chars.clamp(1, INTENT_MAX_CHARS);
        let cut: String = text.chars().take(limit).collect();
        Intent::new(cut.trim_end()).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Intent {
    type Error = SlotValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Intent::new(&value)
    }
}

impl From<Intent> for String {
    fn from(value: Intent) -> Self {
        value.0
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A voice identifier or description for audio practices: 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Voice(String);

impl Voice {
    pub fn new(text: &str) -> Result<Self, SlotValueError> {
        let text = collapse_whitespace(text);
        if text.is_empty() {
            return Err(SlotValueError::EmptyVoice);
        }
        if text.chars().count() > VOICE_MAX_CHARS {
            return Err(SlotValueError::VoiceTooLong);
        }
        Ok(Voice(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Voice {
    type Error = SlotValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Voice::new(&value)
    }
}

impl From<Voice> for String {
    fn from(value: Voice) -> Self {
        value.0
    }
}

impl fmt::Display for Voice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Practice length in whole minutes, always within `DURATION_MIN..=DURATION_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct DurationMinutes(u8);

impl DurationMinutes {
    /// Strict constructor: refuses values outside the range.
    pub fn new(minutes: i64) -> Result<Self, SlotValueError> {
        match u8::try_from(minutes) {
            Ok(value) if (DURATION_MIN..=DURATION_MAX).contains(&value) => {
                Ok(DurationMinutes(value))
            }
            _ => Err(SlotValueError::DurationOutOfRange(minutes)),
        }
    }

    /// Lenient constructor for spoken amounts: "2 hours" becomes 60, "0 minutes" becomes 1.
    pub fn clamped(minutes: i64) -> Self {
        let clamped = minutes.clamp(i64::from(DURATION_MIN), i64::from(DURATION_MAX));
        DurationMinutes(u8::try_from(clamped).unwrap_or(DURATION_MAX))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for DurationMinutes {
    type Error = SlotValueError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        DurationMinutes::new(value)
    }
}

impl From<DurationMinutes> for u8 {
    fn from(value: DurationMinutes) -> Self {
        value.0
    }
}

impl fmt::Display for DurationMinutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The name of one slot, as used on the wire (`"time_preference"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotName {
    ContentType,
    Intent,
    TimePreference,
    DurationMinutes,
    Depth,
    Tone,
    Voice,
}

impl SlotName {
    pub const ALL: [SlotName; 7] = [
        SlotName::ContentType,
        SlotName::Intent,
        SlotName::TimePreference,
        SlotName::DurationMinutes,
        SlotName::Depth,
        SlotName::Tone,
        SlotName::Voice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SlotName::ContentType => "content_type",
            SlotName::Intent => "intent",
            SlotName::TimePreference => "time_preference",
            SlotName::DurationMinutes => "duration_minutes",
            SlotName::Depth => "depth",
            SlotName::Tone => "tone",
            SlotName::Voice => "voice",
        }
    }
}

display_as_str!(SlotName);

/// Everything known so far. Serialises with every key present (unknown ones as
/// `null`), which is the `context` object of the `state` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    pub content_type: ContentType,
    pub intent: Option<Intent>,
    pub time_preference: Option<TimePreference>,
    pub duration_minutes: Option<DurationMinutes>,
    pub depth: Option<Depth>,
    pub tone: Option<Tone>,
    pub voice: Option<Voice>,
}

impl Slots {
    pub fn new(content_type: ContentType) -> Self {
        Slots {
            content_type,
            intent: None,
            time_preference: None,
            duration_minutes: None,
            depth: None,
            tone: None,
            voice: None,
        }
    }

    /// The required slots still unknown, in the order they are asked for.
    pub fn missing_required(&self) -> Vec<SlotName> {
        let mut missing = Vec::new();
        if self.intent.is_none() {
            missing.push(SlotName::Intent);
        }
        if self.time_preference.is_none() {
            missing.push(SlotName::TimePreference);
        }
        if self.duration_minutes.is_none() {
            missing.push(SlotName::DurationMinutes);
        }
        if self.depth.is_none() {
            missing.push(SlotName::Depth);
        }
        missing
    }

    pub fn is_complete(&self) -> bool {
        self.missing_required().is_empty()
    }

    /// Applies an update and returns the slots whose value actually changed.
    pub fn apply(&mut self, update: &SlotUpdate) -> Vec<SlotName> {
        let mut changed = Vec::new();
        set_if_changed(
            &mut self.intent,
            &update.intent,
            SlotName::Intent,
            &mut changed,
        );
        set_if_changed(
            &mut self.time_preference,
            &update.time_preference,
            SlotName::TimePreference,
            &mut changed,
        );
        set_if_changed(
            &mut self.duration_minutes,
            &update.duration_minutes,
            SlotName::DurationMinutes,
            &mut changed,
        );
        set_if_changed(
            &mut self.depth,
            &update.depth,
            SlotName::Depth,
            &mut changed,
        );
        set_if_changed(&mut self.tone, &update.tone, SlotName::Tone, &mut changed);
        set_if_changed(
            &mut self.voice,
            &update.voice,
            SlotName::Voice,
            &mut changed,
        );
        changed
    }
}

fn set_if_changed<T: Clone + PartialEq>(
    slot: &mut Option<T>,
    new: &Option<T>,
    name: SlotName,
    changed: &mut Vec<SlotName>,
) {
    if let Some(value) = new {
        if slot.as_ref() != Some(value) {
            *slot = Some(value.clone());
            changed.push(name);
        }
    }
}

/// Values understood from one user message. `None` means "not mentioned";
/// a mentioned value replaces the previous one (that is how corrections work).
/// The content type is not here: it is fixed for the whole session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlotUpdate {
    pub intent: Option<Intent>,
    pub time_preference: Option<TimePreference>,
    pub duration_minutes: Option<DurationMinutes>,
    pub depth: Option<Depth>,
    pub tone: Option<Tone>,
    pub voice: Option<Voice>,
}

impl SlotUpdate {
    pub fn is_empty(&self) -> bool {
        self == &SlotUpdate::default()
    }

    /// The slots this update mentions.
    pub fn mentioned(&self) -> Vec<SlotName> {
        let mut names = Vec::new();
        if self.intent.is_some() {
            names.push(SlotName::Intent);
        }
        if self.time_preference.is_some() {
            names.push(SlotName::TimePreference);
        }
        if self.duration_minutes.is_some() {
            names.push(SlotName::DurationMinutes);
        }
        if self.depth.is_some() {
            names.push(SlotName::Depth);
        }
        if self.tone.is_some() {
            names.push(SlotName::Tone);
        }
        if self.voice.is_some() {
            names.push(SlotName::Voice);
        }
        names
    }
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

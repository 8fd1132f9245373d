//! Values proposed when asking for practice details, and used when the user
//! accepts them ("whatever you think").

use super::slots::{ContentType, Depth, DurationMinutes};

/// A length that suits the content type: affirmations are short, rituals longer.
pub fn suggested_duration(content_type: ContentType) -> DurationMinutes {
    let minutes = match content_type {
        ContentType::Affirmation => 3,
        ContentType::GuidedMeditation => 10,
        ContentType::Ritual => 15,
    };
    DurationMinutes::clamped(minutes)
}

/// A depth that suits the content type.
pub fn suggested_depth(content_type: ContentType) -> Depth {
    match content_type {
        ContentType::Affirmation => Depth::Shallow,
        ContentType::GuidedMeditation | ContentType::Ritual => Depth::Medium,
    }
}

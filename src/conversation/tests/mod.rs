#![allow(clippy::unwrap_used, clippy::expect_used)]

mod extraction;
mod properties;
mod routing;
mod structured_json;
mod support;
mod transitions;
mod wire;
mod wording;

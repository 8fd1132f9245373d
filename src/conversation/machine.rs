//! The conversation state machine: `(state, event) -> (state', effects)`.
//!
//! Rules, in short:
//! - a message's slot values are applied, then the conversation moves to the
//!   state asking for the first missing required slot (several slots at once
//!   jump ahead; a value for an earlier slot is a correction and is applied in
//!   place), or to `Confirmation` when nothing is missing;
//! - `Confirm` starts generation; `Revise` goes back to `PracticeDetails` and
//!   asks what to change;
//! - a failed generation returns to `Confirmation` so the user can retry by
//!   confirming again; after `MAX_GENERATION_ATTEMPTS` failures the
//!   conversation ends in `Failed`;
//! - `Cancel` ends any unfinished conversation;
//! - a refused event returns an error and changes nothing.

use serde::{Deserialize, Serialize};

use super::checkpoint::ConversationRecord;
use super::defaults::{suggested_depth, suggested_duration};
use super::effect::{Effect, GenerationSpec, Outcome, Question};
use super::error::TransitionError;
use super::event::Event;
use super::questions::summary;
use super::slots::{ContentType, Intent, SlotName, SlotUpdate, Slots, INTENT_MAX_CHARS};
use super::state::State;

/// Generation attempts allowed per conversation before it ends in `Failed`.
pub const MAX_GENERATION_ATTEMPTS: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ConversationRecord", try_from = "ConversationRecord")]
pub struct Conversation {
    pub(super) state: State,
    pub(super) slots: Slots,
    pub(super) generation: GenerationRecord,
}

/// What happened to the generation attempts of this conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRecord {
    /// Attempts started so far (each `Confirm` starts one).
    pub attempts: u8,
    /// The pipeline's job id of the current (or last successful) attempt.
    pub job_id: Option<String>,
    /// Set once the practice exists.
    pub content_id: Option<String>,
    /// Reason given for the most recent failure.
    pub last_failure: Option<String>,
}

impl Conversation {
    /// Opens a session. An intent given up front (from `session.start`) skips
    /// the intent question; it is trimmed and cut to the intent length limit.
    pub fn start(content_type: ContentType, intent: Option<String>) -> (Conversation, Vec<Effect>) {
        let mut slots = Slots::new(content_type);
        slots.intent = intent.and_then(|text| Intent::truncated(&text, INTENT_MAX_CHARS));
        let mut conversation = Conversation {
            state: State::Greeting,
            slots,
            generation: GenerationRecord::default(),
        };
        let mut effects = vec![Effect::Greet { content_type }];
        conversation.advance_to(State::for_slots(&conversation.slots), &mut effects);
        conversation.ask_current(&mut effects);
        (conversation, effects)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    pub fn content_type(&self) -> ContentType {
        self.slots.content_type
    }

    pub fn generation(&self) -> &GenerationRecord {
        &self.generation
    }

    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// The question the conversation is waiting on, if any (to re-ask after a
    /// reconnect, for instance). `None` while generating and once finished.
    pub fn current_question(&self) -> Option<Question> {
        let content_type = self.slots.content_type;
        let question_state = match self.state {
            State::Greeting => State::for_slots(&self.slots),
            other => other,
        };
        match question_state {
            State::IntentDiscovery => Some(Question::AskIntent { content_type }),
            State::ContextGathering => Some(Question::AskTime { content_type }),
            State::PracticeDetails => Some(if self.slots.duration_minutes.is_none() {
                Question::AskDuration {
                    content_type,
                    suggested: suggested_duration(content_type),
                }
            } else if self.slots.depth.is_none() {
                Question::AskDepth {
                    content_type,
                    suggested: suggested_depth(content_type),
                }
            } else {
                Question::AskChanges { content_type }
            }),
            State::Confirmation => Some(Question::Confirm {
                summary: summary(&self.slots),
            }),
            _ => None,
        }
    }

    /// The slot the current question asks for; pass it to the text extractor.
    pub fn expecting(&self) -> Option<SlotName> {
        self.current_question().and_then(|q| q.expecting())
    }

    /// The generation request, available once every required slot is known.
    pub fn generation_spec(&self) -> Option<GenerationSpec> {
        let slots = &self.slots;
        Some(GenerationSpec {
            content_type: slots.content_type,
            intent: slots.intent.clone()?,
            time_preference: slots.time_preference?,
            duration_minutes: slots.duration_minutes?,
            depth: slots.depth?,
            tone: slots.tone,
            voice: slots.voice.clone(),
            attempt: self.generation.attempts.max(1),
        })
    }

    /// Applies one event. On error nothing has changed.
    pub fn handle(&mut self, event: Event) -> Result<Vec<Effect>, TransitionError> {
        let kind = event.kind();
        let state = self.state;
        if state.is_terminal() {
            return Err(TransitionError::Ended { state, event: kind });
        }
        let not_allowed = TransitionError::NotAllowed { state, event: kind };
        match (state, event) {
            (_, Event::Cancel) => Ok(self.cancel()),
            (State::Generating, Event::Update(_)) => Err(not_allowed),
            (_, Event::Update(update)) => Ok(self.update(&update)),
            (State::PracticeDetails, Event::AcceptDefaults) => Ok(self.accept_defaults()),
            (State::Confirmation, Event::Confirm) => self.confirm().ok_or(not_allowed),
            (State::Confirmation, Event::Revise) => Ok(self.revise()),
            (State::Generating, Event::GenerationStarted { job_id }) => {
                if self.generation.job_id.is_some() {
                    return Err(not_allowed);
                }
                self.generation.job_id = Some(job_id);
                Ok(Vec::new())
            }
            (State::Generating, Event::GenerationSucceeded { content_id }) => {
                Ok(self.succeed(content_id))
            }
            (State::Generating, Event::GenerationFailed { reason }) => Ok(self.fail(reason)),
            _ => Err(not_allowed),
        }
    }

    fn update(&mut self, update: &SlotUpdate) -> Vec<Effect> {
        let mut effects = Vec::new();
        if update.is_empty() {
            // Stay put, even after a revision where every slot is already known.
            effects.push(Effect::Unrecognised);
            self.ask_current(&mut effects);
            return effects;
        }
        let changed = self.slots.apply(update);
        if !changed.is_empty() {
            effects.push(Effect::SlotsUpdated { slots: changed });
        }
        self.advance_to(State::for_slots(&self.slots), &mut effects);
        self.ask_current(&mut effects);
        effects
    }

    fn accept_defaults(&mut self) -> Vec<Effect> {
        let content_type = self.slots.content_type;
        let defaults = SlotUpdate {
            duration_minutes: self
                .slots
                .duration_minutes
                .or(Some(suggested_duration(content_type))),
            depth: self.slots.depth.or(Some(suggested_depth(content_type))),
            ..SlotUpdate::default()
        };
        let mut effects = Vec::new();
        let changed = self.slots.apply(&defaults);
        if !changed.is_empty() {
            effects.push(Effect::SlotsUpdated { slots: changed });
        }
        self.advance_to(State::for_slots(&self.slots), &mut effects);
        self.ask_current(&mut effects);
        effects
    }

    /// `None` when a required slot is missing (only possible for a
    /// conversation restored from a tampered record, which restore refuses).
    fn confirm(&mut self) -> Option<Vec<Effect>> {
        if self.generation.attempts >= MAX_GENERATION_ATTEMPTS {
            return None;
        }
        let mut spec = self.generation_spec()?;
        spec.attempt = self.generation.attempts + 1;
        self.generation.attempts = spec.attempt;
        self.generation.job_id = None;
        let mut effects = Vec::new();
        self.advance_to(State::Generating, &mut effects);
        effects.push(Effect::StartGeneration(spec));
        Some(effects)
    }

    fn revise(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.advance_to(State::PracticeDetails, &mut effects);
        self.ask_current(&mut effects);
        effects
    }

    fn succeed(&mut self, content_id: String) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.generation.content_id = Some(content_id.clone());
        self.advance_to(State::Completed, &mut effects);
        effects.push(Effect::Finished(Outcome::Completed { content_id }));
        effects
    }

    fn fail(&mut self, reason: String) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.generation.job_id = None;
        self.generation.last_failure = Some(reason.clone());
        let retries_left = MAX_GENERATION_ATTEMPTS.saturating_sub(self.generation.attempts);
        if retries_left == 0 {
            self.advance_to(State::Failed, &mut effects);
            effects.push(Effect::Finished(Outcome::Failed { reason }));
        } else {
            self.advance_to(State::Confirmation, &mut effects);
            effects.push(Effect::GenerationFailed {
                reason,
                retries_left,
            });
            self.ask_current(&mut effects);
        }
        effects
    }

    fn cancel(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state == State::Generating {
            effects.push(Effect::CancelGeneration);
        }
        self.advance_to(State::Cancelled, &mut effects);
        effects.push(Effect::Finished(Outcome::Cancelled));
        effects
    }

    fn advance_to(&mut self, next: State, effects: &mut Vec<Effect>) {
        if next != self.state {
            effects.push(Effect::StateChanged {
                from: self.state,
                to: next,
            });
            self.state = next;
        }
    }

    fn ask_current(&self, effects: &mut Vec<Effect>) {
        if let Some(question) = self.current_question() {
            effects.push(Effect::Ask(question));
        }
    }
}

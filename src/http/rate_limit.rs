//! Rate limits per route group and key (client IP, account, organisation, API key).
//!
//! Exceeding a limit answers 429 with `Retry-After` and the `RateLimit-*` headers of the IETF
//! draft; every limited response carries the remaining budget.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;
use crate::state::AppState;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Requests allowed per minute for each route group.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub groups: Vec<(String, u32)>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            groups: vec![
                ("auth_ip".into(), 30),
                ("account".into(), 600),
                ("org".into(), 3000),
                ("api_key".into(), 600),
                ("chat_session".into(), 30),
                ("visitor_ip".into(), 60),
            ],
        }
    }
}

impl RateLimitSettings {
    /// Parses `group=per_minute,…`, overriding the defaults.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut settings = Self::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (group, value) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("rate limit `{part}` is not group=per_minute"))?;
            let value: u32 = value.trim().parse()?;
            match settings.groups.iter_mut().find(|(g, _)| g == group.trim()) {
                Some(entry) => entry.1 = value,
                None => anyhow::bail!("unknown rate limit group `{group}`"),
            }
        }
        Ok(settings)
    }
}

pub struct RateLimits {
    groups: DashMap<String, (u32, Arc<Keyed>)>,
    clock: DefaultClock,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    pub retry_after: Option<Duration>,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let groups = DashMap::new();
        for (group, per_minute) in &settings.groups {
            if let Some(n) = NonZeroU32::new(*per_minute) {
                let limiter = RateLimiter::keyed(Quota::per_minute(n))
                    .with_middleware::<StateInformationMiddleware>();
                groups.insert(group.clone(), (*per_minute, Arc::new(limiter)));
            }
        }
        Self {
            groups,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one unit from `key`'s budget in `group`; unknown or disabled groups never limit.
    pub fn check(&self, group: &str, key: &str) -> Decision {
        let Some(entry) = self.groups.get(group) else {
            return Decision {
                limit: 0,
                remaining: u32::MAX,
                retry_after: None,
            };
        };
        let (limit, limiter) = (entry.0, entry.1.clone());
        drop(entry);
        match limiter.check_key(&key.to_string()) {
            Ok(snapshot) => Decision {
                limit,
                remaining: snapshot.remaining_burst_capacity(),
                retry_after: None,
            },
            Err(not_until) => Decision {
                limit,
                remaining: 0,
                retry_after: Some(not_until.wait_time_from(self.clock.now())),
            },
        }
    }

    /// Fails with a 429 problem when over the limit.
    pub fn enforce(&self, group: &str, key: &str) -> Result<Decision, ApiError> {
        let decision = self.check(group, key);
        match decision.retry_after {
            Some(wait) => Err(ApiError::rate_limited(wait.as_secs().max(1))),
            None => Ok(decision),
        }
    }

    /// Like [`Self::enforce`], and remembers the outcome for the response's `RateLimit-*` headers
    /// (see [`headers`]); for limits applied where the key is known, e.g. after authentication.
    pub fn enforce_recorded(&self, group: &str, key: &str) -> Result<(), ApiError> {
        let decision = self.check(group, key);
        record(&decision);
        match decision.retry_after {
            Some(wait) => Err(ApiError::rate_limited(wait.as_secs().max(1))),
            None => Ok(()),
        }
    }

    /// Forgets idle keys so memory stays bounded.
    pub fn prune(&self) {
        for entry in self.groups.iter() {
            entry.1.retain_recent();
        }
    }
}

fn headers_for(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    let reset = decision
        .retry_after
        .map(|d| d.as_secs().max(1))
        .unwrap_or(60);
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}

/// Per-IP limit for public authentication routes.
pub async fn per_ip_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = crate::http::client_ip::client_address(
        crate::http::client_ip::peer(request.extensions()),
        request.headers(),
        &state.settings.trusted_proxies,
    );
    let decision = state.rate_limits.check("auth_ip", &ip);
    if let Some(wait) = decision.retry_after {
        let mut response = ApiError::rate_limited(wait.as_secs().max(1)).into_response();
        headers_for(&mut response, &decision);
        return response;
    }
    let mut response = next.run(request).await;
    headers_for(&mut response, &decision);
    response
}

tokio::task_local! {
    /// The tightest limit decision taken while serving the current request.
    static RECORDED: std::cell::RefCell<Option<Decision>>;
}

/// Whether `a` leaves the client less room than `b`.
fn tighter(a: &Decision, b: &Decision) -> bool {
    match (a.retry_after.is_some(), b.retry_after.is_some()) {
        (true, false) => true,
        (false, true) => false,
        _ => a.remaining < b.remaining,
    }
}

fn record(decision: &Decision) {
    if decision.limit == 0 {
        return;
    }
    let _ = RECORDED.try_with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot
            .as_ref()
            .is_none_or(|current| tighter(decision, current))
        {
            *slot = Some(decision.clone());
        }
    });
}

/// Adds `RateLimit-*` headers for the limits checked while handling the request (per account, org
/// or API key, which are only known once the request is authenticated).
pub async fn headers(request: Request, next: Next) -> Response {
    let (mut response, decision) = RECORDED
        .scope(std::cell::RefCell::new(None), async move {
            let response = next.run(request).await;
            let decision = RECORDED.with(|slot| slot.borrow_mut().take());
            (response, decision)
        })
        .await;
    if let Some(decision) = decision {
        let already_tighter = response
            .headers()
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|remaining| remaining < decision.remaining);
        if !already_tighter {
            headers_for(&mut response, &decision);
        }
    }
    response
}

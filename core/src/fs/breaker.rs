//! Circuit breakers, one per remote endpoint (the Hub API, the CAS): after several attempts in a
//! row fail as if the endpoint were down (transport errors, timeouts, 5xx), new attempts are
//! refused for a short interval that doubles on every trip (up to `MAX_OPEN`), instead of
//! queueing thousands of requests that each wait out their timeouts. Refused attempts fail at
//! once and follow the retry policy, so reads fail fast and background work is kept for later.
//! The first attempt after the interval probes the endpoint; one success closes the breaker.

use std::time::Duration;

use crate::effect::{Effect, EffectFailure, FailureKind, StageOp, StreamOp};
use crate::time::Instant;

/// Attempts failing in a row that open the breaker.
const TRIP_AFTER: u32 = 5;
const FIRST_OPEN: Duration = Duration::from_secs(1);
const MAX_OPEN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Hub,
    Cas,
}

impl Endpoint {
    /// Which remote endpoint `effect` talks to (`None`: local work).
    pub fn of(effect: &Effect) -> Option<Endpoint> {
        match effect {
            Effect::HubGet { .. } | Effect::HubRange { .. } | Effect::HubPost { .. } => Some(Endpoint::Hub),
            Effect::CasRange { .. } | Effect::Upload { .. } => Some(Endpoint::Cas),
            Effect::Stream(StreamOp::Append { .. } | StreamOp::Finish { .. }) => Some(Endpoint::Cas),
            Effect::Stage(StageOp::Fill { .. }) => Some(Endpoint::Cas),
            Effect::Stream(StreamOp::Abort { .. }) | Effect::Stage(_) | Effect::Layer(_) => None,
        }
    }
}

/// Does `failure` look like the endpoint is down (rather than refusing this one request)?
pub(crate) fn is_outage(failure: &EffectFailure) -> bool {
    failure.kind == FailureKind::Transient && failure.status != Some(429)
}

#[derive(Debug, Default)]
pub(crate) struct Breaker {
    failures: u32,
    trips: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn is_open(&self, now: Instant) -> bool {
        self.open_until.is_some_and(|t| now < t)
    }

    pub fn on_success(&mut self) {
        *self = Breaker::default();
    }

    /// An attempt failed like an outage; returns true when this trips the breaker.
    pub fn on_outage(&mut self, now: Instant) -> bool {
        self.failures += 1;
        if self.failures < TRIP_AFTER {
            return false;
        }
        self.failures = 0;
        self.trips += 1;
        let open = FIRST_OPEN.saturating_mul(2u32.saturating_pow(self.trips - 1)).min(MAX_OPEN);
        self.open_until = Some(now.saturating_add(open));
        true
    }
}

#[derive(Debug, Default)]
pub(crate) struct Breakers {
    hub: Breaker,
    cas: Breaker,
}

impl Breakers {
    pub fn get(&mut self, endpoint: Endpoint) -> &mut Breaker {
        match endpoint {
            Endpoint::Hub => &mut self.hub,
            Endpoint::Cas => &mut self.cas,
        }
    }

    /// Should an attempt of `effect` be refused at `now`?
    pub fn refuses(&self, effect: &Effect, now: Instant) -> bool {
        match Endpoint::of(effect) {
            Some(Endpoint::Hub) => self.hub.is_open(now),
            Some(Endpoint::Cas) => self.cas.is_open(now),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_repeated_outages_and_doubles() {
        let mut b = Breaker::default();
        let t = Instant::ZERO;
        for _ in 0..TRIP_AFTER - 1 {
            assert!(!b.on_outage(t));
        }
        assert!(b.on_outage(t));
        assert!(b.is_open(Instant::from_nanos(999_999_999)));
        assert!(!b.is_open(Instant::from_nanos(1_000_000_000)));
        for _ in 0..TRIP_AFTER {
            b.on_outage(Instant::from_nanos(1_000_000_000));
        }
        assert!(b.is_open(Instant::from_nanos(2_999_999_999)), "the second trip lasts 2 s");
        b.on_success();
        assert!(!b.is_open(Instant::from_nanos(1_500_000_000)));
        assert!(!is_outage(&EffectFailure::from_status(429, "slow down")));
        assert!(is_outage(&EffectFailure::from_status(503, "down")));
    }
}

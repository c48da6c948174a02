//! Effects in flight: why each was started (`Purpose`, which decides what its completion does),
//! how many attempts it took, the queue of effects not yet handed out, the deadline of every
//! attempt, and the effects waiting out their retry delay.
//!
//! Every attempt gets its own `EffectId`, so the late completion of an attempt core stopped
//! waiting for (its deadline passed, a retry went out) is recognised and ignored. `origin`, the
//! id of the first attempt, names the logical effect for bookkeeping that spans attempts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::time::Duration;

use crate::effect::{Effect, EffectId};
use crate::inode::Ino;
use crate::request::RequestId;
use crate::time::Instant;

use super::stream::StreamStep;

/// Why an effect was started.
#[derive(Debug)]
pub(crate) enum Purpose {
    /// A step of mount-time resolution.
    Mount(super::mount::Step),
    ListPage {
        dir: Ino,
    },
    Fetch {
        ino: Ino,
        range: Range<u64>,
    },
    /// A staging-file operation for `ino`.
    Stage {
        ino: Ino,
        kind: StageKind,
    },
    /// A step on local copy number `copy` (of `ino`, for writes and publishing).
    Copy {
        ino: Ino,
        copy: u64,
        step: super::copies::CopyStep,
    },
    /// One upload session for several files: (file, generation uploaded) per source.
    Upload {
        files: Vec<(Ino, u64)>,
    },
    /// A step of `ino`'s upload stream.
    Stream {
        ino: Ino,
        step: StreamStep,
    },
    Commit,
    Poll,
    /// Recursive listing of a directory about to be renamed.
    Scan {
        dir: Ino,
    },
    /// Recursive listing of the whole mount, to find unknown identities.
    Search,
    /// An operation on the overlay's local layer.
    Layer(super::overlay::LayerStep),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StageKind {
    /// Create or fill the staging file before any other use.
    Prepare,
    /// Edit batch `n` (queued writes and truncations, applied in order).
    Edit(u64),
    /// A read of one's own writes, answering `req`.
    Read {
        req: RequestId,
    },
    Remove,
    /// A journal record written (`true`) or removed.
    Journal {
        written: bool,
    },
}

#[derive(Debug)]
pub(crate) struct Flight {
    pub purpose: Purpose,
    pub effect: Effect,
    pub attempts: u32,
    /// The first attempt's id.
    pub origin: EffectId,
    /// How long one attempt may take (`None`: as long as it takes).
    pub timeout: Option<Duration>,
    /// When the attempt in flight is given up.
    pub(super) deadline: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Flights {
    next: u64,
    flying: BTreeMap<EffectId, Flight>,
    /// Attempts to hand out, in order.
    queue: VecDeque<(EffectId, Effect)>,
    /// When each attempt in flight is given up.
    deadlines: BTreeSet<(Instant, EffectId)>,
    /// Effects waiting for their retry time (by time, then an order number).
    backoff: BTreeMap<(Instant, u64), Flight>,
    /// Attempts refused before they were sent (the effect's endpoint is considered down).
    refused: Vec<(EffectId, Flight)>,
}

impl Flights {
    fn next_id(&mut self) -> EffectId {
        self.next += 1;
        EffectId(self.next)
    }

    /// Start `effect` for `purpose` at `now`; with `refuse`, the attempt fails at once (see
    /// `take_refused`) instead of going out.
    pub fn start(
        &mut self,
        purpose: Purpose,
        effect: Effect,
        timeout: Option<Duration>,
        now: Instant,
        refuse: bool,
    ) -> EffectId {
        let id = self.next_id();
        let flight = Flight { purpose, effect, attempts: 1, origin: id, timeout, deadline: None };
        self.send(id, flight, now, refuse);
        id
    }

    fn send(&mut self, id: EffectId, mut flight: Flight, now: Instant, refuse: bool) {
        if refuse {
            self.refused.push((id, flight));
            return;
        }
        flight.deadline = flight.timeout.map(|t| now.saturating_add(t));
        if let Some(at) = flight.deadline {
            self.deadlines.insert((at, id));
        }
        self.queue.push_back((id, flight.effect.clone()));
        self.flying.insert(id, flight);
    }

    /// The completed attempt's flight (`None` for an unknown, stale or abandoned attempt).
    pub fn finish(&mut self, id: EffectId) -> Option<Flight> {
        let flight = self.flying.remove(&id)?;
        if let Some(at) = flight.deadline {
            self.deadlines.remove(&(at, id));
        }
        Some(flight)
    }

    /// Try `flight` again at `at`.
    pub fn retry_at(&mut self, mut flight: Flight, at: Instant) {
        flight.attempts += 1;
        self.next += 1;
        self.backoff.insert((at, self.next), flight);
    }

    /// Send every effect whose retry time has come, each as a new attempt (refused where
    /// `refuse` says its endpoint is down); returns how many.
    pub fn fire_retries(&mut self, now: Instant, refuse: impl Fn(&Effect) -> bool) -> u64 {
        let mut fired = 0;
        while let Some(entry) = self.backoff.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let flight = entry.remove();
            let id = self.next_id();
            let refused = refuse(&flight.effect);
            self.send(id, flight, now, refused);
            fired += 1;
        }
        fired
    }

    /// Attempts whose deadline has passed, no longer waited for.
    pub fn expired(&mut self, now: Instant) -> Vec<(EffectId, Flight)> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            if let Some(flight) = self.flying.remove(&id) {
                out.push((id, flight));
            }
        }
        out
    }

    pub fn take_refused(&mut self) -> Vec<(EffectId, Flight)> {
        std::mem::take(&mut self.refused)
    }

    /// The next retry or deadline.
    pub fn next_timer(&self) -> Option<Instant> {
        let retry = self.backoff.keys().next().map(|(at, _)| *at);
        let deadline = self.deadlines.first().map(|(at, _)| *at);
        [retry, deadline].into_iter().flatten().min()
    }

    pub fn poll(&mut self) -> Option<(EffectId, Effect)> {
        self.queue.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.flying.is_empty() && self.backoff.is_empty() && self.refused.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> Effect {
        Effect::HubGet { url: "u".into() }
    }

    #[test]
    fn attempts_get_new_ids_and_late_completions_are_stale() {
        let mut f = Flights::default();
        let t0 = Instant::ZERO;
        let a = f.start(Purpose::Poll, get(), Some(Duration::from_secs(1)), t0, false);
        assert_eq!(f.poll().map(|(id, _)| id), Some(a));
        assert!(f.expired(Instant::from_nanos(999_999_999)).is_empty());
        let (id, flight) = f.expired(Instant::from_nanos(1_000_000_000)).pop().expect("expired");
        assert_eq!(id, a);
        assert!(f.finish(a).is_none(), "a late completion of the abandoned attempt is ignored");
        f.retry_at(flight, Instant::from_nanos(2_000_000_000));
        assert_eq!(f.next_timer(), Some(Instant::from_nanos(2_000_000_000)));
        assert_eq!(f.fire_retries(Instant::from_nanos(2_000_000_000), |_| false), 1);
        let (b, _) = f.poll().expect("the retry goes out");
        assert_ne!(a, b);
        let flight = f.finish(b).expect("the new attempt is current");
        assert_eq!((flight.origin, flight.attempts), (a, 2));
        assert!(f.is_empty());
    }

    #[test]
    fn refused_attempts_are_not_sent() {
        let mut f = Flights::default();
        f.start(Purpose::Poll, get(), None, Instant::ZERO, true);
        assert!(f.poll().is_none());
        assert!(!f.is_empty());
        assert_eq!(f.take_refused().len(), 1);
        assert!(f.is_empty());
    }
}

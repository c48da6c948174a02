//! Effects in flight: why each was started (`Purpose`, which decides what its completion does),
//! how many attempts it took, the queue of effects not yet handed out, and the timers of
//! effects waiting to be retried.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;

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
}

#[derive(Debug)]
pub(crate) struct Flight {
    pub purpose: Purpose,
    pub effect: Effect,
    pub attempts: u32,
}

#[derive(Default)]
pub(crate) struct Flights {
    next: u64,
    flying: BTreeMap<EffectId, Flight>,
    /// Effects to hand out, in order.
    queue: VecDeque<(EffectId, Effect)>,
    /// Effects waiting for their retry time.
    retries: BTreeSet<(Instant, EffectId)>,
}

impl Flights {
    /// Start `effect` for `purpose`.
    pub fn start(&mut self, purpose: Purpose, effect: Effect) -> EffectId {
        self.next += 1;
        let id = EffectId(self.next);
        self.queue.push_back((id, effect.clone()));
        self.flying.insert(id, Flight { purpose, effect, attempts: 1 });
        id
    }

    /// The completed effect's flight (`None` for an unknown or stale id).
    pub fn finish(&mut self, id: EffectId) -> Option<Flight> {
        self.flying.remove(&id)
    }

    /// Try `flight` again at `at`.
    pub fn retry_at(&mut self, id: EffectId, mut flight: Flight, at: Instant) {
        flight.attempts += 1;
        self.retries.insert((at, id));
        self.flying.insert(id, flight);
    }

    /// Re-send every effect whose retry time has come; returns how many.
    pub fn fire_retries(&mut self, now: Instant) -> u64 {
        let mut fired = 0;
        while let Some(&(at, id)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.remove(&(at, id));
            if let Some(flight) = self.flying.get(&id) {
                self.queue.push_back((id, flight.effect.clone()));
                fired += 1;
            }
        }
        fired
    }

    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.first().map(|(at, _)| *at)
    }

    pub fn poll(&mut self) -> Option<(EffectId, Effect)> {
        self.queue.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.flying.is_empty()
    }
}

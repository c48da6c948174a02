//! The one table of requests that wait: what each waits for (`Wait`) and what happens when
//! that arrives (`Then`). A request is parked before it changes anything, so resuming it by
//! handling it again from the start is always correct; replies owed for work already done
//! (a write waiting for its staging file, a directory rename waiting for its commit) are parked as answers.
//!
//! Only bookkeeping: the filesystem wakes a `Wait` when it is satisfied (`Filesystem::wake`) or
//! fails it with an error (`Filesystem::fail_waiting`). A parked request may have a deadline
//! (reads waiting for bytes): past it, `expired` hands it back to be failed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::inode::Ino;
use crate::request::{Caller, Reply, Request, RequestId};
use crate::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Wait {
    /// The mount's source is resolved.
    Mounted,
    /// The directory's listing is loaded.
    Listing(Ino),
    /// The recursive listing of a directory about to be renamed is complete.
    Scan(Ino),
    /// The recursive listing that finds unknown identities is complete.
    Search,
    /// The file's staging file is created (or filled).
    Staging(Ino),
    /// Every write queued for the file's staging file is applied.
    Edits(Ino),
    /// Edit batch `n` of the file is applied (the replies to its writes wait for it).
    EditBatch(Ino, u64),
    /// The file's upload stream took what it had pending.
    Stream(Ino),
    /// More of the file's bytes arrived from the Hub.
    Bytes(Ino),
    /// The file's current content is uploaded (and its commit queued).
    Saved(Ino),
    /// Durability group `g` is committed.
    Committed(u64),
}

#[derive(Debug)]
pub(crate) enum Then {
    /// Handle the request again from the start.
    Redispatch(Caller, Request),
    /// Serve a read of `range` of `ino` from the read cache (it waits again if still missing,
    /// until `deadline`).
    ServeRead { ino: Ino, range: Range<u64>, deadline: Option<Instant> },
    /// Send this reply.
    Answer(Reply),
    /// Send `reply` once `ino`'s upload stream, if it holds too much, has caught up.
    AnswerAfterStream { ino: Ino, reply: Reply },
    /// `ino` is saved: send `reply` once its commit (all queued commits, for a directory) is
    /// in the bucket.
    AfterSave { ino: Ino, reply: Reply },
}

#[derive(Default)]
pub(crate) struct Parked {
    by_wait: BTreeMap<Wait, Vec<RequestId>>,
    entries: BTreeMap<RequestId, (Wait, Then)>,
    /// (deadline, request) of parked requests that have one.
    deadlines: BTreeSet<(Instant, RequestId)>,
}

impl Parked {
    pub fn park(&mut self, id: RequestId, wait: Wait, then: Then) {
        if let Then::ServeRead { deadline: Some(at), .. } = &then {
            self.deadlines.insert((*at, id));
        }
        self.by_wait.entry(wait).or_default().push(id);
        self.entries.insert(id, (wait, then));
    }

    /// Parked requests whose deadline has passed, taken out.
    pub fn expired(&mut self, now: Instant) -> Vec<(RequestId, Then)> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            let current =
                matches!(self.entries.get(&id), Some((_, Then::ServeRead { deadline: Some(d), .. })) if *d == at);
            if !current {
                continue;
            }
            if let Some((wait, then)) = self.entries.remove(&id) {
                if let Some(ids) = self.by_wait.get_mut(&wait) {
                    ids.retain(|i| *i != id);
                    if ids.is_empty() {
                        self.by_wait.remove(&wait);
                    }
                }
                out.push((id, then));
            }
        }
        out
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Everything waiting for `wait`, in the order it was parked.
    pub fn take(&mut self, wait: Wait) -> Vec<(RequestId, Then)> {
        self.take_if(wait, |_| true)
    }

    /// What waits for `wait` and satisfies `pred`; the rest keeps waiting.
    pub fn take_if(&mut self, wait: Wait, pred: impl Fn(&Then) -> bool) -> Vec<(RequestId, Then)> {
        let Some(ids) = self.by_wait.remove(&wait) else { return Vec::new() };
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        for id in ids {
            match self.entries.get(&id) {
                Some((_, then)) if pred(then) => {
                    if let Some((_, then)) = self.entries.remove(&id) {
                        if let Then::ServeRead { deadline: Some(at), .. } = &then {
                            self.deadlines.remove(&(*at, id));
                        }
                        taken.push((id, then));
                    }
                }
                Some(_) => kept.push(id),
                None => {}
            }
        }
        if !kept.is_empty() {
            self.by_wait.insert(wait, kept);
        }
        taken
    }

    pub fn is_waiting(&self, wait: Wait) -> bool {
        self.by_wait.get(&wait).is_some_and(|ids| !ids.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_in_order_and_selectively() {
        let mut p = Parked::default();
        let read = |a, b| Then::ServeRead { ino: 5, range: a..b, deadline: None };
        p.park(RequestId(2), Wait::Bytes(5), read(0, 10));
        p.park(RequestId(1), Wait::Bytes(5), read(20, 30));
        p.park(RequestId(3), Wait::Listing(1), Then::Answer(Reply::Empty));
        let first = p.take_if(Wait::Bytes(5), |t| matches!(t, Then::ServeRead { range, .. } if range.start == 0));
        assert_eq!(first.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![RequestId(2)]);
        assert!(p.is_waiting(Wait::Bytes(5)));
        assert_eq!(p.take(Wait::Bytes(5)).len(), 1);
        assert!(!p.is_waiting(Wait::Bytes(5)));
        assert_eq!(p.take(Wait::Listing(1)).len(), 1);
        assert!(p.take(Wait::Mounted).is_empty());
    }

    #[test]
    fn deadlines_expire_only_the_current_parking() {
        let mut p = Parked::default();
        let at = |n| Some(Instant::from_nanos(n));
        p.park(RequestId(1), Wait::Bytes(5), Then::ServeRead { ino: 5, range: 0..1, deadline: at(10) });
        p.park(RequestId(2), Wait::Bytes(5), Then::ServeRead { ino: 5, range: 0..1, deadline: at(20) });
        // Request 1 is served and parks again (a later read of the same id keeps its deadline).
        p.take_if(Wait::Bytes(5), |t| matches!(t, Then::ServeRead { deadline: Some(d), .. } if d.as_nanos() == 10));
        assert_eq!(p.next_deadline(), at(20), "a request taken out has no deadline left");
        assert!(p.expired(Instant::from_nanos(15)).is_empty(), "request 1 is no longer parked");
        let gone = p.expired(Instant::from_nanos(20));
        assert_eq!(gone.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![RequestId(2)]);
        assert!(!p.is_waiting(Wait::Bytes(5)));
    }
}

//! The bucket commit queue: what the bucket must still be told (add this hash at this path,
//! delete that path), one op per path (a newer op replaces an older one), sent as NDJSON
//! batches of at most `MAX_BATCH` ops, one batch in flight at a time so ops on a path are
//! never reordered. Requests waiting for durability (fsync, a directory rename) hold a group
//! that completes when all of its ops have been committed or one of them finally failed.
//!
//! Pure bookkeeping: it never decides when to send (the commit scheduler does) and does no IO.

use std::collections::{BTreeMap, BTreeSet};

use crate::collections::Map;
use crate::error::FsError;
use crate::hub::BatchOp;
use crate::inode::Ino;
use crate::time::Instant;

/// Ops per batch request, the Hub's limit.
pub const MAX_BATCH: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Add { xet_hash: String, size: u64, mtime_ms: i64 },
    Delete,
}

#[derive(Clone, Debug)]
struct Entry {
    op: Op,
    /// Durability groups waiting for this op.
    groups: Vec<u64>,
    /// The file whose content an add carries (for error reporting).
    ino: Option<Ino>,
    since: Instant,
}

#[derive(Debug)]
struct Group {
    remaining: usize,
    error: Option<FsError>,
}

/// A finished durability group: `Ok`, or the first error of its ops.
pub type Finished = (u64, Result<(), FsError>);

/// An op that left the queue refused: its path, the op, and the file its add carried.
pub type RefusedOp = (String, Op, Option<Ino>);

#[derive(Default)]
pub struct CommitQueue {
    pending: BTreeMap<String, Entry>,
    /// (queued since, path) of every pending op, oldest first.
    by_age: BTreeSet<(Instant, String)>,
    in_flight: Vec<(String, Entry)>,
    groups: Map<u64, Group>,
    next_group: u64,
}

impl CommitQueue {
    /// Queue `op` for `path`, replacing (and inheriting the waiters and age of) any older
    /// pending op.
    pub fn push(&mut self, path: String, op: Op, ino: Option<Ino>, now: Instant) {
        let (groups, since) = match self.pending.remove(&path) {
            Some(old) => (old.groups, old.since),
            None => {
                self.by_age.insert((now, path.clone()));
                (Vec::new(), now)
            }
        };
        self.pending.insert(path, Entry { op, groups, ino, since });
    }

    /// A durability group waiting for the latest op on each of `paths` (pending or in flight);
    /// `None` if there is nothing to wait for.
    pub fn wait(&mut self, paths: &[String]) -> Option<u64> {
        let id = self.next_group;
        let mut remaining = 0;
        for path in paths {
            let entry = match self.pending.get_mut(path) {
                Some(e) => Some(e),
                None => self.in_flight.iter_mut().find(|(p, _)| p == path).map(|(_, e)| e),
            };
            if let Some(e) = entry {
                e.groups.push(id);
                remaining += 1;
            }
        }
        if remaining == 0 {
            return None;
        }
        self.next_group += 1;
        self.groups.insert(id, Group { remaining, error: None });
        Some(id)
    }

    /// The op the bucket will see next for `path`, if any (pending, else in flight).
    pub fn latest(&self, path: &str) -> Option<&Op> {
        self.pending.get(path).or_else(|| self.in_flight.iter().find(|(p, _)| p == path).map(|(_, e)| e)).map(|e| &e.op)
    }

    /// Whether the latest ops (pending, else in flight) of paths starting with `prefix`
    /// include an add, and a delete.
    pub fn ops_under(&self, prefix: &str) -> (bool, bool) {
        let pending =
            self.pending.range(prefix.to_string()..).take_while(|(p, _)| p.starts_with(prefix)).map(|(_, e)| e);
        let flying = self
            .in_flight
            .iter()
            .filter(|(p, _)| p.starts_with(prefix) && !self.pending.contains_key(p))
            .map(|(_, e)| e);
        let (mut add, mut delete) = (false, false);
        for e in pending.chain(flying) {
            match e.op {
                Op::Add { .. } => add = true,
                Op::Delete => delete = true,
            }
        }
        (add, delete)
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    /// When the oldest pending op was queued.
    pub fn oldest(&self) -> Option<Instant> {
        self.by_age.first().map(|(t, _)| *t)
    }

    /// Move up to `limit` (at most `MAX_BATCH`) pending ops in flight and return them as batch
    /// lines.
    pub fn take_batch(&mut self, limit: usize) -> Vec<BatchOp> {
        debug_assert!(self.in_flight.is_empty());
        let paths: Vec<String> = self.pending.keys().take(limit.clamp(1, MAX_BATCH)).cloned().collect();
        let mut ops = Vec::with_capacity(paths.len());
        for path in paths {
            let entry = self.pending.remove(&path).expect("key just listed");
            self.by_age.remove(&(entry.since, path.clone()));
            ops.push(match &entry.op {
                Op::Add { xet_hash, mtime_ms, .. } => {
                    BatchOp::Add { path: path.clone(), xet_hash: xet_hash.clone(), mtime_ms: *mtime_ms }
                }
                Op::Delete => BatchOp::Delete { path: path.clone() },
            });
            self.in_flight.push((path, entry));
        }
        ops
    }

    /// Move the pending op of `path` in flight, alone, and return it as batch lines.
    pub fn take_path(&mut self, path: &str) -> Vec<BatchOp> {
        debug_assert!(self.in_flight.is_empty());
        let Some(entry) = self.pending.remove(path) else { return Vec::new() };
        self.by_age.remove(&(entry.since, path.to_string()));
        let line = match &entry.op {
            Op::Add { xet_hash, mtime_ms, .. } => {
                BatchOp::Add { path: path.to_string(), xet_hash: xet_hash.clone(), mtime_ms: *mtime_ms }
            }
            Op::Delete => BatchOp::Delete { path: path.to_string() },
        };
        self.in_flight.push((path.to_string(), entry));
        vec![line]
    }

    /// Every path with an op pending or in flight.
    pub fn paths(&self) -> Vec<String> {
        self.pending.keys().cloned().chain(self.in_flight.iter().map(|(p, _)| p.clone())).collect()
    }

    /// The batch in flight was committed: returns the finished groups and the files whose
    /// content it carried.
    pub fn on_committed(&mut self) -> (Vec<Finished>, Vec<Ino>) {
        let done = std::mem::take(&mut self.in_flight);
        let mut finished = Vec::new();
        let mut files = Vec::new();
        for (_, entry) in done {
            self.settle(&entry.groups, None, &mut finished);
            files.extend(entry.ino);
        }
        (finished, files)
    }

    /// Paths of the batch in flight.
    pub fn in_flight_paths(&self) -> Vec<&str> {
        self.in_flight.iter().map(|(p, _)| p.as_str()).collect()
    }

    /// The batch in flight finally failed: its groups get `err`; its ops go back to pending
    /// (unless a newer op replaced them) to be tried again later. Returns the finished groups
    /// and the files whose content was in the batch.
    pub fn on_failed(&mut self, err: &FsError, now: Instant) -> (Vec<Finished>, Vec<Ino>) {
        let done = std::mem::take(&mut self.in_flight);
        let mut finished = Vec::new();
        let mut files = Vec::new();
        for (path, mut entry) in done {
            self.settle(&entry.groups, Some(err), &mut finished);
            files.extend(entry.ino);
            entry.groups.clear();
            entry.since = now;
            if !self.pending.contains_key(&path) {
                self.by_age.insert((now, path.clone()));
                self.pending.insert(path, entry);
            }
        }
        (finished, files)
    }

    /// How many ops the batch in flight holds.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// The batch in flight is to be sent again in smaller pieces: its ops go back to pending
    /// as they were, waiters included (an op replaced meanwhile hands its waiters on).
    pub fn requeue_in_flight(&mut self) {
        for (path, entry) in std::mem::take(&mut self.in_flight) {
            match self.pending.get_mut(&path) {
                Some(newer) => newer.groups.extend(entry.groups),
                None => {
                    self.by_age.insert((entry.since, path.clone()));
                    self.pending.insert(path, entry);
                }
            }
        }
    }

    /// The one op in flight was refused for good: its waiters get `err` and it leaves the
    /// queue (unless a newer op replaced it). Returns the finished groups and the op.
    pub fn refuse_in_flight(&mut self, err: &FsError) -> (Vec<Finished>, Option<RefusedOp>) {
        let mut finished = Vec::new();
        let mut refused = None;
        for (path, entry) in std::mem::take(&mut self.in_flight) {
            self.settle(&entry.groups, Some(err), &mut finished);
            if !self.pending.contains_key(&path) {
                refused = Some((path, entry.op, entry.ino));
            }
        }
        (finished, refused)
    }

    fn settle(&mut self, groups: &[u64], err: Option<&FsError>, finished: &mut Vec<Finished>) {
        for id in groups {
            let Some(g) = self.groups.get_mut(id) else { continue };
            g.remaining -= 1;
            if let Some(e) = err {
                g.error.get_or_insert_with(|| e.clone());
            }
            // A failure finishes the group at once: its waiter need not wait for the rest.
            if g.remaining == 0 || g.error.is_some() {
                let g = self.groups.remove(id).expect("present");
                finished.push((*id, g.error.map_or(Ok(()), Err)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;

    fn add(h: &str) -> Op {
        Op::Add { xet_hash: h.into(), size: 1, mtime_ms: 0 }
    }

    #[test]
    fn newer_ops_replace_older_and_adds_lead() {
        let mut q = CommitQueue::default();
        let t = Instant::ZERO;
        q.push("a".into(), add("1"), None, t);
        q.push("b".into(), Op::Delete, None, Instant::from_nanos(5));
        q.push("a".into(), add("2"), None, Instant::from_nanos(9));
        assert_eq!(q.oldest(), Some(t));
        let g = q.wait(&["a".into(), "zzz".into()]).expect("waits for a");
        assert!(q.wait(&["nothing".into()]).is_none());
        let ops = q.take_batch(MAX_BATCH);
        assert_eq!(ops.len(), 2);
        assert_eq!(q.oldest(), None);
        assert!(ops.contains(&BatchOp::Add { path: "a".into(), xet_hash: "2".into(), mtime_ms: 0 }));
        assert_eq!(q.latest("b"), Some(&Op::Delete));
        assert_eq!(q.on_committed().0, vec![(g, Ok(()))]);
        assert!(q.is_empty());
    }

    #[test]
    fn failure_requeues_unless_superseded() {
        let mut q = CommitQueue::default();
        let t = Instant::ZERO;
        q.push("a".into(), add("1"), Some(4), t);
        q.push("b".into(), add("1"), None, t);
        let g = q.wait(&["a".into(), "b".into()]).unwrap();
        q.take_batch(MAX_BATCH);
        q.push("b".into(), Op::Delete, None, t);
        let err = FsError::new(Errno::Io, "x", "");
        let (finished, files) = q.on_failed(&err, Instant::from_nanos(3));
        assert_eq!(finished, vec![(g, Err(err))]);
        assert_eq!(files, vec![4]);
        assert_eq!(q.latest("a"), Some(&add("1")));
        assert_eq!(q.latest("b"), Some(&Op::Delete));
        assert_eq!(q.oldest(), Some(t));
    }

    #[test]
    fn a_batch_splits_and_a_refused_op_leaves_alone() {
        let mut q = CommitQueue::default();
        let t = Instant::ZERO;
        for p in ["a", "b", "c", "d"] {
            q.push(p.into(), add("1"), None, t);
        }
        let g = q.wait(&["a".into(), "d".into()]).unwrap();
        assert_eq!(q.take_batch(MAX_BATCH).len(), 4);
        q.requeue_in_flight();
        assert_eq!(q.take_batch(2).len(), 2, "sent again in halves");
        q.requeue_in_flight();
        assert_eq!(q.take_batch(1), vec![BatchOp::Add { path: "a".into(), xet_hash: "1".into(), mtime_ms: 0 }]);
        let err = FsError::new(Errno::Io, "refused", "");
        let (finished, refused) = q.refuse_in_flight(&err);
        assert_eq!(finished, vec![(g, Err(err))], "the waiter of a refused op learns it");
        assert_eq!(refused.map(|r| r.0), Some("a".to_string()));
        assert_eq!(q.take_batch(MAX_BATCH).len(), 3, "the others go on");
    }
}

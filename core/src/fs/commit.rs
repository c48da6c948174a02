//! The commit scheduler: when the queued ops go to the bucket (not while an upload whose add
//! should share the batch is running, unless the batch window ran out; not during the pause
//! after a failed batch unless an fsync asks), what a finished batch answers, and which paths a
//! commit changed while a listing was in flight (such a listing may show them as they were
//! before, so it is not trusted for them).
//!
//! An op the Hub refuses for good (a 4xx about the request, such as a path too long) fails
//! alone: a refused batch is sent again in halves until the op is found; that op's waiters get
//! the error, and it is kept aside and tried again alone after a pause that doubles up to an
//! hour (or at once when an fsync asks for it), while every other op goes on.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::collections::Map;
use crate::commits::{CommitQueue, Op, MAX_BATCH};
use crate::effect::Effect;
use crate::error::{FsError, LogLevel};
use crate::hub;
use crate::inode::Ino;
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::Wait;
use super::{Filesystem, Remote};

/// Longest pause between tries of a refused op.
const MAX_REFUSED_PAUSE: Duration = Duration::from_secs(3600);

/// An op the Hub refused for good, kept to be tried again alone.
#[derive(Debug)]
struct Refused {
    op: Op,
    ino: Option<Ino>,
    next_try: Instant,
}

pub(crate) struct CommitScheduler {
    pub queue: CommitQueue,
    /// No commit is started before this (after a batch finally failed).
    pub not_before: Option<Instant>,
    /// Count of commits that succeeded; a listing remembers the count when it started.
    epoch: u64,
    listing_epochs: Map<Ino, u64>,
    /// Paths committed while some listing was in flight, with the epoch of their last commit.
    committed: BTreeMap<String, u64>,
    /// Ops per batch: halved while a refused op is being found, doubled back on success.
    batch_limit: usize,
    refused: BTreeMap<String, Refused>,
    /// The last pause of each path refused since it was last committed.
    pauses: BTreeMap<String, Duration>,
}

impl Default for CommitScheduler {
    fn default() -> Self {
        CommitScheduler {
            queue: CommitQueue::default(),
            not_before: None,
            epoch: 0,
            listing_epochs: Map::default(),
            committed: BTreeMap::new(),
            batch_limit: MAX_BATCH,
            refused: BTreeMap::new(),
            pauses: BTreeMap::new(),
        }
    }
}

impl CommitScheduler {
    pub fn listing_started(&mut self, dir: Ino) {
        self.listing_epochs.insert(dir, self.epoch);
    }

    pub fn listing_ended(&mut self, dir: Ino) {
        self.listing_epochs.remove(&dir);
    }

    /// Was `path` committed after `dir`'s listing was requested?
    pub fn committed_during(&self, dir: Ino, path: &str) -> bool {
        let since = self.listing_epochs.get(&dir).copied().unwrap_or(self.epoch);
        self.committed.get(path).is_some_and(|epoch| *epoch > since)
    }

    /// Was any path under `prefix` committed after `dir`'s listing was requested?
    pub fn committed_under_during(&self, dir: Ino, prefix: &str) -> bool {
        let since = self.listing_epochs.get(&dir).copied().unwrap_or(self.epoch);
        self.committed.range(prefix.to_string()..).take_while(|(p, _)| p.starts_with(prefix)).any(|(_, e)| *e > since)
    }

    /// Does the mount hold a change of `path` the bucket does not have yet (queued, in flight,
    /// or refused and kept)?
    pub fn is_changing(&self, path: &str) -> bool {
        self.queue.latest(path).is_some() || self.refused.contains_key(path)
    }

    /// Anything not yet in the bucket?
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.refused.is_empty()
    }

    /// Is all that is left ops the Hub refused?
    pub fn only_refused_left(&self) -> bool {
        self.queue.is_empty() && !self.refused.is_empty()
    }

    /// Paths of the ops the Hub refused.
    pub fn is_refused(&self, path: &str) -> bool {
        self.refused.contains_key(path)
    }

    pub fn refused_paths(&self) -> Vec<&str> {
        self.refused.keys().map(String::as_str).collect()
    }

    /// Give every refused op one more try now (the unmount drain's last chance).
    pub fn retry_refused_now(&mut self, now: Instant) {
        for r in self.refused.values_mut() {
            r.next_try = now;
        }
    }

    /// Has every refused op been tried again since `retry_refused_now(t)`?
    pub fn refused_retried_since(&self, t: Instant) -> bool {
        self.refused.values().all(|r| r.next_try > t)
    }

    /// Put the refused op of `path` (every refused op, for `None`) back in the queue, to be
    /// sent with the next batch (an fsync wants to know what the Hub says now).
    pub fn requeue_refused(&mut self, path: Option<&str>, now: Instant) {
        let paths: Vec<String> = match path {
            Some(p) => self.refused.contains_key(p).then(|| p.to_string()).into_iter().collect(),
            None => self.refused.keys().cloned().collect(),
        };
        for path in paths {
            let Some(r) = self.refused.remove(&path) else { continue };
            if self.queue.latest(&path).is_none() {
                self.queue.push(path, r.op, r.ino, now);
            }
        }
    }

    /// When a commit may have to go out without any other input (the pause after a failure,
    /// the batch window, a refused op's next try). None while a batch is in flight: its
    /// completion comes first.
    pub fn next_wakeup(&self, batch_window: Duration) -> Option<Instant> {
        if self.queue.in_flight() {
            return None;
        }
        let refused = self.refused.values().map(|r| r.next_try).min();
        let queued = self.queue.has_pending().then(|| {
            let window = self.queue.oldest().map(|t| t.saturating_add(batch_window));
            self.not_before.or(window)
        });
        [refused, queued.flatten()].into_iter().flatten().min()
    }

    /// The batch in flight succeeded: remember its paths for listings that predate it.
    fn record_commit(&mut self) {
        self.epoch += 1;
        match self.listing_epochs.values().min().copied() {
            None => self.committed.clear(),
            Some(oldest) => {
                self.committed.retain(|_, epoch| *epoch > oldest);
                let epoch = self.epoch;
                for p in self.queue.in_flight_paths() {
                    self.committed.insert(p.to_string(), epoch);
                }
            }
        }
    }
}

impl Filesystem {
    /// Send the pending commit ops if none are in flight and nothing argues for waiting: no
    /// upload running or due (their adds should share the batch) unless the batch window ran
    /// out. A refused op whose pause is over goes first, alone.
    pub(crate) fn maybe_commit(&mut self, now: Instant) {
        if self.commits.queue.in_flight() {
            return;
        }
        if self.retry_refused(now) {
            return;
        }
        let c = &mut self.commits;
        if !c.queue.has_pending() {
            return;
        }
        // The pause after a failed batch holds during the drain too (an fsync ends it early).
        match c.not_before {
            Some(t) if t > now => return,
            Some(_) => c.not_before = None,
            None => {}
        }
        let window_over =
            c.queue.oldest().is_some_and(|t| t.saturating_add(self.cfg.writes.flush_max_batch_window) <= now);
        if !window_over && !self.drain.active && self.uploads_pending(now) {
            return;
        }
        let limit = self.commits.batch_limit;
        let ops = self.commits.queue.take_batch(limit);
        self.send_batch(ops);
    }

    fn send_batch(&mut self, ops: Vec<hub::BatchOp>) {
        let Remote::Bucket { id } = &self.remote else { return };
        let url = self.cfg.urls.bucket_batch(id);
        let body = Bytes::from(hub::batch_body(&ops));
        self.stats.commits += 1;
        self.start_effect(Purpose::Commit, Effect::HubPost { url, content_type: "application/x-ndjson", body });
    }

    /// Try a refused op again, alone, if its pause is over (and no newer op replaced it).
    fn retry_refused(&mut self, now: Instant) -> bool {
        let c = &mut self.commits;
        let Some(path) = c.refused.iter().find(|(_, r)| r.next_try <= now).map(|(p, _)| p.clone()) else {
            return false;
        };
        let newer = c.queue.latest(&path).is_some();
        c.requeue_refused(Some(&path), now);
        if newer {
            return false;
        }
        let ops = c.queue.take_path(&path);
        self.send_batch(ops);
        true
    }

    pub(crate) fn on_committed(&mut self, now: Instant) {
        self.commits.not_before = None;
        self.commits.record_commit();
        self.commits.batch_limit = (self.commits.batch_limit * 2).min(MAX_BATCH);
        let accepted: Vec<String> = self
            .commits
            .queue
            .in_flight_paths()
            .into_iter()
            .filter(|p| self.commits.pauses.contains_key(*p))
            .map(str::to_string)
            .collect();
        for path in accepted {
            self.commits.pauses.remove(&path);
            self.log(LogLevel::Warn, format!("the Hub now accepts {path}: committed"));
        }
        // A newer op of a refused path just landed: the refused (older) one must never follow it.
        let landed: Vec<String> = self.commits.queue.in_flight_paths().into_iter().map(str::to_string).collect();
        for path in landed {
            self.commits.refused.remove(&path);
        }
        let (finished, files) = self.commits.queue.on_committed();
        for ino in files {
            self.unreported.remove(&ino);
            let path = self.inodes.path(ino);
            if self.commits.queue.latest(&path).is_none() && !self.writes.get(ino).is_some_and(|ws| ws.is_dirty()) {
                self.bases.remove(&ino);
            }
        }
        for (group, result) in finished {
            match result {
                Ok(()) => self.wake(Wait::Committed(group), now),
                Err(e) => self.fail_waiting(Wait::Committed(group), &e),
            }
        }
        self.settle_journal();
    }

    /// The batch in flight failed for good. `refused`: the Hub refused what was sent (rather
    /// than being unreachable).
    pub(crate) fn on_commit_failed(&mut self, err: FsError, refused: bool, now: Instant) {
        if refused && self.commits.queue.in_flight_len() > 1 {
            // Find the op the Hub refuses: send the batch again in halves, at once.
            self.commits.batch_limit = (self.commits.queue.in_flight_len() / 2).max(1);
            self.commits.queue.requeue_in_flight();
            return;
        }
        if refused {
            return self.refuse(err, now);
        }
        let paths = self.commits.queue.in_flight_paths();
        let shown: Vec<&str> = paths.iter().take(5).copied().collect();
        let more =
            if paths.len() > shown.len() { format!(" and {} more", paths.len() - shown.len()) } else { String::new() };
        let detail = format!("committing {}{more} to the bucket: {}", shown.join(", "), err.detail);
        let err = FsError { detail, ..err };
        self.log(LogLevel::Warn, format!("{err}; changes kept, retrying"));
        let (finished, files) = self.commits.queue.on_failed(&err, now);
        let answered = !finished.is_empty();
        for (group, _) in finished {
            self.fail_waiting(Wait::Committed(group), &err);
        }
        if !answered {
            for ino in files {
                self.unreported.insert(ino, err.clone());
            }
        }
        self.commits.not_before = Some(now.saturating_add(self.cfg.writes.commit_retry));
    }

    /// The one op in flight is refused: it fails alone and is kept aside for another try.
    fn refuse(&mut self, err: FsError, now: Instant) {
        let first_pause = self.cfg.writes.commit_retry;
        let shown = self.commits.queue.in_flight_paths().concat();
        let (finished, refused) = self.commits.queue.refuse_in_flight(&err);
        let err = FsError { detail: format!("the Hub refuses {shown}: {}", err.detail), ..err };
        let answered = !finished.is_empty();
        for (group, _) in finished {
            self.fail_waiting(Wait::Committed(group), &err);
        }
        // A newer op replaced the refused one: that one is tried in its turn.
        let Some((path, op, ino)) = refused else { return };
        // The refusal is reported once: to the waiters, else to the file's next close or fsync
        // (a background retry refused again is not news).
        let again = self.commits.pauses.contains_key(&path);
        if let Some(ino) = ino {
            if answered {
                self.unreported.remove(&ino);
            } else if !again {
                self.unreported.insert(ino, err.clone());
            }
        }
        let pause = self.commits.pauses.get(&path).map_or(first_pause, |p| (*p * 2).min(MAX_REFUSED_PAUSE));
        self.commits.pauses.insert(path.clone(), pause);
        self.log(LogLevel::Warn, format!("{err}; kept in the mount, tried again in {pause:?}"));
        self.commits.refused.insert(path, Refused { op, ino, next_try: now.saturating_add(pause) });
    }
}

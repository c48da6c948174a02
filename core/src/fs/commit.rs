//! The commit scheduler: when the queued ops go to the bucket (not while an upload whose add
//! should share the batch is running, unless the batch window ran out; not during the pause
//! after a failed batch unless an fsync or the drain asks), what a finished batch answers, and
//! which paths a commit changed while a listing was in flight (such a listing may show them as
//! they were before, so it is not trusted for them).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::collections::Map;
use crate::commits::CommitQueue;
use crate::effect::Effect;
use crate::error::{FsError, LogLevel};
use crate::hub;
use crate::inode::Ino;
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::Wait;
use super::{Filesystem, Remote};

#[derive(Default)]
pub(crate) struct CommitScheduler {
    pub queue: CommitQueue,
    /// No commit is started before this (after a batch finally failed).
    pub not_before: Option<Instant>,
    /// Count of commits that succeeded; a listing remembers the count when it started.
    epoch: u64,
    listing_epochs: Map<Ino, u64>,
    /// Paths committed while some listing was in flight, with the epoch of their last commit.
    committed: BTreeMap<String, u64>,
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

    /// When a commit may have to go out without any other input (the pause after a failure,
    /// or the batch window). None while a batch is in flight: its completion comes first.
    pub fn next_wakeup(&self, batch_window: std::time::Duration) -> Option<Instant> {
        if self.queue.in_flight() || !self.queue.has_pending() {
            return None;
        }
        let window = self.queue.oldest().map(|t| t.saturating_add(batch_window));
        self.not_before.or(window)
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
    /// out.
    pub(crate) fn maybe_commit(&mut self, now: Instant) {
        let c = &mut self.commits;
        if c.queue.in_flight() || !c.queue.has_pending() {
            return;
        }
        // The pause after a failed batch holds during the drain too (an fsync ends it early).
        let draining = self.drain.active;
        match c.not_before {
            Some(t) if t > now => return,
            Some(_) => c.not_before = None,
            None => {}
        }
        let window_over =
            c.queue.oldest().is_some_and(|t| t.saturating_add(self.cfg.writes.flush_max_batch_window) <= now);
        if !window_over && !draining && self.uploads_pending(now) {
            return;
        }
        let Remote::Bucket { id } = &self.remote else { return };
        let url = self.cfg.urls.bucket_batch(id);
        let ops = self.commits.queue.take_batch();
        let body = Bytes::from(hub::batch_body(&ops));
        self.stats.commits += 1;
        self.start_effect(Purpose::Commit, Effect::HubPost { url, content_type: "application/x-ndjson", body });
    }

    pub(crate) fn on_committed(&mut self, now: Instant) {
        self.commits.not_before = None;
        self.commits.record_commit();
        let (finished, files) = self.commits.queue.on_committed();
        for ino in files {
            self.unreported.remove(&ino);
        }
        for (group, result) in finished {
            match result {
                Ok(()) => self.wake(Wait::Committed(group), now),
                Err(e) => self.fail_waiting(Wait::Committed(group), &e),
            }
        }
    }

    pub(crate) fn on_commit_failed(&mut self, err: FsError, now: Instant) {
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
}

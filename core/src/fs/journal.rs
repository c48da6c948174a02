//! The write journal: a record on local disk for every file whose staged content the bucket
//! does not have yet, naming its bucket path, the staging file holding that content and the
//! remote version it started from. Together with the staging files it lets the next mount of
//! the same bucket (same cache dir) commit what a crashed or killed mount had acknowledged.
//!
//! - The record is written before the first edit reaches a staging file (edits wait for it),
//!   so an acknowledged write is always in a staging file that a record names.
//! - It is written again when the file moves (rename, its directory's rename) or its content
//!   moves to a new staging file; one write per record at a time, the newest state last.
//! - Staging files of a journaled file outlive its write state; the record and all of them go
//!   once the bucket has the content (nothing dirty, nothing queued for its path) or the file
//!   is removed.
//!
//! Files still in memory (streaming mode, before they spill) are not journaled: a streaming
//! close returns once the file is committed, so what close acknowledged is in the bucket.

use bytes::Bytes;

use crate::collections::Map;
use crate::effect::StageOp;
use crate::error::LogLevel;
use crate::hub::ContentSource;
use crate::inode::{Ino, NodeKind};
use crate::time::Instant;

use super::flights::StageKind;
use super::writebuf::Body;
use super::Filesystem;

#[derive(Default)]
pub(crate) struct Journal {
    entries: Map<Ino, Entry>,
}

#[derive(Debug)]
struct Entry {
    record: String,
    /// The remote hash the local content started from (`None`: the bucket had no such file).
    base: Option<String>,
    /// Staging files that hold (or held) this content; the last is the current one.
    stagings: Vec<String>,
    /// Bytes of the staging files kept after their write state went.
    kept_bytes: u64,
    /// The staging file the record on disk names, once written.
    durable: Option<String>,
    /// The staging file named by the record being written.
    writing: Option<String>,
    /// Changed since the record being written was built: write it again after.
    stale: bool,
}

impl Journal {
    /// Whether `ino`'s edits to `staging` may be applied: the record names that file.
    pub fn allows(&self, ino: Ino, staging: &str) -> bool {
        self.entries.get(&ino).is_some_and(|e| e.durable.as_deref() == Some(staging))
    }
}

/// The body of a record: one JSON object.
fn record_body(path: &str, staging: &str, base: Option<&str>) -> Bytes {
    let file = staging.rsplit('/').next().unwrap_or(staging);
    Bytes::from(serde_json::json!({ "path": path, "staging": file, "base": base }).to_string())
}

impl Filesystem {
    /// Before edits reach `ino`'s staging file: make sure a record names it. True when the
    /// edits may go now; otherwise they go once the record is written.
    pub(crate) fn journal_ready(&mut self, ino: Ino) -> bool {
        let Some(ws) = self.writes.get(ino) else { return true };
        if !matches!(ws.body, Body::Staged) || self.journal.allows(ino, &ws.staging) {
            return true;
        }
        // A removed file (still open) never goes to the bucket: nothing to recover.
        if self.inodes.get(ino).is_none_or(|n| n.detached) {
            return true;
        }
        let staging = ws.staging.clone();
        if !self.journal.entries.contains_key(&ino) {
            let base = self.inodes.get(ino).filter(|n| !n.local).and_then(|n| match &n.kind {
                NodeKind::File { source: ContentSource::Xet { hash }, .. } => Some(hash.clone()),
                _ => None,
            });
            self.next_stage += 1;
            let record = format!("{}{ino:016x}-{}.record", self.cfg.writes.staging_dir, self.next_stage);
            let entry =
                Entry { record, base, stagings: Vec::new(), kept_bytes: 0, durable: None, writing: None, stale: false };
            self.journal.entries.insert(ino, entry);
        }
        let Some(e) = self.journal.entries.get_mut(&ino) else { return true };
        if e.stagings.last() != Some(&staging) {
            e.stagings.push(staging.clone());
        }
        if e.writing.as_ref() != Some(&staging) {
            self.write_record(ino);
        }
        false
    }

    /// `ino` (a file or directory) moved: records of the files in it name their new paths.
    pub(crate) fn journal_moved(&mut self, moved: Ino) {
        let within: Vec<Ino> =
            self.journal.entries.keys().copied().filter(|f| self.inodes.is_within(*f, moved)).collect();
        for ino in within {
            self.write_record(ino);
        }
    }

    fn write_record(&mut self, ino: Ino) {
        let path = self.inodes.path(ino);
        let Some(e) = self.journal.entries.get_mut(&ino) else { return };
        if e.writing.is_some() {
            e.stale = true;
            return;
        }
        let Some(staging) = e.stagings.last().cloned() else { return };
        let body = Some(record_body(&path, &staging, e.base.as_deref()));
        e.writing = Some(staging);
        e.stale = false;
        let op = StageOp::Journal { record: e.record.clone(), body, remove: Vec::new() };
        self.stage(ino, StageKind::Journal { written: true }, op);
    }

    pub(crate) fn on_journaled(&mut self, ino: Ino, written: bool, error: Option<String>, now: Instant) {
        if let Some(error) = error {
            self.log(LogLevel::Warn, format!("{}: journal: {error}", self.inodes.path(ino)));
        }
        if !written {
            return;
        }
        let Some(e) = self.journal.entries.get_mut(&ino) else { return };
        // A record that could not be written does not hold the file's writes back: they go
        // on (the warning says the file is not journaled).
        e.durable = e.writing.take();
        if e.stale {
            self.write_record(ino);
        } else if !self.journal_pending(ino) {
            self.end_record(ino);
        }
        self.send_edits(ino);
        self.maybe_drop_write_state(ino, now);
    }

    /// The staging file (of `bytes`) of a write state being dropped: kept while the journal
    /// needs it.
    pub(crate) fn journal_keeps(&mut self, ino: Ino, bytes: u64) -> bool {
        match self.journal.entries.get_mut(&ino) {
            Some(e) => {
                e.kept_bytes += bytes;
                true
            }
            None => false,
        }
    }

    /// Bytes in staging files: those of write states, and those the journal keeps.
    pub(crate) fn staging_bytes(&self) -> u64 {
        let live: u64 = self.writes.staged().map(|ino| self.file_size(ino)).sum();
        live + self.journal.entries.values().map(|e| e.kept_bytes).sum::<u64>()
    }

    /// Records whose content the bucket now has (or that no longer matter) go, with their
    /// staging files (the live one stays with its write state).
    pub(crate) fn settle_journal(&mut self) {
        let done: Vec<Ino> = self
            .journal
            .entries
            .iter()
            .filter(|(ino, e)| e.writing.is_none() && !self.journal_pending(**ino))
            .map(|(ino, _)| *ino)
            .collect();
        for ino in done {
            self.end_record(ino);
        }
    }

    /// `ino`'s record goes if the bucket has its content.
    pub(crate) fn settle_record(&mut self, ino: Ino) {
        match self.journal.entries.get(&ino) {
            Some(e) if e.writing.is_none() && !self.journal_pending(ino) => self.end_record(ino),
            _ => {}
        }
    }

    /// The file was removed: its record goes (once no write of it is in flight).
    pub(crate) fn journal_forget(&mut self, ino: Ino) {
        match self.journal.entries.get(&ino) {
            Some(e) if e.writing.is_none() => self.end_record(ino),
            _ => {}
        }
    }

    /// Is content of `ino` not yet in the bucket?
    fn journal_pending(&self, ino: Ino) -> bool {
        let Some(node) = self.inodes.get(ino) else { return false };
        if node.detached {
            return false;
        }
        let path = self.inodes.path(ino);
        self.writes.get(ino).is_some_and(|ws| ws.is_dirty() || !ws.edits_applied())
            || self.commits.queue.latest(&path).is_some()
            || self.commits.is_refused(&path)
    }

    fn end_record(&mut self, ino: Ino) {
        let Some(e) = self.journal.entries.remove(&ino) else { return };
        let live = self.writes.get(ino).map(|ws| ws.staging.clone());
        let remove = e.stagings.into_iter().filter(|s| Some(s) != live.as_ref()).collect();
        let op = StageOp::Journal { record: e.record, body: None, remove };
        self.stage(ino, StageKind::Journal { written: false }, op);
    }
}

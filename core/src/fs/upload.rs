//! The upload scheduler: when each dirty file is due (after a close, its debounce, an fsync, a
//! retry delay), which due files wait for something first (their staging edits, a running
//! upload, their stream), and batching: due files share one xet-core session (up to
//! `UPLOAD_BATCH_FILES` files or `UPLOAD_BATCH_BYTES`), at most `MAX_UPLOADS` sessions at a
//! time. Due work is found through its timers and queues, never by scanning every file.

use std::collections::BTreeSet;

use crate::collections::{Map, Set};
use crate::commits::Op;
use crate::config::WriteMode;
use crate::effect::{Effect, UploadSource};
use crate::error::{FsError, LogLevel};
use crate::hub::{self, ContentSource};
use crate::inode::{Ino, NodeKind};
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::Wait;
use super::writebuf::{zeros, Body};
use super::Filesystem;

/// Upload effects in flight at most (each holds an xet-core session and its buffers).
const MAX_UPLOADS: usize = 4;
/// Files per upload session at most.
const UPLOAD_BATCH_FILES: usize = 256;
/// Bytes per upload session, above which a batch is closed (a larger file goes alone).
const UPLOAD_BATCH_BYTES: u64 = 64 << 20;

#[derive(Default)]
pub(crate) struct UploadScheduler {
    due: BTreeSet<(Instant, Ino)>,
    due_at: Map<Ino, Instant>,
    /// Due files waiting for something else first; reconsidered when it happens.
    blocked: Set<Ino>,
    in_flight: usize,
}

impl UploadScheduler {
    /// `ino` is due at `at` (replacing any earlier due time).
    pub fn schedule(&mut self, ino: Ino, at: Instant) {
        self.unschedule(ino);
        self.due.insert((at, ino));
        self.due_at.insert(ino, at);
    }

    pub fn unschedule(&mut self, ino: Ino) {
        if let Some(at) = self.due_at.remove(&ino) {
            self.due.remove(&(at, ino));
        }
        self.blocked.remove(&ino);
    }

    /// When the next due file is due (none while every upload slot is taken: a completion
    /// comes first).
    pub fn next_due(&self) -> Option<Instant> {
        if self.in_flight >= MAX_UPLOADS {
            return None;
        }
        self.due.first().map(|(at, _)| *at)
    }

    /// A file is due now or waits for its turn.
    fn pending_now(&self, now: Instant) -> bool {
        !self.blocked.is_empty() || self.due.first().is_some_and(|(at, _)| *at <= now)
    }

    pub fn ended(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

impl Filesystem {
    /// When an advanced-mode file should be uploaded after activity at `now`: the debounce,
    /// capped by the batch window since it became dirty.
    pub(crate) fn debounced_due(&self, ino: Ino, now: Instant) -> Instant {
        let w = &self.cfg.writes;
        let debounced = now.saturating_add(w.flush_debounce);
        match self.writes.get(ino).and_then(|ws| ws.dirty_since) {
            Some(since) => debounced.min(since.saturating_add(w.flush_max_batch_window)),
            None => debounced,
        }
    }

    /// `ino` is due at `at` (streaming closes, fsync: now; advanced closes: debounced).
    pub(crate) fn upload_due(&mut self, ino: Ino, at: Instant) {
        self.uploads.schedule(ino, at);
    }

    /// Whatever kept `ino` from uploading may have cleared: if it was waiting, it is due now.
    pub(crate) fn reconsider_upload(&mut self, ino: Ino, now: Instant) {
        if self.uploads.blocked.remove(&ino) {
            self.uploads.schedule(ino, now);
        }
    }

    /// Unmounting: every dirty file is due now.
    pub(crate) fn all_due(&mut self, now: Instant) {
        for ino in self.writes.dirty() {
            self.uploads.schedule(ino, now);
        }
    }

    /// Start the uploads that are due (a few sessions, files batched).
    pub(crate) fn start_due_uploads(&mut self, now: Instant) {
        let mut batch: Vec<(Ino, u64)> = Vec::new();
        let mut sources = Vec::new();
        let mut batch_bytes = 0u64;
        while let Some(&(at, ino)) = self.uploads.due.first() {
            if at > now || self.uploads.in_flight + usize::from(!batch.is_empty()) >= MAX_UPLOADS {
                break;
            }
            self.uploads.due.remove(&(at, ino));
            self.uploads.due_at.remove(&ino);
            if self.inodes.get(ino).is_none_or(|n| n.detached) {
                self.forget_changes(ino, now);
                continue;
            }
            let Some(ws) = self.writes.get(ino) else { continue };
            if !ws.needs_upload() {
                if ws.is_uploading() {
                    // Written to while an upload ran: due again when that one ends.
                    self.uploads.blocked.insert(ino);
                }
                continue;
            }
            if !ws.ready || !ws.edits_applied() {
                self.uploads.blocked.insert(ino);
                continue;
            }
            let size = self.file_size(ino);
            if size == 0 {
                // The empty file has a fixed hash and nothing to upload.
                if let Some(generation) = self.writes.start_upload(ino) {
                    self.on_uploaded(ino, generation, hub::EMPTY_FILE_HASH.to_string(), 0, now);
                }
                continue;
            }
            // A streamed file only needs its stream finished, once everything is appended.
            match self.stream_ready(ino) {
                Some(true) => {
                    self.finish_stream(ino);
                    continue;
                }
                Some(false) => {
                    self.uploads.blocked.insert(ino);
                    continue;
                }
                None => {}
            }
            let Some(generation) = self.writes.start_upload(ino) else { continue };
            let Some(ws) = self.writes.get(ino) else { continue };
            sources.push(match &ws.body {
                // The file's size may run past what was written: zeros follow.
                Body::Memory { chunks, len } => {
                    UploadSource::Memory(chunks.iter().cloned().chain(zeros(size.saturating_sub(*len))).collect())
                }
                Body::Staged => UploadSource::File(ws.staging.clone()),
            });
            batch.push((ino, generation));
            batch_bytes += size;
            if batch.len() >= UPLOAD_BATCH_FILES || batch_bytes >= UPLOAD_BATCH_BYTES {
                self.start_upload(std::mem::take(&mut batch), std::mem::take(&mut sources));
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            self.start_upload(batch, sources);
        }
    }

    fn start_upload(&mut self, files: Vec<(Ino, u64)>, sources: Vec<UploadSource>) {
        self.stats.uploads += files.len() as u64;
        self.uploads.in_flight += 1;
        let bytes = files.iter().map(|(ino, _)| self.file_size(*ino)).sum();
        let timeout = Some(self.transfer_timeout(bytes));
        let token_url = self.write_token.clone();
        self.start_effect_timed(Purpose::Upload { files }, Effect::Upload { token_url, sources }, timeout);
    }

    /// Is an upload running, or a file due now, whose commit op should share the next batch?
    pub(crate) fn uploads_pending(&self, now: Instant) -> bool {
        self.writes.uploading() > 0 || self.uploads.pending_now(now)
    }

    pub(crate) fn on_uploaded(&mut self, ino: Ino, generation: u64, xet_hash: String, size: u64, now: Instant) {
        if !self.writes.has(ino) {
            return;
        }
        self.writes.upload_ended(ino);
        if self.inodes.get(ino).is_none_or(|n| n.detached) {
            return self.forget_changes(ino, now);
        }
        let current = self.writes.get(ino).map_or(generation, |ws| ws.generation());
        if generation != current {
            // Written to while uploading: that snapshot is already stale; upload again when it
            // was due meanwhile or someone is waiting, otherwise when the file is next closed.
            let was_due = self.uploads.blocked.remove(&ino);
            let writers = self.writes.get(ino).map_or(0, |ws| ws.writers);
            if was_due || self.parked.is_waiting(Wait::Saved(ino)) || writers == 0 {
                self.uploads.schedule(ino, now);
            }
            return;
        }
        self.uploads.unschedule(ino);
        self.writes.mark_saved(ino, generation);
        self.stats.bytes_uploaded += size;
        let unchanged = self.inodes.get(ino).is_some_and(|node| {
            !node.local
                && matches!(&node.kind, NodeKind::File { source: ContentSource::Xet { hash }, .. } if *hash == xet_hash)
        });
        let mtime_ms = self.commit_mtime_ms(ino, now);
        self.set_content(ino, size, ContentSource::Xet { hash: xet_hash.clone() });
        let path = self.inodes.path(ino);
        if !unchanged || self.commits.queue.latest(&path).is_some() {
            self.commits.queue.push(path, Op::Add { xet_hash, size, mtime_ms }, Some(ino), now);
            if let Some(n) = self.inodes.get_mut(ino) {
                n.local = false;
            }
        }
        self.wake(Wait::Saved(ino), now);
        self.settle_record(ino);
        self.maybe_drop_write_state(ino, now);
    }

    pub(crate) fn on_upload_failed(&mut self, files: Vec<(Ino, u64)>, err: FsError, now: Instant) {
        self.uploads.ended();
        for (ino, _) in files {
            self.upload_failed(ino, err.clone(), now);
        }
    }

    /// `ino`'s upload failed for good: it is kept and tried again later; whoever waits for it
    /// gets the error, or else the next fsync or close does.
    pub(crate) fn upload_failed(&mut self, ino: Ino, err: FsError, now: Instant) {
        if !self.writes.has(ino) {
            return;
        }
        let path = self.inodes.path(ino);
        self.stats.upload_failures += 1;
        self.writes.upload_ended(ino);
        self.uploads.schedule(ino, now.saturating_add(self.cfg.writes.commit_retry));
        let err = FsError { detail: format!("uploading {path}: {}", err.detail), ..err };
        self.log(LogLevel::Warn, format!("{err}; kept locally, retrying"));
        if self.parked.is_waiting(Wait::Saved(ino)) {
            self.fail_waiting(Wait::Saved(ino), &err);
        } else {
            self.unreported.insert(ino, err);
        }
    }

    fn set_content(&mut self, ino: Ino, new_size: u64, new_source: ContentSource) {
        if let Some(NodeKind::File { size, source }) = self.inodes.get_mut(ino).map(|n| &mut n.kind) {
            *size = new_size;
            *source = new_source;
        }
        self.content_changed(ino);
    }

    /// Which write mode is streaming (closes wait for the commit).
    pub(crate) fn streaming(&self) -> bool {
        self.cfg.writes.mode == WriteMode::Streaming
    }
}

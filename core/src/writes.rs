//! Writing files: per-file write state (content in memory or in a staging file), writes,
//! truncation, reads of one's own writes, and the way from a close or fsync to an upload and a
//! queued commit. Upload and commit scheduling (debounce, batch window, retry) is decided here;
//! the bytes move in effects.
//!
//! A file's `generation` counts its modifications; `saved` is the generation whose content was
//! uploaded and queued for commit. Anything newer is dirty and is never dropped: failed
//! uploads are retried until they succeed or the file is deleted.

use bytes::{Bytes, BytesMut};

use crate::commits::Op;
use crate::config::WriteMode;
use crate::effect::{Completion, Effect, StageEdit, StageOp, UploadSource};
use crate::error::{Errno, FsError, LogLevel};
use crate::fs::{Filesystem, Purpose, StageKind};
use crate::hub::{self, ContentSource};
use crate::inode::{Ino, NodeKind};
use crate::request::{Reply, Request, RequestId};
use crate::stream::Stream;
use crate::time::Instant;

/// Written bytes a file may hold in memory waiting for its staging file before a write's
/// reply waits for the disk (write-behind budget).
const WRITE_BEHIND_BYTES: u64 = 32 << 20;
/// Upload effects in flight at most (each holds an xet-core session and its buffers).
const MAX_UPLOADS: usize = 4;
/// Files per upload session at most.
const UPLOAD_BATCH_FILES: usize = 256;
/// Bytes per upload session, above which a batch is closed (a larger file goes alone).
const UPLOAD_BATCH_BYTES: u64 = 64 << 20;

#[derive(Debug)]
pub(crate) enum Body {
    /// Streaming mode, until the file outgrows the memory limit.
    Memory(Vec<Bytes>),
    /// The staging file holds the content.
    Staged,
}

#[derive(Debug)]
pub(crate) struct WriteState {
    pub body: Body,
    pub staging: String,
    /// The staging file has been created or filled (memory bodies are always ready).
    pub ready: bool,
    pub generation: u64,
    pub saved: u64,
    pub uploading: Option<u64>,
    /// Writes and truncations not yet sent to the staging file, in order.
    pub queue: Vec<StageEdit>,
    /// Replies owed for queued writes past the write-behind budget, sent when applied.
    pub queue_replies: Vec<(RequestId, u32)>,
    pub queued_bytes: u64,
    /// The batch of edits being applied (its owed replies), at most one at a time so edits
    /// apply in order.
    pub edit_in_flight: Option<(Vec<(RequestId, u32)>, u64)>,
    /// Staging reads in flight; the staging file is kept until they are done.
    pub reads: u32,
    /// Requests waiting for the staging file to be ready.
    pub parked: Vec<(RequestId, Request)>,
    /// Requests waiting for the current content to be saved (link of a dirty file).
    pub after_save: Vec<(RequestId, Request)>,
    /// fsync / streaming close waiting for upload and commit.
    pub sync_waiters: Vec<RequestId>,
    /// Open write handles.
    pub writers: u32,
    /// When to upload next (set by close, fsync, a failed upload's retry).
    pub due: Option<Instant>,
    pub dirty_since: Option<Instant>,
    /// Streaming mode: the upload fed while writing.
    pub stream: Stream,
}

impl WriteState {
    pub fn is_dirty(&self) -> bool {
        self.generation > self.saved || self.uploading.is_some()
    }

    /// Every acknowledged write has reached the staging file.
    fn edits_applied(&self) -> bool {
        self.queue.is_empty() && self.edit_in_flight.is_none()
    }

    /// Bytes of written data held in memory until the staging file has it.
    fn unapplied_bytes(&self) -> u64 {
        self.queued_bytes + self.edit_in_flight.as_ref().map_or(0, |(_, b)| *b)
    }

    fn touch(&mut self, now: Instant) {
        self.generation += 1;
        self.dirty_since.get_or_insert(now);
    }
}

impl Filesystem {
    /// Make sure `ino` has a write state. `truncate` starts from empty content; otherwise
    /// (advanced mode) the current content is fetched into the staging file first.
    pub(crate) fn ensure_write_state(&mut self, ino: Ino, truncate: bool, now: Instant) -> Result<(), FsError> {
        let Some(NodeKind::File { size, source }) = self.inodes.get(ino).map(|n| n.kind.clone()) else {
            return Err(FsError::new(Errno::IsDir, "is_a_directory", ""));
        };
        if self.writes.contains_key(&ino) {
            if truncate {
                self.truncate_written(None, ino, 0, now);
            }
            return Ok(());
        }
        let mode = self.cfg.writes.mode;
        if mode == WriteMode::Streaming && !truncate && size > 0 {
            return Err(FsError::new(
                Errno::NotSup,
                "streaming_no_rewrite",
                format!(
                    "{}: streaming mode only writes new or truncated files; mount with --advanced-writes to edit in place",
                    self.inodes.path(ino)
                ),
            ));
        }
        self.next_stage += 1;
        let staging = format!("{}{ino}-{}", self.cfg.writes.staging_dir, self.next_stage);
        let starts_empty = truncate || size == 0;
        let mut ws = WriteState {
            body: if mode == WriteMode::Streaming { Body::Memory(Vec::new()) } else { Body::Staged },
            staging: staging.clone(),
            ready: mode == WriteMode::Streaming,
            generation: 0,
            saved: 0,
            uploading: None,
            queue: Vec::new(),
            queue_replies: Vec::new(),
            queued_bytes: 0,
            edit_in_flight: None,
            reads: 0,
            parked: Vec::new(),
            after_save: Vec::new(),
            sync_waiters: Vec::new(),
            writers: 0,
            due: None,
            dirty_since: None,
            stream: Stream::Off,
        };
        if mode == WriteMode::Streaming && starts_empty {
            ws.stream = Stream::Waiting;
        }
        if truncate && size > 0 {
            ws.touch(now);
            self.set_size(ino, 0);
        }
        self.writes.insert(ino, ws);
        if mode == WriteMode::Advanced {
            let op = match source {
                ContentSource::Xet { hash } if !starts_empty => StageOp::Fill { path: staging, xet_hash: hash, size },
                _ => StageOp::Create { path: staging },
            };
            self.stage(ino, StageKind::Prepare, op);
        }
        Ok(())
    }

    pub(crate) fn open_for_write(&mut self, ino: Ino, truncate: bool, now: Instant) -> Result<(), FsError> {
        self.ensure_write_state(ino, truncate, now)?;
        if let Some(ws) = self.writes.get_mut(&ino) {
            ws.writers += 1;
        }
        Ok(())
    }

    pub(crate) fn write(&mut self, id: RequestId, ino: Ino, offset: u64, data: Bytes, now: Instant) {
        let size = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, .. }) => *size,
            Some(_) => return self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", "")),
            None => return self.fail(id, FsError::not_found()),
        };
        if let Err(e) = self.ensure_write_state(ino, false, now) {
            return self.fail(id, e);
        }
        let limit = self.cfg.writes.memory_limit;
        let stream_threshold = self.cfg.writes.stream_threshold;
        let path = self.inodes.path(ino);
        let ws = self.writes.get_mut(&ino).expect("ensured above");
        if !ws.ready {
            ws.parked.push((id, Request::Write { ino, fh: None, offset, data }));
            return;
        }
        let len = data.len() as u64;
        let end = offset + len;
        if let Body::Memory(chunks) = &mut ws.body {
            if offset != size {
                let detail = format!("{path}: streaming mode writes must append (offset {offset}, size {size}); mount with --advanced-writes for random writes");
                return self.fail(id, FsError::new(Errno::NotSup, "streaming_not_sequential", detail));
            }
            if end <= limit {
                chunks.push(data.clone());
                let start_stream = matches!(ws.stream, Stream::Waiting) && end >= stream_threshold;
                let so_far = if start_stream { chunks.clone() } else { Vec::new() };
                ws.touch(now);
                self.set_size(ino, end);
                self.touch_mtime(ino, now);
                let owed = if start_stream {
                    self.open_stream(ino, so_far);
                    false
                } else {
                    self.stream_accept(ino, &data, id)
                };
                if !owed {
                    self.reply(id, Reply::Written { size: len as u32 });
                }
                return;
            }
            // Past the memory limit: move what is buffered to the staging file, then go on there.
            let mut at = 0;
            for chunk in std::mem::take(chunks) {
                let len = chunk.len() as u64;
                ws.queued_bytes += len;
                ws.queue.push(StageEdit::Write { offset: at, data: chunk });
                at += len;
            }
            ws.body = Body::Staged;
        }
        // Write-behind: acknowledged once queued, unless too much is already waiting for the
        // staging file (or for the upload stream, which then owes the reply).
        let stream_owes = self.stream_accept(ino, &data, id);
        let ws = self.writes.get_mut(&ino).expect("ensured above");
        let owed = !stream_owes && ws.unapplied_bytes() + len > WRITE_BEHIND_BYTES;
        ws.queued_bytes += len;
        ws.queue.push(StageEdit::Write { offset, data });
        if owed {
            ws.queue_replies.push((id, len as u32));
        }
        ws.touch(now);
        self.set_size(ino, size.max(end));
        self.touch_mtime(ino, now);
        if !owed && !stream_owes {
            self.reply(id, Reply::Written { size: len as u32 });
        }
        self.send_edits(ino);
    }

    /// Send the queued edits of `ino` as one staging effect, if none is being applied.
    fn send_edits(&mut self, ino: Ino) {
        let Some(ws) = self.writes.get_mut(&ino) else { return };
        if ws.edit_in_flight.is_some() || ws.queue.is_empty() || !ws.ready {
            return;
        }
        let edits = std::mem::take(&mut ws.queue);
        let bytes = std::mem::take(&mut ws.queued_bytes);
        ws.edit_in_flight = Some((std::mem::take(&mut ws.queue_replies), bytes));
        let op = StageOp::Edit { path: ws.staging.clone(), edits };
        self.stage(ino, StageKind::Edit, op);
    }

    /// Read from a file being written (its newest content).
    pub(crate) fn read_written(&mut self, id: RequestId, ino: Ino, offset: u64, size: u32) {
        let file_size = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, .. }) => *size,
            _ => 0,
        };
        let ws = self.writes.get_mut(&ino).expect("caller checked");
        // A read sees every acknowledged write: it waits until they reached the staging file.
        if !ws.ready || (matches!(ws.body, Body::Staged) && !ws.edits_applied()) {
            ws.parked.push((id, Request::Read { ino, fh: None, offset, size }));
            return;
        }
        let end = offset.saturating_add(u64::from(size)).min(file_size);
        if offset >= end {
            return self.reply_data(id, Bytes::new());
        }
        match &ws.body {
            Body::Memory(chunks) => {
                let data = slice_chunks(chunks, offset, end);
                self.reply_data(id, data);
            }
            Body::Staged => {
                ws.reads += 1;
                let op = StageOp::Read { path: ws.staging.clone(), range: offset..end };
                self.stage(ino, StageKind::Read { req: id }, op);
            }
        }
    }

    /// Set the size of a file being written; `req` (a setattr) is answered with its attributes.
    pub(crate) fn truncate_written(&mut self, req: Option<RequestId>, ino: Ino, new_size: u64, now: Instant) {
        let size = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, .. }) => *size,
            _ => 0,
        };
        let path = self.inodes.path(ino);
        let ws = self.writes.get_mut(&ino).expect("caller ensured");
        if !ws.ready {
            if let Some(id) = req {
                let set = crate::request::SetAttr { size: Some(new_size), ..Default::default() };
                ws.parked.push((id, Request::SetAttr { ino, set }));
            }
            return;
        }
        if new_size == size {
            return self.answer_attr(req, ino);
        }
        // The streamed bytes no longer describe the file.
        self.abort_stream(ino);
        let ws = self.writes.get_mut(&ino).expect("caller ensured");
        match &mut ws.body {
            Body::Memory(chunks) => {
                if new_size > size {
                    let detail = format!("{path}: streaming mode cannot extend a file; mount with --advanced-writes");
                    if let Some(id) = req {
                        self.fail(id, FsError::new(Errno::NotSup, "streaming_no_extend", detail));
                    }
                    return;
                }
                let kept = slice_chunks(chunks, 0, new_size);
                *chunks = if kept.is_empty() { Vec::new() } else { vec![kept] };
                ws.touch(now);
                self.set_size(ino, new_size);
                self.answer_attr(req, ino);
            }
            Body::Staged => {
                // Queued behind earlier writes, so it applies in order.
                ws.queue.push(StageEdit::Truncate { size: new_size });
                ws.touch(now);
                self.set_size(ino, new_size);
                self.answer_attr(req, ino);
                self.send_edits(ino);
            }
        }
        self.touch_mtime(ino, now);
    }

    fn answer_attr(&mut self, req: Option<RequestId>, ino: Ino) {
        if let Some(id) = req {
            match self.attr(ino) {
                Some(attr) => self.reply(id, Reply::Attr { attr, ttl: self.cfg.metadata_ttl }),
                None => self.fail(id, FsError::not_found()),
            }
        }
    }

    /// `close()`: streaming mode answers once the file is committed; advanced mode answers at
    /// once and uploads after the debounce.
    pub(crate) fn flush(&mut self, id: RequestId, ino: Ino, _fh: u64, now: Instant) {
        if let Some(err) = self.unreported.remove(&ino) {
            return self.fail(id, err);
        }
        let streaming = self.cfg.writes.mode == WriteMode::Streaming;
        let due = self.debounced_due(ino, now);
        match self.writes.get_mut(&ino) {
            Some(ws) if ws.is_dirty() && streaming => {
                ws.sync_waiters.push(id);
                ws.due = Some(now);
            }
            Some(ws) if ws.is_dirty() => {
                ws.due = Some(due);
                self.reply(id, Reply::Empty);
            }
            _ => self.reply(id, Reply::Empty),
        }
    }

    /// When an advanced-mode file should be uploaded after activity at `now`: the debounce,
    /// capped by the batch window since it became dirty.
    fn debounced_due(&self, ino: Ino, now: Instant) -> Instant {
        let w = &self.cfg.writes;
        let debounced = now.saturating_add(w.flush_debounce);
        match self.writes.get(&ino).and_then(|ws| ws.dirty_since) {
            Some(since) => debounced.min(since.saturating_add(w.flush_max_batch_window)),
            None => debounced,
        }
    }

    /// `fsync`: answered when the file's content and name are committed, or with the error.
    pub(crate) fn fsync(&mut self, id: RequestId, ino: Ino, now: Instant) {
        if let Some(err) = self.unreported.remove(&ino) {
            return self.fail(id, err);
        }
        // An explicit fsync does not wait out the pause after a failed commit.
        self.commit_not_before = None;
        if let Some(ws) = self.writes.get_mut(&ino).filter(|ws| ws.is_dirty()) {
            ws.sync_waiters.push(id);
            ws.due = Some(now);
            return;
        }
        // A directory waits for everything queued; a file for its own path.
        let paths = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::Dir) => self.commits.paths(),
            Some(_) => vec![self.inodes.path(ino)],
            None => return self.fail(id, FsError::not_found()),
        };
        if self.commits.wait(id, &paths).is_none() {
            self.reply(id, Reply::Empty);
        }
    }

    pub(crate) fn writer_closed(&mut self, ino: Ino, now: Instant) {
        let streaming = self.cfg.writes.mode == WriteMode::Streaming;
        let due = self.debounced_due(ino, now);
        if let Some(ws) = self.writes.get_mut(&ino) {
            ws.writers = ws.writers.saturating_sub(1);
            if ws.is_dirty() && ws.writers == 0 {
                ws.due = Some(if streaming { now } else { due });
            }
        }
        self.maybe_drop_write_state(ino, now);
    }

    /// Forget the write state of a file that is saved, closed and idle.
    pub(crate) fn maybe_drop_write_state(&mut self, ino: Ino, now: Instant) {
        let idle = self.writes.get(&ino).is_some_and(|ws| {
            ws.writers == 0
                && !ws.is_dirty()
                && ws.edits_applied()
                && ws.reads == 0
                && ws.parked.is_empty()
                && ws.after_save.is_empty()
                && ws.sync_waiters.is_empty()
        });
        if idle {
            self.discard_write_state(ino, now);
        }
    }

    /// The file was removed: its changes no longer need saving (waiters are answered); the
    /// state goes as soon as no staging IO or upload uses it.
    pub(crate) fn forget_changes(&mut self, ino: Ino, now: Instant) {
        if let Some(ws) = self.writes.get_mut(&ino) {
            ws.saved = ws.generation;
            ws.due = None;
            for w in std::mem::take(&mut ws.sync_waiters) {
                self.reply(w, Reply::Empty);
            }
        }
        self.maybe_drop_write_state(ino, now);
    }

    /// Drop a file's write state (and its staging file) unconditionally.
    pub(crate) fn discard_write_state(&mut self, ino: Ino, now: Instant) {
        self.abort_stream(ino);
        if let Some(ws) = self.writes.remove(&ino) {
            if matches!(ws.body, Body::Staged) {
                self.stage(ino, StageKind::Remove, StageOp::Remove { path: ws.staging });
            }
            for w in ws.sync_waiters {
                self.reply(w, Reply::Empty);
            }
            for (id, req) in ws.parked.into_iter().chain(ws.after_save) {
                self.dispatch(id, req, now);
            }
        }
    }

    /// Start uploads that are due, then a commit if one should go out now.
    pub(crate) fn pump(&mut self, now: Instant) {
        if self.cfg.writes.mode == WriteMode::ReadOnly {
            return;
        }
        let draining = self.draining;
        let due: Vec<Ino> = self
            .writes
            .iter()
            .filter(|(_, ws)| {
                ws.ready
                    && ws.edits_applied()
                    && ws.uploading.is_none()
                    && ws.generation > ws.saved
                    && (draining || ws.due.is_some_and(|d| d <= now))
            })
            .map(|(ino, _)| *ino)
            .collect();
        // Due files go out together: one upload session (one shard) per batch of up to
        // `UPLOAD_BATCH_FILES` files or `UPLOAD_BATCH_BYTES`, at most `MAX_UPLOADS` at a time.
        let mut batch: Vec<(Ino, u64)> = Vec::new();
        let mut sources = Vec::new();
        let mut batch_bytes = 0u64;
        for ino in due {
            if self.inodes.get(ino).is_none_or(|n| n.detached) {
                self.discard_write_state(ino, now);
                continue;
            }
            let size = match self.inodes.get(ino).map(|n| &n.kind) {
                Some(NodeKind::File { size, .. }) => *size,
                _ => 0,
            };
            let ws = self.writes.get_mut(&ino).expect("listed above");
            if size == 0 {
                // The empty file has a fixed hash and nothing to upload.
                let generation = ws.generation;
                ws.uploading = Some(generation);
                ws.due = None;
                self.on_uploaded(ino, generation, hub::EMPTY_FILE_HASH.to_string(), 0, now);
                continue;
            }
            // A streamed file only needs its stream finished, once everything is appended.
            let generation = ws.generation;
            match self.stream_ready(ino) {
                Some(true) => {
                    self.finish_stream(ino, generation);
                    continue;
                }
                Some(false) => continue,
                None => {}
            }
            if self.uploads_in_flight >= MAX_UPLOADS {
                continue;
            }
            let ws = self.writes.get_mut(&ino).expect("listed above");
            ws.uploading = Some(ws.generation);
            ws.due = None;
            batch.push((ino, ws.generation));
            sources.push(match &ws.body {
                Body::Memory(chunks) => UploadSource::Memory(chunks.clone()),
                Body::Staged => UploadSource::File(ws.staging.clone()),
            });
            batch_bytes += size;
            if batch.len() >= UPLOAD_BATCH_FILES || batch_bytes >= UPLOAD_BATCH_BYTES {
                self.start_upload(std::mem::take(&mut batch), std::mem::take(&mut sources));
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            self.start_upload(batch, sources);
        }
        self.maybe_commit(now);
    }

    fn start_upload(&mut self, files: Vec<(Ino, u64)>, sources: Vec<UploadSource>) {
        self.stats.uploads += files.len() as u64;
        self.uploads_in_flight += 1;
        self.start_effect(Purpose::Upload { files }, Effect::Upload(sources));
    }

    /// An upload effect finished (each of its files is then handled on its own).
    pub(crate) fn upload_done(&mut self) {
        self.uploads_in_flight = self.uploads_in_flight.saturating_sub(1);
    }

    pub(crate) fn on_uploaded(&mut self, ino: Ino, generation: u64, xet_hash: String, size: u64, now: Instant) {
        let Some(ws) = self.writes.get_mut(&ino) else { return };
        ws.uploading = None;
        if self.inodes.get(ino).is_none_or(|n| n.detached) {
            return self.discard_write_state(ino, now);
        }
        if generation != ws.generation {
            // Written to while uploading: that snapshot is already stale; upload again when
            // someone is waiting, otherwise when the file is next closed.
            if !ws.sync_waiters.is_empty() || ws.writers == 0 {
                ws.due = Some(now);
            }
            return;
        }
        ws.saved = generation;
        ws.dirty_since = None;
        self.stats.bytes_uploaded += size;
        let waiters = std::mem::take(&mut ws.sync_waiters);
        let after_save = std::mem::take(&mut ws.after_save);
        let node = self.inodes.get(ino).expect("checked above");
        let unchanged = !node.local
            && matches!(&node.kind, NodeKind::File { source: ContentSource::Xet { hash }, .. } if *hash == xet_hash);
        let mtime_ms = self.commit_mtime_ms(ino, now);
        self.set_content(ino, size, ContentSource::Xet { hash: xet_hash.clone() });
        let path = self.inodes.path(ino);
        if !unchanged || self.commits.latest(&path).is_some() {
            self.commits.push(path.clone(), Op::Add { xet_hash, size, mtime_ms }, Some(ino), now);
            if let Some(n) = self.inodes.get_mut(ino) {
                n.local = false;
            }
        }
        for w in waiters {
            if self.commits.wait(w, std::slice::from_ref(&path)).is_none() {
                self.reply(w, Reply::Empty);
            }
        }
        for (id, req) in after_save {
            self.dispatch(id, req, now);
        }
        self.maybe_drop_write_state(ino, now);
    }

    pub(crate) fn on_upload_failed(&mut self, ino: Ino, err: FsError, now: Instant) {
        let path = self.inodes.path(ino);
        let retry_at = now.saturating_add(self.cfg.writes.commit_retry);
        let Some(ws) = self.writes.get_mut(&ino) else { return };
        ws.uploading = None;
        ws.due = Some(retry_at);
        let waiters = std::mem::take(&mut ws.sync_waiters);
        let err = FsError { detail: format!("uploading {path}: {}", err.detail), ..err };
        self.log(LogLevel::Warn, format!("{err}; kept locally, retrying"));
        if waiters.is_empty() {
            self.unreported.insert(ino, err);
        } else {
            for w in waiters {
                self.fail(w, err.clone());
            }
        }
    }

    /// Send the pending commit ops if none are in flight and nothing argues for waiting: no
    /// upload running or due (their adds should share the batch) unless the batch window ran out.
    fn maybe_commit(&mut self, now: Instant) {
        if self.commits.in_flight() || !self.commits.has_pending() {
            return;
        }
        if !self.draining && self.commit_not_before.is_some_and(|t| t > now) {
            return;
        }
        let window_over =
            self.commits.oldest().is_some_and(|t| t.saturating_add(self.cfg.writes.flush_max_batch_window) <= now);
        // A file uploading, or due to upload now, should land in the same batch.
        let uploading = self
            .writes
            .values()
            .any(|ws| ws.uploading.is_some() || (ws.generation > ws.saved && ws.due.is_some_and(|d| d <= now)));
        if uploading && !window_over && !self.draining {
            return;
        }
        let crate::config::Source::Bucket { id } = &self.cfg.source else { return };
        let url = self.cfg.urls.bucket_batch(id);
        let ops = self.commits.take_batch();
        let body = Bytes::from(hub::batch_body(&ops));
        self.stats.commits += 1;
        self.start_effect(Purpose::Commit, Effect::HubPost { url, content_type: "application/x-ndjson", body });
    }

    pub(crate) fn on_committed(&mut self, _now: Instant) {
        self.commit_not_before = None;
        // Listings in flight may predate this commit: remember what it changed for them.
        self.commit_epoch += 1;
        match self.listing_epoch.values().min().copied() {
            None => self.committed.clear(),
            Some(oldest) => {
                self.committed.retain(|(epoch, _)| *epoch > oldest);
                let epoch = self.commit_epoch;
                let paths: Vec<String> = self.commits.in_flight_paths().into_iter().map(str::to_string).collect();
                self.committed.extend(paths.into_iter().map(|p| (epoch, p)));
            }
        }
        let (finished, files) = self.commits.on_committed();
        for ino in files {
            self.unreported.remove(&ino);
        }
        for (req, result) in finished {
            match result {
                Ok(()) => self.reply(req, Reply::Empty),
                Err(e) => self.fail(req, e),
            }
        }
    }

    pub(crate) fn on_commit_failed(&mut self, err: FsError, now: Instant) {
        let paths = self.commits.in_flight_paths();
        let shown: Vec<&str> = paths.iter().take(5).copied().collect();
        let more =
            if paths.len() > shown.len() { format!(" and {} more", paths.len() - shown.len()) } else { String::new() };
        let detail = format!("committing {}{more} to the bucket: {}", shown.join(", "), err.detail);
        let err = FsError { detail, ..err };
        self.log(LogLevel::Warn, format!("{err}; changes kept, retrying"));
        let (finished, files) = self.commits.on_failed(&err, now);
        let answered = !finished.is_empty();
        for (req, result) in finished {
            if let Err(e) = result {
                self.fail(req, e);
            }
        }
        if !answered {
            for ino in files {
                self.unreported.insert(ino, err.clone());
            }
        }
        self.commit_not_before = Some(now.saturating_add(self.cfg.writes.commit_retry));
    }

    pub(crate) fn on_staged(&mut self, ino: Ino, kind: StageKind, result: Result<Completion, FsError>, now: Instant) {
        let path = self.inodes.path(ino);
        let result = result.map_err(|e| FsError { detail: format!("{path}: staging: {}", e.detail), ..e });
        if let (Some(ws), StageKind::Read { .. }) = (self.writes.get_mut(&ino), kind) {
            ws.reads = ws.reads.saturating_sub(1);
        }
        match (kind, result) {
            (StageKind::Prepare, Ok(_)) => {
                let Some(ws) = self.writes.get_mut(&ino) else { return };
                ws.ready = true;
                let parked = std::mem::take(&mut ws.parked);
                for (id, r) in parked {
                    self.dispatch(id, r, now);
                }
                self.send_edits(ino);
            }
            (StageKind::Prepare, Err(e)) => {
                // Nothing was written yet: forget the state; the next write prepares again.
                self.log(LogLevel::Warn, format!("{e}"));
                if let Some(ws) = self.writes.remove(&ino) {
                    for (id, _) in ws.parked {
                        self.fail(id, e.clone());
                    }
                }
            }
            (StageKind::Edit, result) => {
                let Some(ws) = self.writes.get_mut(&ino) else { return };
                let (owed, _) = ws.edit_in_flight.take().unwrap_or_default();
                match result {
                    Ok(_) => {
                        for (id, size) in owed {
                            self.reply(id, Reply::Written { size });
                        }
                    }
                    Err(e) => {
                        // Writes already acknowledged did not reach the staging file: the
                        // file's next fsync or close reports it.
                        self.log(LogLevel::Warn, format!("{e}"));
                        for (id, _) in owed {
                            self.fail(id, e.clone());
                        }
                        self.unreported.insert(ino, e);
                    }
                }
                self.send_edits(ino);
                let Some(ws) = self.writes.get_mut(&ino) else { return };
                if ws.edits_applied() {
                    for (id, r) in std::mem::take(&mut ws.parked) {
                        self.dispatch(id, r, now);
                    }
                }
            }
            (StageKind::Read { req }, Ok(Completion::Bytes(pieces))) => self.reply_data(req, join(pieces)),
            (StageKind::Read { req }, Ok(_)) => {
                self.fail(req, FsError::new(Errno::Io, "internal", "unexpected staging completion"))
            }
            (StageKind::Read { req }, Err(e)) => {
                self.log(LogLevel::Warn, format!("{e}"));
                self.fail(req, e);
            }
            (StageKind::Remove, Ok(_)) => {}
            (StageKind::Remove, Err(e)) => self.log(LogLevel::Warn, format!("{e}")),
        }
        self.maybe_drop_write_state(ino, now);
    }

    pub(crate) fn set_size(&mut self, ino: Ino, new_size: u64) {
        if let Some(NodeKind::File { size, .. }) = self.inodes.get_mut(ino).map(|n| &mut n.kind) {
            *size = new_size;
        }
    }

    fn set_content(&mut self, ino: Ino, new_size: u64, new_source: ContentSource) {
        if let Some(NodeKind::File { size, source }) = self.inodes.get_mut(ino).map(|n| &mut n.kind) {
            *size = new_size;
            *source = new_source;
        }
        self.content_changed(ino);
    }

    fn touch_mtime(&mut self, ino: Ino, now: Instant) {
        self.touch(ino, true, now);
    }
}

/// Bytes `start..end` of consecutive `chunks` (no copy when one chunk covers them).
fn slice_chunks(chunks: &[Bytes], start: u64, end: u64) -> Bytes {
    let mut out = BytesMut::new();
    let mut pos = 0u64;
    for c in chunks {
        let (a, b) = (pos, pos + c.len() as u64);
        pos = b;
        if b <= start || a >= end {
            continue;
        }
        let piece = c.slice((start.max(a) - a) as usize..(end.min(b) - a) as usize);
        if out.is_empty() && piece.len() as u64 == end - start {
            return piece;
        }
        out.extend_from_slice(&piece);
    }
    out.freeze()
}

fn join(pieces: Vec<Bytes>) -> Bytes {
    if pieces.len() == 1 {
        return pieces.into_iter().next().expect("one piece");
    }
    let mut out = BytesMut::new();
    for p in pieces {
        out.extend_from_slice(&p);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_chunks() {
        let chunks = [Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
        assert_eq!(slice_chunks(&chunks, 0, 7), Bytes::from_static(b"abcdefg"));
        assert_eq!(slice_chunks(&chunks, 1, 2), Bytes::from_static(b"b"));
        assert_eq!(slice_chunks(&chunks, 2, 5), Bytes::from_static(b"cde"));
        assert_eq!(slice_chunks(&chunks, 3, 7), Bytes::from_static(b"defg"));
        assert_eq!(slice_chunks(&chunks, 0, 0), Bytes::new());
    }
}

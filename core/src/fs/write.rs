//! Writing files: opening for write, writes (write-behind into the staging file, or memory in
//! streaming mode), truncation, reads of one's own writes, and the way from a close, fsync or
//! NFS COMMIT to an upload and a committed bucket. The bytes move in effects; when they move
//! is decided here and in the upload and commit schedulers.

use bytes::{Bytes, BytesMut};

use crate::effect::{Completion, StageEdit, StageOp};
use crate::error::{Errno, FsError, LogLevel};
use crate::hub::ContentSource;
use crate::inode::{Ino, NodeKind};
use crate::request::{Caller, FallocMode, Reply, Request, RequestId, Stability, WccAttr};
use crate::time::Instant;

use super::flights::{Purpose, StageKind};
use super::parked::{Then, Wait};
use super::stream::Stream;
use super::writebuf::{zeros, Body, WriteState};
use super::Filesystem;

impl Filesystem {
    /// Make sure `ino` has a write state. `truncate` starts from empty content; otherwise
    /// (advanced mode) the current content is fetched into the staging file first.
    pub(crate) fn ensure_write_state(&mut self, ino: Ino, truncate: bool, now: Instant) -> Result<(), FsError> {
        let Some(NodeKind::File { size, source }) = self.inodes.get(ino).map(|n| n.kind.clone()) else {
            return Err(FsError::is_a_directory());
        };
        if self.writes.has(ino) {
            if truncate {
                self.resize(ino, 0, now);
            }
            return Ok(());
        }
        let node_local = self.inodes.get(ino).is_none_or(|n| n.local);
        if let (false, ContentSource::Xet { hash }) = (node_local, &source) {
            // A change started on a clean file starts from what the bucket has now.
            if self.commits.queue.latest(&self.inodes.path(ino)).is_none() {
                self.bases.insert(ino, hash.clone());
            }
        }
        self.next_stage += 1;
        let staging = format!("{}{ino:016x}-{}", self.cfg.writes.staging_dir, self.next_stage);
        let starts_empty = truncate || size == 0;
        // Streaming mode keeps a new (or emptied) file in memory; advanced mode stages it (its
        // writes are acknowledged once on disk). Both stream it while it is written in order.
        // An existing file edited in place needs its content in a staging file first.
        let in_memory = self.streaming() && starts_empty;
        if !in_memory && !starts_empty && !self.staging_has_room(size, None) {
            return Err(self.staging_full(ino));
        }
        let body = if in_memory { Body::Memory { chunks: Vec::new(), len: 0 } } else { Body::Staged };
        let mut ws = WriteState::new(body, staging.clone(), in_memory);
        if starts_empty {
            ws.stream = Stream::Waiting { held: Vec::new(), len: 0 };
        }
        self.writes.insert(ino, ws);
        if truncate && size > 0 {
            self.writes.touch(ino, now);
            self.set_size(ino, 0);
        }
        if !in_memory {
            let op = match source {
                ContentSource::Xet { hash } if !starts_empty => {
                    StageOp::Fill { path: staging, token_url: self.read_token.clone(), xet_hash: hash, size }
                }
                _ => StageOp::Create { path: staging },
            };
            self.stage(ino, StageKind::Prepare, op);
        }
        Ok(())
    }

    /// Can the staging files grow by `growth` bytes (plus `spilled`, a memory body about to
    /// move to its staging file) within `--max-staging-size`?
    fn staging_has_room(&self, growth: u64, spilled: Option<u64>) -> bool {
        let Some(limit) = self.cfg.writes.max_staging else { return true };
        let more = growth + spilled.unwrap_or(0);
        more == 0 || self.staging_bytes() + more <= limit
    }

    fn staging_full(&self, ino: Ino) -> FsError {
        let limit = self.cfg.writes.max_staging.unwrap_or(0);
        let detail =
            format!("{}: the staging files would pass --max-staging-size ({limit} bytes)", self.inodes.path(ino));
        FsError::new(Errno::NoSpc, "staging_full", detail)
    }

    pub(crate) fn stage(&mut self, ino: Ino, kind: StageKind, op: StageOp) {
        self.start_effect(Purpose::Stage { ino, kind }, crate::effect::Effect::Stage(op));
    }

    pub(crate) fn open_for_write(&mut self, ino: Ino, truncate: bool, now: Instant) -> Result<(), FsError> {
        self.ensure_write_state(ino, truncate, now)?;
        if let Some(ws) = self.writes.get_mut(ino) {
            ws.writers += 1;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write(
        &mut self,
        id: RequestId,
        caller: &Caller,
        ino: Ino,
        fh: Option<u64>,
        offset: u64,
        data: Bytes,
        stable: Stability,
        now: Instant,
    ) {
        let size = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, .. }) => *size,
            Some(_) => return self.fail(id, FsError::is_a_directory()),
            None => return self.fail(id, FsError::not_found()),
        };
        if let Err(e) = self.ensure_write_state(ino, false, now) {
            return self.fail(id, e);
        }
        let before = self.wcc(ino);
        let Some(ws) = self.writes.get_mut(ino) else { return };
        if !ws.ready {
            let req = Request::Write { ino, fh, offset, data, stable };
            return self.park(id, Wait::Staging(ino), Then::Redispatch(caller.clone(), req));
        }
        let len = data.len() as u64;
        let end = offset + len;
        let sequential = match &ws.body {
            Body::Memory { len: written, .. } => offset >= *written,
            Body::Staged => true,
        };
        if !sequential {
            // A write going back over what was written: the file moves to a staging file and
            // takes random writes from now on (uploaded whole when due).
            self.abort_stream(ino, now);
            self.spill(ino);
        }
        let in_memory = self.writes.get(ino).is_some_and(|ws| matches!(ws.body, Body::Memory { .. }));
        let staged = !in_memory || end > self.cfg.writes.memory_limit;
        if staged && !self.staging_has_room(end.saturating_sub(size), in_memory.then_some(size)) {
            return self.fail(id, self.staging_full(ino));
        }
        let owed = match in_memory {
            true => self.append_in_memory(ino, offset, data),
            false => self.write_staged(ino, offset, data),
        };
        self.stats.bytes_written += len;
        self.writes.touch(ino, now);
        self.set_size(ino, size.max(end));
        self.touch(ino, true, now);
        self.answer_write(id, ino, len, before, stable, owed, fh.is_none(), now);
    }

    /// A write at or past the end of what a memory body holds (a hole in between reads as
    /// zeros); past the memory limit the content moves to the staging file. Returns what the
    /// reply must wait for, if anything.
    fn append_in_memory(&mut self, ino: Ino, offset: u64, data: Bytes) -> Option<Wait> {
        let limit = self.cfg.writes.memory_limit;
        let end = offset + data.len() as u64;
        if end > limit {
            self.spill(ino);
            return self.write_staged(ino, offset, data);
        }
        let ws = self.writes.get_mut(ino)?;
        let Body::Memory { chunks, len } = &mut ws.body else { return None };
        chunks.extend(zeros(offset - *len));
        chunks.push(data.clone());
        *len = end;
        self.stream_accept(ino, offset, &data).then_some(Wait::Stream(ino))
    }

    /// A write into the staging file: acknowledged once the staging file has it (a journal
    /// record names that file first), so a killed mount loses no acknowledged byte; writes
    /// arriving meanwhile share the next batch. A stream still fed owes the reply first.
    fn write_staged(&mut self, ino: Ino, offset: u64, data: Bytes) -> Option<Wait> {
        self.stream_accept(ino, offset, &data);
        let ws = self.writes.get_mut(ino)?;
        let owed = Some(Wait::EditBatch(ino, ws.next_batch));
        ws.queue.push(StageEdit::Write { offset, data });
        self.send_edits(ino);
        owed
    }

    /// A memory body moves to the staging file (queued as edits, in order); the stream, if
    /// any, goes on.
    fn spill(&mut self, ino: Ino) {
        let size = self.file_size(ino);
        let Some(ws) = self.writes.get_mut(ino) else { return };
        let Body::Memory { chunks, len } = std::mem::replace(&mut ws.body, Body::Staged) else { return };
        let mut at = 0;
        for chunk in chunks {
            let n = chunk.len() as u64;
            ws.queue.push(StageEdit::Write { offset: at, data: chunk });
            at += n;
        }
        if size > len {
            ws.queue.push(StageEdit::Truncate { size });
        }
    }

    /// Reply to a write now, once `owed` is satisfied, or (a stable write) once the file is
    /// committed. A write without a handle (NFS) makes the file due after the debounce, as a
    /// close would.
    #[allow(clippy::too_many_arguments)]
    fn answer_write(
        &mut self,
        id: RequestId,
        ino: Ino,
        len: u64,
        before: WccAttr,
        stable: Stability,
        owed: Option<Wait>,
        handleless: bool,
        now: Instant,
    ) {
        let reply = Reply::Written {
            size: len as u32,
            committed: stable,
            verifier: self.cfg.verifier,
            file: self.change(ino, before),
        };
        let idle = self.writes.get(ino).is_some_and(|ws| ws.writers == 0);
        if stable != Stability::Unstable {
            self.upload_due(ino, now);
            return self.park(id, Wait::Saved(ino), Then::AfterSave { ino, reply });
        }
        if handleless && idle {
            let due = if self.streaming() { now } else { self.debounced_due(ino, now) };
            self.upload_due(ino, due);
        }
        match owed {
            Some(wait @ Wait::EditBatch(..)) => self.park(id, wait, Then::AnswerAfterStream { ino, reply }),
            Some(wait) => self.park(id, wait, Then::Answer(reply)),
            None => self.reply(id, reply),
        }
    }

    /// Send the queued edits of `ino` as one staging effect, if none is being applied.
    pub(crate) fn send_edits(&mut self, ino: Ino) {
        let Some(ws) = self.writes.get_mut(ino) else { return };
        if ws.applying.is_some() || ws.queue.is_empty() || !ws.ready {
            return;
        }
        if !self.journal_ready(ino) {
            return;
        }
        let Some(ws) = self.writes.get_mut(ino) else { return };
        let edits = std::mem::take(&mut ws.queue);
        let batch = ws.next_batch;
        ws.next_batch += 1;
        ws.applying = Some(batch);
        let op = StageOp::Edit { path: ws.staging.clone(), edits };
        self.stage(ino, StageKind::Edit(batch), op);
    }

    /// Read from a file being written (its newest content).
    pub(crate) fn read_written(&mut self, id: RequestId, caller: &Caller, ino: Ino, offset: u64, size: u32) {
        let file_size = self.file_size(ino);
        let Some(ws) = self.writes.get_mut(ino) else { return };
        // A read sees every acknowledged write: it waits until they reached the staging file.
        let wait = if !ws.ready {
            Some(Wait::Staging(ino))
        } else if matches!(ws.body, Body::Staged) && !ws.edits_applied() {
            Some(Wait::Edits(ino))
        } else {
            None
        };
        if let Some(wait) = wait {
            let req = Request::Read { ino, fh: None, offset, size };
            return self.park(id, wait, Then::Redispatch(caller.clone(), req));
        }
        let end = offset.saturating_add(u64::from(size)).min(file_size);
        if offset >= end {
            return self.reply_data(id, Bytes::new(), true);
        }
        match &ws.body {
            Body::Memory { chunks, len } => {
                // Past what was written (a size set in advance) the file reads as zeros.
                let mut data = slice_chunks(chunks, offset.min(*len), end.min(*len));
                if end > *len {
                    let mut padded = BytesMut::from(&data[..]);
                    padded.resize((end - offset) as usize, 0);
                    data = padded.freeze();
                }
                self.reply_data(id, data, end >= file_size);
            }
            Body::Staged => {
                ws.reads += 1;
                let op = StageOp::Read { path: ws.staging.clone(), range: offset..end };
                self.stage(ino, StageKind::Read { req: id }, op);
            }
        }
    }

    /// Set the size of a file being written. On a staging file the change is queued behind
    /// earlier writes (and behind the fill of its old content), so it applies in order.
    pub(crate) fn resize(&mut self, ino: Ino, new_size: u64, now: Instant) {
        let size = self.file_size(ino);
        if new_size == size {
            return;
        }
        // Cutting into what was streamed: the stream no longer describes the file. (Setting a
        // size in advance, or shrinking the zeros past what was written, keeps it.)
        if self.stream_fed(ino).is_some_and(|fed| new_size < fed) {
            self.abort_stream(ino, now);
        }
        let Some(ws) = self.writes.get_mut(ino) else { return };
        match &mut ws.body {
            Body::Memory { chunks, len } => {
                if new_size < *len {
                    let kept = slice_chunks(chunks, 0, new_size);
                    *chunks = if kept.is_empty() { Vec::new() } else { vec![kept] };
                    *len = new_size;
                }
            }
            Body::Staged => ws.queue.push(StageEdit::Truncate { size: new_size }),
        }
        self.writes.touch(ino, now);
        self.set_size(ino, new_size);
        self.touch(ino, true, now);
        self.send_edits(ino);
    }

    /// `fallocate`: grow the file (zeros), or zero a range of it. Space cannot be reserved in a
    /// bucket, so allocating within the size changes nothing.
    pub(crate) fn fallocate(
        &mut self,
        id: RequestId,
        ino: Ino,
        range: std::ops::Range<u64>,
        mode: FallocMode,
        now: Instant,
    ) {
        let size = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, .. }) => *size,
            Some(_) => return self.fail(id, FsError::is_a_directory()),
            None => return self.fail(id, FsError::not_found()),
        };
        let (zero, keep_size) = match mode {
            FallocMode::Allocate { keep_size } => (false, keep_size),
            FallocMode::PunchHole => (true, true),
            FallocMode::ZeroRange { keep_size } => (true, keep_size),
        };
        let grows = !keep_size && range.end > size;
        if !zero && !grows {
            return self.reply(id, Reply::Empty);
        }
        if let Err(e) = self.ensure_write_state(ino, false, now) {
            return self.fail(id, e);
        }
        let zero_end = range.end.min(if keep_size { size } else { range.end });
        let written = match self.writes.get(ino).map(|ws| &ws.body) {
            Some(Body::Memory { len, .. }) => *len,
            _ => 0,
        };
        // Zeros where something was written: a staging file gets them as a write (zeros past
        // what a memory body holds are zeros already).
        let zeroes_data = zero && range.start < zero_end && (written == 0 || range.start < written);
        // Zeroing bytes the upload stream already has: it no longer describes the file.
        if zeroes_data && self.stream_fed(ino).is_some_and(|fed| range.start < fed) {
            self.abort_stream(ino, now);
        }
        if zeroes_data && self.writes.get(ino).is_some_and(|ws| matches!(ws.body, Body::Memory { .. })) {
            self.spill(ino);
        }
        if zeroes_data {
            if let Some(ws) = self.writes.get_mut(ino) {
                let mut at = range.start;
                for piece in zeros(zero_end - range.start) {
                    let n = piece.len() as u64;
                    ws.queue.push(StageEdit::Write { offset: at, data: piece });
                    at += n;
                }
            }
            self.writes.touch(ino, now);
            self.touch(ino, true, now);
            self.send_edits(ino);
        }
        if grows {
            self.resize(ino, range.end, now);
        }
        let due = if self.streaming() { now } else { self.debounced_due(ino, now) };
        if self.writes.get(ino).is_some_and(|ws| ws.writers == 0) {
            self.upload_due(ino, due);
        }
        self.reply(id, Reply::Empty);
    }

    pub(crate) fn answer_attr(&mut self, req: Option<(RequestId, WccAttr)>, ino: Ino) {
        if let Some((id, before)) = req {
            match self.attr(ino) {
                Some(attr) => self.reply(id, Reply::Attr { attr, ttl: self.cfg.metadata_ttl, before: Some(before) }),
                None => self.fail(id, FsError::not_found()),
            }
        }
    }

    /// `close()`: streaming mode answers once the file is committed; advanced mode answers at
    /// once and uploads after the debounce.
    pub(crate) fn flush(&mut self, id: RequestId, _caller: &Caller, ino: Ino, _fh: u64, now: Instant) {
        if let Some(err) = self.unreported.remove(&ino) {
            return self.fail(id, err);
        }
        let dirty = self.writes.get(ino).is_some_and(|ws| ws.is_dirty());
        if !dirty {
            return self.reply(id, Reply::Empty);
        }
        if self.streaming() {
            self.upload_due(ino, now);
            self.park(id, Wait::Saved(ino), Then::AfterSave { ino, reply: Reply::Empty });
        } else {
            // A file whose stream is open (or waiting) is due at its last close or an fsync:
            // the close of one of several descriptors (`dd` closes its first at the start)
            // must not end the stream while the file is still being written.
            if self.stream_fed(ino).is_none() {
                let due = self.debounced_due(ino, now);
                self.upload_due(ino, due);
            }
            self.reply(id, Reply::Empty);
        }
    }

    /// `fsync` (and NFS COMMIT, `verifier` set): answered when the file's content and name are
    /// committed, or with the error. A directory waits for every file below it that is still
    /// being written, then for every change queued so far.
    pub(crate) fn fsync(&mut self, id: RequestId, caller: &Caller, ino: Ino, verifier: Option<u64>, now: Instant) {
        if let Some(err) = self.unreported.remove(&ino) {
            return self.fail(id, err);
        }
        let reply = match verifier {
            Some(verifier) => Reply::Committed { verifier },
            None => Reply::Empty,
        };
        // An explicit fsync does not wait out the pause after a failed commit.
        self.commits.not_before = None;
        let unsaved: Vec<Ino> = match self.inodes.get(ino).map(|n| &n.kind) {
            None => return self.fail(id, FsError::not_found()),
            Some(NodeKind::Dir) => self.writes.dirty().into_iter().filter(|f| self.inodes.is_within(*f, ino)).collect(),
            Some(_) => self.writes.get(ino).filter(|ws| ws.is_dirty()).map(|_| ino).into_iter().collect(),
        };
        match unsaved.first() {
            None => self.answer_when_committed(id, ino, reply),
            Some(&first) => {
                for f in &unsaved {
                    self.upload_due(*f, now);
                }
                let then = if first == ino {
                    Then::AfterSave { ino, reply }
                } else {
                    // A directory: look again once this file is saved.
                    let req = match verifier {
                        Some(_) => Request::Commit { ino, range: 0..0 },
                        None => Request::Fsync { ino },
                    };
                    Then::Redispatch(caller.clone(), req)
                };
                self.park(id, Wait::Saved(first), then);
            }
        }
    }

    /// Send `reply` once `ino`'s queued commit ops (every queued op, for a directory) are in
    /// the bucket.
    pub(crate) fn answer_when_committed(&mut self, id: RequestId, ino: Ino, reply: Reply) {
        let now = self.now;
        let paths = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::Dir) => {
                self.commits.requeue_refused(None, now);
                self.commits.queue.paths()
            }
            _ => {
                let path = self.inodes.path(ino);
                self.commits.requeue_refused(Some(&path), now);
                vec![path]
            }
        };
        match self.commits.queue.wait(&paths) {
            Some(group) => self.park(id, Wait::Committed(group), Then::Answer(reply)),
            None => self.reply(id, reply),
        }
    }

    pub(crate) fn writer_closed(&mut self, ino: Ino, now: Instant) {
        let due = if self.streaming() { now } else { self.debounced_due(ino, now) };
        if let Some(ws) = self.writes.get_mut(ino) {
            ws.writers = ws.writers.saturating_sub(1);
            let last = ws.writers == 0;
            if ws.is_dirty() && last {
                self.upload_due(ino, due);
            }
            if last {
                self.stop_waiting_stream(ino);
            }
        }
        self.maybe_drop_write_state(ino, now);
    }

    /// Forget the write state of a file that is saved, closed and idle.
    pub(crate) fn maybe_drop_write_state(&mut self, ino: Ino, now: Instant) {
        // A removed file that is still open keeps its state: its content exists nowhere else.
        let held = self.handles.is_open(ino) && self.inodes.get(ino).is_some_and(|n| n.detached);
        let idle = !held
            && self
                .writes
                .get(ino)
                .is_some_and(|ws| ws.writers == 0 && !ws.is_dirty() && ws.edits_applied() && ws.reads == 0 && ws.ready);
        let waiting = [Wait::Staging(ino), Wait::Edits(ino), Wait::Saved(ino), Wait::Stream(ino)]
            .into_iter()
            .any(|w| self.parked.is_waiting(w));
        if idle && !waiting {
            self.discard_write_state(ino, now);
        }
    }

    /// The file was removed: its changes no longer need saving (whoever waits for them is
    /// answered); the state goes as soon as no staging IO or upload uses it.
    pub(crate) fn forget_changes(&mut self, ino: Ino, now: Instant) {
        self.journal_forget(ino);
        self.bases.remove(&ino);
        if self.writes.has(ino) {
            self.writes.forget_changes(ino);
            self.uploads.unschedule(ino);
            for (id, then) in self.parked.take(Wait::Saved(ino)) {
                match then {
                    Then::AfterSave { reply, .. } | Then::Answer(reply) => self.reply(id, reply),
                    other => self.resume(id, other, now),
                }
            }
        }
        self.maybe_drop_write_state(ino, now);
    }

    /// Drop a file's write state (and its staging file) unconditionally; whatever waited for
    /// it is handled again without it.
    pub(crate) fn discard_write_state(&mut self, ino: Ino, now: Instant) {
        self.abort_stream(ino, now);
        self.uploads.unschedule(ino);
        if let Some(ws) = self.writes.remove(ino) {
            // A journaled file's staging file stays until the bucket has its content.
            let size = self.file_size(ino);
            if matches!(ws.body, Body::Staged) && !self.journal_keeps(ino, size) {
                self.stage(ino, StageKind::Remove, StageOp::Remove { path: ws.staging });
            }
            for batch in 0..ws.next_batch {
                self.wake(Wait::EditBatch(ino, batch), now);
            }
            for wait in [Wait::Saved(ino), Wait::Staging(ino), Wait::Edits(ino), Wait::Stream(ino)] {
                self.wake(wait, now);
            }
        }
    }

    pub(crate) fn on_staged(&mut self, ino: Ino, kind: StageKind, result: Result<Completion, FsError>, now: Instant) {
        let path = self.inodes.path(ino);
        let result = result.map_err(|e| FsError { detail: format!("{path}: staging: {}", e.detail), ..e });
        if let (Some(ws), StageKind::Read { .. }) = (self.writes.get_mut(ino), kind) {
            ws.reads = ws.reads.saturating_sub(1);
        }
        match (kind, result) {
            (StageKind::Prepare, Ok(_)) => {
                let Some(ws) = self.writes.get_mut(ino) else { return };
                ws.ready = true;
                self.wake(Wait::Staging(ino), now);
                // A file changed with no edit to apply (created empty) is journaled too.
                if self.writes.get(ino).is_some_and(|ws| ws.is_dirty()) {
                    self.journal_ready(ino);
                }
                self.send_edits(ino);
                self.reconsider_upload(ino, now);
            }
            (StageKind::Prepare, Err(e)) => {
                // Nothing was written yet: forget the state; the next write prepares again.
                self.log(LogLevel::Warn, format!("{e}"));
                self.uploads.unschedule(ino);
                self.writes.remove(ino);
                self.fail_waiting(Wait::Staging(ino), &e);
            }
            (StageKind::Edit(batch), result) => {
                let Some(ws) = self.writes.get_mut(ino) else { return };
                ws.applying = None;
                match result {
                    Ok(_) => self.wake(Wait::EditBatch(ino, batch), now),
                    Err(e) => {
                        // Writes already acknowledged did not reach the staging file: the
                        // file's next fsync or close reports it.
                        self.log(LogLevel::Warn, format!("{e}"));
                        self.fail_waiting(Wait::EditBatch(ino, batch), &e);
                        self.unreported.insert(ino, e);
                    }
                }
                self.send_edits(ino);
                if self.writes.get(ino).is_some_and(|ws| ws.edits_applied()) {
                    self.wake(Wait::Edits(ino), now);
                    self.reconsider_upload(ino, now);
                }
            }
            (StageKind::Read { req }, Ok(Completion::Bytes(pieces))) => {
                let data = join(pieces);
                let eof = self.file_size(ino) <= data.len() as u64;
                self.reply_data(req, data, eof)
            }
            (StageKind::Read { req }, Ok(_)) => {
                self.fail(req, FsError::new(Errno::Io, "internal", "unexpected staging completion"))
            }
            (StageKind::Read { req }, Err(e)) => {
                self.log(LogLevel::Warn, format!("{e}"));
                self.fail(req, e);
            }
            (StageKind::Journal { written }, result) => {
                self.on_journaled(ino, written, result.err().map(|e| e.detail), now)
            }
            (StageKind::Remove, Ok(_)) => {}
            (StageKind::Remove, Err(e)) => self.log(LogLevel::Warn, format!("{e}")),
        }
        self.maybe_drop_write_state(ino, now);
    }
}

/// Bytes `start..end` of consecutive `chunks` (no copy when one chunk covers them).
pub(crate) fn slice_chunks(chunks: &[Bytes], start: u64, end: u64) -> Bytes {
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

//! Upload while writing: a new file written in order is fed to an xet-core upload as its bytes
//! arrive, in both write modes, so when it is due (a streaming close, an advanced fsync or
//! debounce) most of the upload is already done and only the finish (last chunks, shard)
//! remains. The stream is an optimization, never the only copy: the bytes stay in memory or the
//! staging file as usual, and a stream that fails, or a file that is rewritten or truncated
//! behind its stream, falls back to uploading the whole file when due.
//!
//! A new file waits until it reaches the policy's `stream_threshold` (holding its first bytes,
//! shared with its body, not copied), then its stream opens with them; one closed before that is
//! uploaded whole, many to a session. One stream op is in flight per file, so chunks reach
//! xet-core in order. Bytes waiting for the stream are bounded: past `STREAM_BUFFER_BYTES` a
//! write's reply waits (`Wait::Stream`) until the stream has taken them, so the writer runs at
//! the upload's pace.

use bytes::Bytes;

use crate::effect::{Completion, Effect, StreamOp};
use crate::error::{FsError, LogLevel};
use crate::inode::Ino;
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::Wait;
use super::writebuf::zeros;
use super::Filesystem;

/// Bytes a file may hold waiting for its upload stream before writes wait. Measured on a 1 GiB
/// streamed write (bench/bucket_write.sh): 16 MiB writes as fast as 64 MiB did and keeps the
/// mount's peak RSS at xet-core's own upload footprint (321 vs 320 MiB; 64 MiB: 373 vs 269).
const STREAM_BUFFER_BYTES: u64 = 16 << 20;

#[derive(Debug, Default)]
pub(crate) enum Stream {
    /// No stream: the file is uploaded whole when due.
    #[default]
    Off,
    /// A new file, still small: it gets a stream once it reaches the policy's
    /// `stream_threshold` (small files are cheaper uploaded whole, many to a session). `held`
    /// is its content so far (`len` bytes), shared with its body.
    Waiting { held: Vec<Bytes>, len: u64 },
    Open {
        id: u64,
        /// Bytes written but not yet handed to the stream, in order.
        pending: Vec<Bytes>,
        pending_bytes: u64,
        /// Bytes of the file the stream has (or will have, pending): the offset the next
        /// sequential write starts at.
        fed: u64,
        /// Bytes of the append in flight (0 = none).
        appending: u64,
        /// Something was appended (effects hold state for it).
        started: bool,
    },
    /// The finish is in flight.
    Finishing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamStep {
    Append,
    Finish { generation: u64 },
    Abort,
}

impl Filesystem {
    /// Start streaming `ino` with the bytes it holds so far (`chunks`, its whole content).
    pub(crate) fn open_stream(&mut self, ino: Ino, chunks: Vec<Bytes>) {
        self.next_stage += 1;
        let pending_bytes = chunks.iter().map(|c| c.len() as u64).sum();
        let stream = Stream::Open {
            id: self.next_stage,
            pending: chunks,
            pending_bytes,
            fed: pending_bytes,
            appending: 0,
            started: false,
        };
        if let Some(ws) = self.writes.get_mut(ino) {
            ws.stream = stream;
        }
        self.send_stream(ino);
    }

    /// Hand `data`, just written at `offset` of `ino`, to its stream: a write at or past the
    /// stream's end continues it (a hole streams as zeros); a write behind it ends the stream.
    /// A waiting file holds it, and its stream opens once it reaches the threshold. Returns
    /// true when the reply to the write is owed until the stream catches up (the caller parks
    /// it on `Wait::Stream`).
    pub(crate) fn stream_accept(&mut self, ino: Ino, offset: u64, data: &Bytes) -> bool {
        let threshold = self.cfg.writes.stream_threshold;
        let Some(stream) = self.writes.get_mut(ino).map(|ws| &mut ws.stream) else { return false };
        if let Stream::Waiting { held, len } = stream {
            if offset < *len {
                *stream = Stream::Off;
                return false;
            }
            held.extend(zeros(offset - *len));
            held.push(data.clone());
            *len = offset + data.len() as u64;
            if *len >= threshold {
                let so_far = std::mem::take(held);
                self.open_stream(ino, so_far);
            }
            return false;
        }
        let Stream::Open { pending, pending_bytes, fed, appending, .. } = stream else { return false };
        if offset < *fed {
            self.abort_stream(ino, self.now);
            return false;
        }
        let hole = zeros(offset - *fed);
        *pending_bytes += offset - *fed + data.len() as u64;
        pending.extend(hole);
        pending.push(data.clone());
        *fed = offset + data.len() as u64;
        let full = *pending_bytes + *appending > STREAM_BUFFER_BYTES;
        self.send_stream(ino);
        full
    }

    /// Does `ino`'s stream hold more than a write may leave waiting for it?
    pub(crate) fn stream_backlogged(&self, ino: Ino) -> bool {
        match self.writes.get(ino).map(|ws| &ws.stream) {
            Some(Stream::Open { pending_bytes, appending, .. }) => pending_bytes + appending > STREAM_BUFFER_BYTES,
            _ => false,
        }
    }

    /// How much of `ino` its stream has, or holds while waiting (`None`: no stream).
    pub(crate) fn stream_fed(&self, ino: Ino) -> Option<u64> {
        match self.writes.get(ino).map(|ws| &ws.stream) {
            Some(Stream::Open { fed, .. }) => Some(*fed),
            Some(Stream::Waiting { len, .. }) => Some(*len),
            _ => None,
        }
    }

    fn send_stream(&mut self, ino: Ino) {
        let token_url = self.write_token.clone();
        let Some(Stream::Open { id, pending, pending_bytes, appending, started, .. }) =
            self.writes.get_mut(ino).map(|ws| &mut ws.stream)
        else {
            return;
        };
        if *appending > 0 || pending.is_empty() {
            return;
        }
        *started = true;
        *appending = std::mem::take(pending_bytes);
        let op = StreamOp::Append { stream: *id, token_url, data: std::mem::take(pending) };
        self.start_effect(Purpose::Stream { ino, step: StreamStep::Append }, Effect::Stream(op));
    }

    /// Is `ino`'s stream ready to finish (the whole file appended)? `None` when it has no
    /// stream. Zeros up to the file's size (set in advance, past the last write) are fed first.
    pub(crate) fn stream_ready(&mut self, ino: Ino) -> Option<bool> {
        let size = self.file_size(ino);
        match self.writes.get_mut(ino).map(|ws| &mut ws.stream) {
            Some(Stream::Open { pending, pending_bytes, fed, appending, .. }) => {
                if *fed < size {
                    *pending_bytes += size - *fed;
                    pending.extend(zeros(size - *fed));
                    *fed = size;
                    self.send_stream(ino);
                    return Some(false);
                }
                Some(pending.is_empty() && *appending == 0)
            }
            Some(Stream::Finishing) => Some(false),
            _ => None,
        }
    }

    /// Finish `ino`'s stream: the upload of its current generation.
    pub(crate) fn finish_stream(&mut self, ino: Ino) {
        let Some(ws) = self.writes.get_mut(ino) else { return };
        let Stream::Open { id, .. } = std::mem::replace(&mut ws.stream, Stream::Finishing) else { return };
        let Some(generation) = self.writes.start_upload(ino) else { return };
        self.stats.uploads += 1;
        let effect = Effect::Stream(StreamOp::Finish { stream: id });
        self.start_effect(Purpose::Stream { ino, step: StreamStep::Finish { generation } }, effect);
    }

    /// A file closed while waiting is uploaded whole: what it held is let go.
    pub(crate) fn stop_waiting_stream(&mut self, ino: Ino) {
        if let Some(ws) = self.writes.get_mut(ino).filter(|ws| matches!(ws.stream, Stream::Waiting { .. })) {
            ws.stream = Stream::Off;
        }
    }

    /// Give up `ino`'s stream (truncated, removed, or failed): the whole file is uploaded instead.
    pub(crate) fn abort_stream(&mut self, ino: Ino, now: Instant) {
        let Some(ws) = self.writes.get_mut(ino) else { return };
        if let Stream::Open { id, started, .. } = std::mem::take(&mut ws.stream) {
            // Writes owed to the stream are answered: their bytes are in memory or staged.
            self.wake(Wait::Stream(ino), now);
            if started {
                let effect = Effect::Stream(StreamOp::Abort { stream: id });
                self.start_effect(Purpose::Stream { ino, step: StreamStep::Abort }, effect);
            }
        }
    }

    pub(crate) fn on_stream(&mut self, ino: Ino, step: StreamStep, result: Result<Completion, FsError>, now: Instant) {
        match (step, result) {
            (StreamStep::Append, Ok(_)) => {
                let Some(Stream::Open { appending, .. }) = self.writes.get_mut(ino).map(|ws| &mut ws.stream) else {
                    return;
                };
                *appending = 0;
                self.wake(Wait::Stream(ino), now);
                self.send_stream(ino);
                self.reconsider_upload(ino, now);
            }
            (StreamStep::Finish { generation }, Ok(Completion::Uploaded(files))) if files.len() == 1 => {
                let (xet_hash, size) = files.into_iter().next().expect("one file");
                if let Some(ws) = self.writes.get_mut(ino) {
                    ws.stream = Stream::Off;
                }
                self.stats.bytes_streamed += size;
                self.on_uploaded(ino, generation, xet_hash, size, now);
            }
            (StreamStep::Abort, _) => {}
            (step, result) => {
                let reason = match result {
                    Err(e) => e.to_string(),
                    Ok(other) => format!("unexpected completion {other:?}"),
                };
                let path = self.inodes.path(ino);
                self.log(LogLevel::Debug, format!("{path}: upload stream {step:?} failed ({reason}); uploading whole"));
                if matches!(step, StreamStep::Finish { .. }) {
                    if let Some(ws) = self.writes.get_mut(ino) {
                        ws.stream = Stream::Off;
                    }
                    self.writes.upload_ended(ino);
                    self.uploads.schedule(ino, now);
                }
                self.abort_stream(ino, now);
                self.reconsider_upload(ino, now);
            }
        }
    }
}

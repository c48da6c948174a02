//! The write buffer: per-file write state (content in memory or in a staging file, edits
//! queued for the staging file, the upload stream) and which files hold changes not yet saved.
//!
//! A file's `generation` counts its modifications; `saved` is the generation whose content was
//! uploaded and queued for commit. Anything newer is dirty and is never dropped. Generations
//! change only through this type, so the set of dirty files is always exact: nobody scans every
//! file to find out whether something is unsaved.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::collections::Map;
use crate::effect::StageEdit;
use crate::inode::Ino;
use crate::time::Instant;

use super::stream::Stream;

#[derive(Debug)]
pub(crate) enum Body {
    /// A new file in streaming mode, while it is written sequentially and fits the memory
    /// limit: `len` bytes in `chunks` (the file's size may be larger: zeros follow).
    Memory { chunks: Vec<Bytes>, len: u64 },
    /// The staging file holds the content.
    Staged,
}

/// One MiB of zeros, sliced (never copied) to stand for the holes of files in memory.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// `n` zero bytes as slices of `ZEROS`.
pub(crate) fn zeros(mut n: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    while n > 0 {
        let take = n.min(ZEROS.len() as u64) as usize;
        out.push(Bytes::from_static(&ZEROS[..take]));
        n -= take as u64;
    }
    out
}

#[derive(Debug)]
pub(crate) struct WriteState {
    pub body: Body,
    pub staging: String,
    /// The staging file has been created or filled (memory bodies are always ready).
    pub ready: bool,
    generation: u64,
    saved: u64,
    uploading: Option<u64>,
    /// Writes and truncations not yet sent to the staging file, in order.
    pub queue: Vec<StageEdit>,
    /// Number of the next edit batch sent to the staging file.
    pub next_batch: u64,
    /// The number of the batch being applied; one at a time, so edits apply in order.
    pub applying: Option<u64>,
    /// Staging reads in flight; the staging file is kept until they are done.
    pub reads: u32,
    /// Open write handles.
    pub writers: u32,
    pub dirty_since: Option<Instant>,
    /// Streaming mode: the upload fed while writing.
    pub stream: Stream,
}

impl WriteState {
    pub fn new(body: Body, staging: String, ready: bool) -> Self {
        WriteState {
            body,
            staging,
            ready,
            generation: 0,
            saved: 0,
            uploading: None,
            queue: Vec::new(),
            next_batch: 0,
            applying: None,
            reads: 0,
            writers: 0,
            dirty_since: None,
            stream: Stream::Off,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_dirty(&self) -> bool {
        self.generation > self.saved || self.uploading.is_some()
    }

    /// Changed since the last upload started, and no upload running.
    pub fn needs_upload(&self) -> bool {
        self.generation > self.saved && self.uploading.is_none()
    }

    pub fn is_uploading(&self) -> bool {
        self.uploading.is_some()
    }

    /// Every acknowledged write has reached the staging file.
    pub fn edits_applied(&self) -> bool {
        self.queue.is_empty() && self.applying.is_none()
    }
}

#[derive(Default)]
pub(crate) struct WriteBuffer {
    states: Map<Ino, WriteState>,
    dirty: BTreeSet<Ino>,
    uploading: usize,
}

impl WriteBuffer {
    pub fn has(&self, ino: Ino) -> bool {
        self.states.contains_key(&ino)
    }

    pub fn get(&self, ino: Ino) -> Option<&WriteState> {
        self.states.get(&ino)
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut WriteState> {
        self.states.get_mut(&ino)
    }

    pub fn insert(&mut self, ino: Ino, ws: WriteState) {
        self.states.insert(ino, ws);
        self.refresh(ino);
    }

    pub fn remove(&mut self, ino: Ino) -> Option<WriteState> {
        let ws = self.states.remove(&ino)?;
        self.dirty.remove(&ino);
        if ws.uploading.is_some() {
            self.uploading -= 1;
        }
        Some(ws)
    }

    fn refresh(&mut self, ino: Ino) {
        match self.states.get(&ino) {
            Some(ws) if ws.is_dirty() => self.dirty.insert(ino),
            _ => self.dirty.remove(&ino),
        };
    }

    /// `ino` was modified at `now`.
    pub fn touch(&mut self, ino: Ino, now: Instant) {
        if let Some(ws) = self.states.get_mut(&ino) {
            ws.generation += 1;
            ws.dirty_since.get_or_insert(now);
        }
        self.refresh(ino);
    }

    /// An upload of `ino`'s current content starts; returns the generation it carries.
    pub fn start_upload(&mut self, ino: Ino) -> Option<u64> {
        let ws = self.states.get_mut(&ino)?;
        if ws.uploading.is_none() {
            self.uploading += 1;
        }
        ws.uploading = Some(ws.generation);
        Some(ws.generation)
    }

    /// `ino`'s upload ended (either way).
    pub fn upload_ended(&mut self, ino: Ino) {
        if let Some(ws) = self.states.get_mut(&ino) {
            if ws.uploading.take().is_some() {
                self.uploading -= 1;
            }
        }
        self.refresh(ino);
    }

    /// `generation` of `ino` is saved (uploaded and queued for commit).
    pub fn mark_saved(&mut self, ino: Ino, generation: u64) {
        if let Some(ws) = self.states.get_mut(&ino) {
            ws.saved = ws.saved.max(generation);
            if !ws.needs_upload() {
                ws.dirty_since = None;
            }
        }
        self.refresh(ino);
    }

    /// The file was removed: nothing of it needs saving any more.
    pub fn forget_changes(&mut self, ino: Ino) {
        if let Some(ws) = self.states.get_mut(&ino) {
            ws.saved = ws.generation;
        }
        self.refresh(ino);
    }

    pub fn any_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Files whose content is in a staging file.
    pub fn staged(&self) -> impl Iterator<Item = Ino> + '_ {
        self.states.iter().filter(|(_, ws)| matches!(ws.body, Body::Staged)).map(|(ino, _)| *ino)
    }

    pub fn dirty(&self) -> Vec<Ino> {
        self.dirty.iter().copied().collect()
    }

    /// Files with an upload running.
    pub fn uploading(&self) -> usize {
        self.uploading
    }
}

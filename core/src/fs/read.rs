//! The read path: opens and releases, reads planned by each reader's pattern (read-ahead),
//! fetches of missing ranges (CAS for xet files, HTTP Range for git files), the read cache, and
//! reads waiting for bytes in flight.

use std::ops::Range;

use bytes::Bytes;

use crate::collections::Map;
use crate::effect::{Effect, EffectId};
use crate::error::{Errno, FsError};
use crate::hub::ContentSource;
use crate::inode::{Ino, NodeKind};
use crate::prefetch::ReadPattern;
use crate::readcache::ReadCache;
use crate::request::{Caller, Reply, RequestId};
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::{Then, Wait};
use super::{Filesystem, Remote};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Reader {
    Handle(u64),
    /// Reads without a handle (NFS) share one pattern per inode.
    Inode(Ino),
}

/// A reader that read within this holds back the read-ahead of faster readers of its file.
const ACTIVE_READER: std::time::Duration = std::time::Duration::from_secs(1);

/// The read path's state: fetched bytes, each reader's pattern, and fetches in flight.
pub(crate) struct Reads {
    pub cache: ReadCache,
    /// Each reader's file, pattern and last read, and the readers of each file.
    patterns: Map<Reader, (Ino, ReadPattern, Instant)>,
    readers_of: Map<Ino, Vec<Reader>>,
    /// Byte ranges being fetched, per inode.
    fetching: Map<Ino, Vec<(Range<u64>, EffectId)>>,
}

impl Reads {
    pub fn new(cache_bytes: u64) -> Self {
        Reads {
            cache: ReadCache::new(cache_bytes),
            patterns: Map::default(),
            readers_of: Map::default(),
            fetching: Map::default(),
        }
    }

    fn pattern(&mut self, reader: Reader, ino: Ino, now: Instant) -> &mut ReadPattern {
        let readers = &mut self.readers_of;
        let (_, pattern, used) = self.patterns.entry(reader).or_insert_with(|| {
            readers.entry(ino).or_default().push(reader);
            (ino, ReadPattern::default(), now)
        });
        *used = now;
        pattern
    }

    fn forget_reader(&mut self, reader: Reader) {
        let Some((ino, ..)) = self.patterns.remove(&reader) else { return };
        if let Some(readers) = self.readers_of.get_mut(&ino) {
            readers.retain(|r| *r != reader);
            if readers.is_empty() {
                self.readers_of.remove(&ino);
            }
        }
    }

    /// Where each reader of `ino` that read it lately will read next (a handle left open and
    /// idle is not counted).
    fn active_positions(&self, ino: Ino, now: Instant) -> impl Iterator<Item = u64> + '_ {
        let active = move |used: &Instant| now.saturating_duration_since(*used) < ACTIVE_READER;
        let readers = self.readers_of.get(&ino).map_or(&[][..], Vec::as_slice);
        readers
            .iter()
            .filter_map(|r| self.patterns.get(r))
            .filter(move |(_, _, used)| active(used))
            .map(|(_, p, _)| p.position())
    }

    /// Where the active reader of `ino` furthest behind will read next.
    fn trailing_reader(&self, ino: Ino, now: Instant) -> Option<u64> {
        self.active_positions(ino, now).min()
    }

    /// How many readers of `ino` read it within the last second.
    fn active_readers(&self, ino: Ino, now: Instant) -> usize {
        self.active_positions(ino, now).count()
    }

    /// Does a reader of `ino` read it in order (its read-ahead is on)?
    pub fn has_sequential_reader(&self, ino: Ino, policy: &crate::config::ReadPolicy) -> bool {
        let readers = self.readers_of.get(&ino).map_or(&[][..], Vec::as_slice);
        readers.iter().filter_map(|r| self.patterns.get(r)).any(|(_, p, _)| p.window(policy) > 0)
    }

    /// Are bytes of `ino` being fetched?
    pub fn is_fetching(&self, ino: Ino) -> bool {
        self.fetching.get(&ino).is_some_and(|v| !v.is_empty())
    }
}

impl Filesystem {
    pub(crate) fn open(&mut self, id: RequestId, ino: Ino, write: bool, truncate: bool, now: Instant) {
        match self.inodes.get(ino).map(|n| &n.kind) {
            None => return self.fail(id, FsError::not_found()),
            Some(NodeKind::Dir) => return self.fail(id, FsError::is_a_directory()),
            // The kernel opens FIFOs and devices itself; nothing else reaches here.
            Some(NodeKind::Symlink { .. } | NodeKind::Special { .. }) => {
                return self.fail(id, FsError::new(Errno::Inval, "not_a_regular_file", ""))
            }
            Some(NodeKind::File { .. }) => {}
        }
        if write || truncate {
            if let Err(e) = self.open_for_write(ino, truncate, now) {
                return self.fail(id, e);
            }
        }
        let through = self.copy_for_open(ino);
        let fh = self.handles.open(ino, write);
        let keep_cache = self.keep_pages(ino);
        let backing = through.map(|(n, backing)| {
            self.handles.set_through(fh, n);
            backing
        });
        self.reply(id, Reply::Open { fh, keep_cache, backing });
    }

    /// May the kernel keep the pages it cached of `ino` for this open? Yes while the content
    /// is the one it last opened (same size and content hash): a change seen while the file is
    /// cached is invalidated at once (`InvalidateInode`), a change seen otherwise makes the next
    /// open start from empty. A file with local changes in flight never keeps them.
    pub(crate) fn keep_pages(&mut self, ino: Ino) -> bool {
        let Some(identity) = self.content_identity(ino) else { return false };
        let unchanged = self.kernel_pages.insert(ino, identity) == Some(identity);
        unchanged && !self.writes.has(ino)
    }

    /// What identifies `ino`'s content: a hash of its size and content source.
    pub(crate) fn content_identity(&self, ino: Ino) -> Option<u64> {
        use std::hash::BuildHasher;
        let Some(NodeKind::File { size, source }) = self.inodes.get(ino).map(|n| &n.kind) else { return None };
        Some(foldhash::fast::FixedState::default().hash_one((size, source)))
    }

    pub(crate) fn release(&mut self, id: RequestId, fh: u64, now: Instant) {
        self.reads.forget_reader(Reader::Handle(fh));
        if let Some(open) = self.handles.close(fh) {
            if open.write {
                self.writer_closed(open.ino, now);
            } else {
                self.maybe_drop_write_state(open.ino, now);
            }
        }
        self.reply(id, Reply::Empty);
    }

    pub(crate) fn read(&mut self, id: RequestId, caller: &Caller, ino: Ino, fh: Option<u64>, offset: u64, size: u32) {
        let file_size = match self.inodes.get(ino).map(|n| &n.kind) {
            None => return self.fail(id, FsError::not_found()),
            Some(NodeKind::File { size, .. }) => *size,
            Some(_) => return self.fail(id, FsError::is_a_directory()),
        };
        if self.writes.has(ino) {
            return self.read_written(id, caller, ino, offset, size);
        }
        if offset >= file_size || size == 0 {
            return self.reply(id, Reply::Data { data: Bytes::new(), eof: offset >= file_size });
        }
        let end = offset.saturating_add(u64::from(size)).min(file_size);
        let reader = fh.map_or(Reader::Inode(ino), Reader::Handle);
        let policy = &self.cfg.policy;
        let now = self.now;
        let mut plan = self.reads.pattern(reader, ino, now).on_read(offset, end, file_size, policy);
        // Several readers of one file, this one sequential: whole aligned blocks are fetched,
        // so the readers share each block's fetch wherever each of them is, and a CAS chunk
        // that straddles a fetch's edge is downloaded at most twice per block rather than per
        // read (random readers keep fetching only what they cover).
        let blocks = !plan.ahead.is_empty() && self.reads.active_readers(ino, now) > 1;
        if blocks {
            plan.demand = whole_blocks(plan.demand, policy.max_fetch, file_size);
        }
        self.ensure_fetched(ino, plan.demand.clone(), blocks);
        if let Some(trailing) = self.reads.trailing_reader(ino, now).filter(|t| *t < offset) {
            // Several readers of one file: read ahead of the leader only as far as the cache
            // also holds what the last one still needs, so every byte is fetched once and the
            // readers move together.
            let reach = trailing.saturating_add(self.cfg.policy.cache_bytes / 4 * 3);
            plan.ahead.end = plan.ahead.end.min(reach).max(plan.ahead.start);
        }
        if !plan.ahead.is_empty() {
            // Refill the window in batches of at least half of it, so a steady reader causes a
            // few large fetches rather than one small fetch per read.
            if blocks {
                plan.ahead = whole_blocks(plan.ahead, self.cfg.policy.max_fetch, file_size);
            }
            let missing = self.missing(ino, plan.ahead.clone());
            let worth = missing.iter().map(|r| r.end - r.start).sum::<u64>() * 2 >= plan.ahead.end - plan.ahead.start;
            if worth && !self.copy_backlogged(ino) {
                self.fetch(ino, missing, blocks);
            }
            // Only what every reader of the file has passed goes first: the leader of several
            // readers must not push out the bytes the others are about to read.
            let trailing = self.reads.trailing_reader(ino, now).unwrap_or(offset).min(offset);
            self.reads.cache.demote_before(ino, trailing);
        }
        let deadline = self.cfg.timeouts.read_fetch.map(|t| self.now.saturating_add(t));
        self.stats.reads += 1;
        if !self.serve_read(id, ino, offset..end, deadline) {
            self.stats.reads_waited += 1;
        }
    }

    /// Answer a read of `range` from the cache (true), or wait for the bytes in flight
    /// (failing with `EIO` at `deadline`).
    pub(crate) fn serve_read(&mut self, id: RequestId, ino: Ino, range: Range<u64>, deadline: Option<Instant>) -> bool {
        let file_size = self.file_size(ino);
        let range = range.start.min(file_size)..range.end.min(file_size);
        match self.reads.cache.read(ino, range.clone()) {
            Some(data) => {
                self.reply_data(id, data, range.end >= file_size);
                true
            }
            None => {
                // An eviction or failure may have left part of it uncovered.
                self.ensure_fetched(ino, range.clone(), false);
                self.park(id, Wait::Bytes(ino), Then::ServeRead { ino, range, deadline });
                false
            }
        }
    }

    pub(crate) fn reply_data(&mut self, id: RequestId, data: Bytes, eof: bool) {
        self.stats.bytes_read += data.len() as u64;
        self.reply(id, Reply::Data { data, eof });
    }

    /// Parts of `range` neither cached nor already being fetched.
    fn missing(&self, ino: Ino, range: Range<u64>) -> Vec<Range<u64>> {
        let flying: Vec<Range<u64>> =
            self.reads.fetching.get(&ino).map(|v| v.iter().map(|(r, _)| r.clone()).collect()).unwrap_or_default();
        self.reads.cache.gaps(ino, range).into_iter().flat_map(|gap| subtract(gap, &flying)).collect()
    }

    /// Start fetches for the parts of `range` neither cached nor already being fetched.
    fn ensure_fetched(&mut self, ino: Ino, range: Range<u64>, blocks: bool) {
        let missing = self.missing(ino, range);
        self.fetch(ino, missing, blocks);
    }

    /// Start fetches for `pieces` (already known to be missing), at most `max_fetch` each;
    /// with `blocks`, cut at multiples of `max_fetch` (the blocks several readers share).
    fn fetch(&mut self, ino: Ino, pieces: Vec<Range<u64>>, blocks: bool) {
        if pieces.is_empty() {
            return;
        }
        let Some(NodeKind::File { size, source }) = self.inodes.get(ino).map(|n| n.kind.clone()) else { return };
        let max_fetch = self.cfg.policy.max_fetch;
        let chunk_cache = !self.copy_replaces_cache(ino);
        for piece in pieces {
            let mut start = piece.start;
            while start < piece.end {
                let limit = if blocks { (start / max_fetch + 1) * max_fetch } else { start + max_fetch };
                let end = piece.end.min(limit);
                let effect = match (&source, &self.remote) {
                    (ContentSource::Xet { hash }, _) => Effect::CasRange {
                        token_url: self.read_token.clone(),
                        xet_hash: hash.clone(),
                        file_size: size,
                        range: start..end,
                        chunk_cache,
                    },
                    (ContentSource::Regular { .. }, Remote::Repo { repo, commit, .. }) => {
                        let url = self.cfg.urls.resolve(repo, commit, &self.inodes.path(ino));
                        Effect::HubRange { url, range: start..end }
                    }
                    // Layer files are read through `overlay`, never fetched.
                    (ContentSource::Regular { .. }, Remote::Bucket { .. }) | (ContentSource::Layer, _) => return,
                };
                let id = self.start_effect(Purpose::Fetch { ino, range: start..end }, effect);
                self.reads.fetching.entry(ino).or_default().push((start..end, id));
                self.stats.fetches += 1;
                start = end;
            }
        }
    }

    pub(crate) fn on_fetched(&mut self, id: EffectId, ino: Ino, range: Range<u64>, pieces: Vec<Bytes>, now: Instant) {
        // A fetch no longer tracked belongs to content that has since changed: drop it.
        if self.forget_fetch(ino, id) {
            self.copy_fetched(ino, range.start, &pieces);
            let mut offset = range.start;
            for piece in pieces {
                let len = piece.len() as u64;
                self.reads.cache.insert(ino, offset, piece);
                offset += len;
            }
            self.stats.bytes_fetched += offset - range.start;
        }
        self.wake(Wait::Bytes(ino), now);
        self.reads.cache.evict();
    }

    /// Stop tracking fetch `id`; false if it was not tracked (anymore).
    fn forget_fetch(&mut self, ino: Ino, id: EffectId) -> bool {
        let Some(v) = self.reads.fetching.get_mut(&ino) else { return false };
        let before = v.len();
        v.retain(|(_, e)| *e != id);
        let found = v.len() != before;
        if v.is_empty() {
            self.reads.fetching.remove(&ino);
        }
        found
    }

    /// `ino`'s content changed: cached bytes and fetches in flight are of the old content.
    pub(crate) fn content_changed(&mut self, ino: Ino) {
        self.reads.cache.invalidate(ino);
        self.reads.fetching.remove(&ino);
        self.reads.forget_reader(Reader::Inode(ino));
        self.abandon_copy(ino);
    }

    pub(crate) fn fail_fetch(&mut self, id: EffectId, ino: Ino, range: Range<u64>, err: FsError) {
        // The file is in the listing, so missing bytes are an I/O error, not ENOENT.
        let err = if err.errno == Errno::NoEnt { FsError::new(Errno::Io, "content_missing", err.detail) } else { err };
        self.forget_fetch(ino, id);
        let overlaps = |then: &Then| matches!(then, Then::ServeRead { range: r, .. } if r.start < range.end && range.start < r.end);
        let path = self.inodes.path(ino);
        let err = FsError { detail: format!("{path}: {}", err.detail), ..err };
        for (req, _) in self.parked.take_if(Wait::Bytes(ino), overlaps) {
            self.fail(req, err.clone());
        }
    }
}

/// `range` widened to the `block`-aligned blocks it touches, within `file_size`.
fn whole_blocks(range: Range<u64>, block: u64, file_size: u64) -> Range<u64> {
    if range.is_empty() {
        return range;
    }
    range.start / block * block..range.end.div_ceil(block).saturating_mul(block).min(file_size)
}

/// `range` minus every range in `holes`, in order.
pub(crate) fn subtract(range: Range<u64>, holes: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut pieces = vec![range];
    for h in holes {
        pieces = pieces
            .into_iter()
            .flat_map(|p| {
                if h.end <= p.start || h.start >= p.end {
                    vec![p]
                } else {
                    let mut out = Vec::new();
                    if p.start < h.start {
                        out.push(p.start..h.start);
                    }
                    if h.end < p.end {
                        out.push(h.end..p.end);
                    }
                    out
                }
            })
            .collect();
    }
    pieces
}

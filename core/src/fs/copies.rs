//! Local copies of large files read whole, opened through the kernel's FUSE passthrough
//! (`MountConfig::copies`: read-only FUSE mounts whose process may register backing files).
//!
//! The bytes fetched for a file of at least `min_size` are also written to a copy of its own
//! (a staging-file edit, off the read path). Once every byte is there, later opens of the file
//! name the copy (`Reply::Open::backing`) and the kernel reads it directly: its page cache,
//! in large folios, and mmap, with no request to the mount.
//!
//! The kernel lets an inode be open through one copy or through its own page cache, never
//! both: an open follows the mode the file's open handles are in, and a file open in the
//! page-cache mode is not switched until its last close. A content change retires the copy,
//! removed at its last close; a file open through its copy when its content changes becomes a
//! new inode (`merge_entry`), so new opens never meet the old copy. Copies hold at most
//! `max_bytes` together; the least recently opened, not open, go first.

use std::ops::Range;

use bytes::Bytes;

use crate::collections::{Map, Set};
use crate::effect::{Effect, StageEdit, StageOp};
use crate::error::{FsError, LogLevel};
use crate::inode::{Ino, NodeKind};
use crate::request::Backing;

use super::flights::Purpose;
use super::{Filesystem, OpenFile};

/// Most writes to one copy in flight (each at most one fetch, 4 MiB) before read-ahead of its
/// file waits for them.
const MAX_COPY_WRITES: u32 = 4;

/// The copy of one file's current content.
struct Copy {
    identity: u64,
    /// Names the copy's file (`copy_path`) and the handles open through it (`OpenFile::through`).
    number: u64,
    size: u64,
    /// Byte ranges on disk, sorted and merged.
    covered: Vec<Range<u64>>,
    /// Writes in flight.
    writing: u32,
    /// When it was last opened (a counter), for eviction.
    used: u64,
}

impl Copy {
    fn complete(&self) -> bool {
        self.writing == 0 && self.covered.first() == Some(&(0..self.size))
    }
}

#[derive(Default)]
pub(crate) struct Copies {
    /// The copy of each file's current content, being written or complete.
    of: Map<Ino, Copy>,
    /// Copies of content that changed, still open: removed at their last close.
    retired: Set<u64>,
    /// Bytes the current copies may take on disk.
    bytes: u64,
    next: u64,
    clock: u64,
}

impl Filesystem {
    /// How a new open of `ino` reads: through a copy (`Some`) or the page cache. Decided
    /// from the file's handles already open; the caller marks the new one (`set_through`).
    pub(crate) fn copy_for_open(&mut self, ino: Ino) -> Option<(u64, Backing)> {
        self.cfg.copies.as_ref()?;
        let identity = self.content_identity(ino);
        let open_copy = self.handles.of_file(ino).find_map(|f| f.through);
        let in_page_cache = self.handles.of_file(ino).any(|f| f.through.is_none());
        let current = self.copies.of.get(&ino).filter(|c| Some(c.identity) == identity);
        let (n, direct_io) = match open_copy {
            // Open through a copy: every open of the inode must name that same copy. One
            // retired (an open of the replaced inode by a dentry the kernel still held) reads
            // through the mount.
            Some(n) => (n, current.is_none_or(|c| c.number != n)),
            None if in_page_cache => return None,
            None => (current.filter(|c| c.complete())?.number, false),
        };
        self.copies.clock += 1;
        if let Some(c) = self.copies.of.get_mut(&ino).filter(|c| c.number == n) {
            c.used = self.copies.clock;
        }
        self.stats.opens_through_copies += 1;
        Some((n, Backing { path: self.copy_path(n), direct_io }))
    }

    /// Is a handle of `ino` open through a copy?
    pub(crate) fn open_through_copy(&self, ino: Ino) -> bool {
        self.handles.of_file(ino).any(|f| f.through.is_some())
    }

    /// A handle closed: a retired copy goes with the last handle open through it.
    pub(crate) fn copy_closed(&mut self, file: OpenFile) {
        if let Some(n) = file.through.filter(|n| !self.handles.through_open(*n)) {
            if self.copies.retired.remove(&n) {
                self.remove_copy_file(n);
            }
        }
    }

    fn copy_path(&self, n: u64) -> String {
        let dir = self.cfg.copies.as_ref().map_or("", |p| p.dir.as_str());
        format!("{dir}copy-{n}")
    }

    /// Do fetches of `ino` skip the disk chunk cache? Yes while a reader reads it in order and
    /// its copy is being written: the copy keeps those bytes, written to the disk once rather
    /// than twice (random reads keep using the chunk cache).
    pub(crate) fn copy_replaces_cache(&self, ino: Ino) -> bool {
        let sequential = self.reads.has_sequential_reader(ino, &self.cfg.policy);
        let identity = self.content_identity(ino);
        sequential && self.copies.of.get(&ino).is_some_and(|c| Some(c.identity) == identity && !c.complete())
    }

    /// Are so many writes to `ino`'s copy in flight that reading ahead must wait? (Their bytes
    /// are held in memory until written: a disk slower than the fetches would grow it.)
    pub(crate) fn copy_backlogged(&self, ino: Ino) -> bool {
        self.copies.of.get(&ino).is_some_and(|c| c.writing >= MAX_COPY_WRITES)
    }

    /// Bytes of `ino` at `offset` arrived from the Hub: write them to its copy.
    pub(crate) fn copy_fetched(&mut self, ino: Ino, offset: u64, pieces: &[Bytes]) {
        let Some(policy) = self.cfg.copies.clone() else { return };
        let Some(NodeKind::File { size, .. }) = self.inodes.get(ino).map(|n| &n.kind) else { return };
        let size = *size;
        let Some(identity) = self.content_identity(ino) else { return };
        if size < policy.min_size || self.writes.has(ino) {
            return;
        }
        if self.copies.of.get(&ino).is_some_and(|c| c.identity != identity) {
            self.retire_copy(ino);
        }
        if !self.copies.of.contains_key(&ino) {
            if !self.make_room(size, policy.max_bytes) {
                return;
            }
            self.copies.next += 1;
            let copy = Copy { identity, number: self.copies.next, size, covered: Vec::new(), writing: 0, used: 0 };
            self.copies.of.insert(ino, copy);
            self.copies.bytes += size;
        }
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let range = offset..offset + len;
        let Some(copy) = self.copies.of.get_mut(&ino) else { return };
        if copy.covered.iter().any(|c| c.start <= range.start && range.end <= c.end) {
            return;
        }
        copy.writing += 1;
        let n = copy.number;
        let mut at = offset;
        let edits = pieces
            .iter()
            .map(|p| {
                let edit = StageEdit::Write { offset: at, data: p.clone() };
                at += p.len() as u64;
                edit
            })
            .collect();
        let effect = Effect::Stage(StageOp::Edit { path: self.copy_path(n), edits });
        self.start_effect(Purpose::Copy { ino, copy: n, range: Some(range) }, effect);
    }

    /// A write to, or the removal of, a copy ended.
    pub(crate) fn on_copy_step(&mut self, ino: Ino, n: u64, range: Option<Range<u64>>, result: Result<(), FsError>) {
        let Some(range) = range else {
            if let Err(e) = result {
                self.log(LogLevel::Warn, format!("removing the local copy {}: {}", self.copy_path(n), e.detail));
            }
            return;
        };
        let Some(copy) = self.copies.of.get_mut(&ino).filter(|c| c.number == n) else {
            // Retired while this write was in flight: the write may have created it again.
            if !self.handles.through_open(n) {
                self.remove_copy_file(n);
            }
            return;
        };
        copy.writing -= 1;
        match result {
            Ok(()) => {
                insert_range(&mut copy.covered, range);
                if copy.complete() {
                    self.stats.copies_made += 1;
                }
            }
            Err(e) => {
                let path = self.copy_path(n);
                self.log(
                    LogLevel::Warn,
                    format!("local copy {path} not kept ({}); the file reads through the mount", e.detail),
                );
                self.retire_copy(ino);
            }
        }
    }

    /// `ino`'s copy no longer matches its content (or cannot be kept): forget it, and remove
    /// it now or at its last close.
    pub(crate) fn retire_copy(&mut self, ino: Ino) {
        let Some(copy) = self.copies.of.remove(&ino) else { return };
        self.copies.bytes -= copy.size;
        if self.handles.through_open(copy.number) {
            self.copies.retired.insert(copy.number);
        } else {
            self.remove_copy_file(copy.number);
        }
    }

    /// Retire the least recently opened copies not open until `size` more bytes fit.
    fn make_room(&mut self, size: u64, max_bytes: u64) -> bool {
        while self.copies.bytes + size > max_bytes {
            let victim = (self.copies.of.iter())
                .filter(|(_, c)| !self.handles.through_open(c.number))
                .min_by_key(|(_, c)| (c.used, c.number))
                .map(|(ino, _)| *ino);
            match victim {
                Some(ino) => self.retire_copy(ino),
                None => return false,
            }
        }
        true
    }

    fn remove_copy_file(&mut self, n: u64) {
        let effect = Effect::Stage(StageOp::Remove { path: self.copy_path(n) });
        self.start_effect(Purpose::Copy { ino: crate::inode::ROOT_INO, copy: n, range: None }, effect);
    }
}

/// Add `range` to the sorted, merged `ranges`.
fn insert_range(ranges: &mut Vec<Range<u64>>, range: Range<u64>) {
    let mut merged = range;
    ranges.retain(|r| {
        let touches = r.start <= merged.end && merged.start <= r.end;
        if touches {
            merged = merged.start.min(r.start)..merged.end.max(r.end);
        }
        !touches
    });
    let at = ranges.partition_point(|r| r.start < merged.start);
    ranges.insert(at, merged);
}

#[cfg(test)]
mod tests {
    use super::insert_range;

    #[test]
    fn ranges_merge_whatever_order_they_come_in() {
        let mut r = Vec::new();
        for piece in [8..12, 0..4, 12..16, 4..8, 2..6] {
            insert_range(&mut r, piece);
        }
        assert_eq!(r, vec![0..16]);
        let mut r = vec![0..2, 6..8];
        insert_range(&mut r, 3..4);
        assert_eq!(r, vec![0..2, 3..4, 6..8]);
    }
}

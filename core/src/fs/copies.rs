//! Local copies of large files read whole, opened through the kernel's FUSE passthrough
//! (`MountConfig::copies`: read-only FUSE mounts whose process may register backing files).
//!
//! The bytes fetched for a file of at least `min_size` are also written to a partial copy in
//! the mount's own directory (a staging-file edit, off the read path). Once every byte is
//! there, it is synced and renamed into the shared directory under a name made of its content's
//! hash and size (`copy_name`), so it outlives the mount: the next mount of the same cache
//! directory is told of it at start (`CopyPolicy::stored`), and a file whose content has a copy
//! is answered with it on open (`Reply::Open::backing`). The kernel then reads the copy
//! directly: its page cache, in large folios, and mmap, with no request to the mount.
//!
//! The kernel lets an inode be open through one copy or through its own page cache, never
//! both: an open follows the mode the file's open handles are in, and a file open in the
//! page-cache mode is not switched until its last close. A file open through its copy when its
//! content changes becomes a new inode (`merge_entry`), so new opens never meet the old copy;
//! the old copy stays, still true to the content it is named by. A content change abandons a
//! partial copy. Copies hold at most `max_bytes` together; the least recently opened, not
//! open, are removed first.

use std::ops::Range;

use bytes::Bytes;

use crate::collections::Map;
use crate::effect::{Effect, StageEdit, StageOp};
use crate::error::{FsError, LogLevel};
use crate::hub::ContentSource;
use crate::inode::{Ino, NodeKind, ROOT_INO};
use crate::request::Backing;

use super::flights::Purpose;
use super::Filesystem;

/// Most writes to one copy in flight (each at most one fetch, 4 MiB) before read-ahead of its
/// file waits for them.
const MAX_COPY_WRITES: u32 = 4;

/// The name of the copy of content `source` of `size` bytes, when it has a name: the kind of
/// hash, the hash (hex digits only, so a name from the Hub never makes a path) and the size.
fn copy_name(source: &ContentSource, size: u64) -> Option<String> {
    let (kind, hash) = match source {
        ContentSource::Xet { hash } => ("xet", hash),
        ContentSource::Regular { oid } => ("git", oid),
        ContentSource::Layer => return None,
    };
    let plain = !hash.is_empty() && hash.len() <= 128 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    plain.then(|| format!("{kind}-{hash}-{size}"))
}

/// The size a copy named `name` must have, if `name` is a copy's name at all (the launcher
/// keeps only such files of the copies directory, at that size).
pub fn copy_name_size(name: &str) -> Option<u64> {
    let (rest, size) = name.rsplit_once('-')?;
    let (kind, hash) = rest.split_once('-')?;
    let size = size.parse().ok()?;
    let source = match kind {
        "xet" => ContentSource::Xet { hash: hash.to_string() },
        "git" => ContentSource::Regular { oid: hash.to_string() },
        _ => return None,
    };
    (copy_name(&source, size).as_deref() == Some(name)).then_some(size)
}

/// A copy being written for the current content of one file.
struct Partial {
    name: String,
    /// Names its file in the partial directory.
    number: u64,
    size: u64,
    /// Byte ranges on disk, sorted and merged.
    covered: Vec<Range<u64>>,
    /// Writes in flight.
    writing: u32,
}

impl Partial {
    fn complete(&self) -> bool {
        self.writing == 0 && self.covered.first() == Some(&(0..self.size))
    }
}

/// A complete copy in the shared directory.
struct Stored {
    name: String,
    size: u64,
    /// When it was last opened (a counter), for eviction.
    used: u64,
}

/// What a copy step was (`Purpose::Copy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CopyStep {
    /// Bytes written to a partial copy.
    Write(Range<u64>),
    /// A complete partial copy synced and renamed to its name.
    Publish,
    /// A copy removed.
    Remove,
}

#[derive(Default)]
pub(crate) struct Copies {
    /// Complete copies by number (`OpenFile::through`), and the number of each name.
    stored: Map<u64, Stored>,
    by_name: Map<String, u64>,
    /// The copy being written of each file's current content.
    partial: Map<Ino, Partial>,
    /// Complete partial copies being published, by number.
    publishing: Map<u64, Partial>,
    /// Bytes the copies take on disk, stored, partial and publishing.
    bytes: u64,
    next: u64,
    clock: u64,
}

impl Copies {
    /// The copies a mount finds at start (`CopyPolicy::stored`, least recently used first);
    /// a file whose size is not its name's is left out.
    pub fn new(found: &[(String, u64)]) -> Self {
        let mut copies = Copies::default();
        for (name, size) in found {
            if copy_name_size(name) == Some(*size) && !copies.by_name.contains_key(name) {
                copies.clock += 1;
                copies.store(name.clone(), *size);
            }
        }
        copies
    }

    fn store(&mut self, name: String, size: u64) {
        self.next += 1;
        self.by_name.insert(name.clone(), self.next);
        self.stored.insert(self.next, Stored { name, size, used: self.clock });
        self.bytes += size;
    }
}

impl Filesystem {
    /// The name of the copy of `ino`'s current content, and its size.
    fn copy_name_of(&self, ino: Ino) -> Option<(String, u64)> {
        let Some(NodeKind::File { size, source }) = self.inodes.get(ino).map(|n| &n.kind) else { return None };
        Some((copy_name(source, *size)?, *size))
    }

    /// How a new open of `ino` reads: through a copy (`Some`) or the page cache. Decided
    /// from the file's handles already open; the caller marks the new one (`set_through`).
    pub(crate) fn copy_for_open(&mut self, ino: Ino) -> Option<(u64, Backing)> {
        self.cfg.copies.as_ref()?;
        let open_copy = self.handles.of_file(ino).find_map(|f| f.through);
        let in_page_cache = self.handles.of_file(ino).any(|f| f.through.is_none());
        let current = self.copy_name_of(ino).and_then(|(name, _)| self.copies.by_name.get(&name).copied());
        let (n, direct_io) = match open_copy {
            // Open through a copy: every open of the inode must name that same copy. Should its
            // content ever differ from the copy's (a change gives such a file a new inode),
            // the open reads through the mount.
            Some(n) => (n, current != Some(n)),
            None if in_page_cache => return None,
            None => (current?, false),
        };
        self.copies.clock += 1;
        let stored = self.copies.stored.get_mut(&n)?;
        stored.used = self.copies.clock;
        let name = stored.name.clone();
        let path = format!("{}{name}", self.copies_dir());
        self.stats.opens_through_copies += 1;
        Some((n, Backing { path, direct_io }))
    }

    /// Is a handle of `ino` open through a copy?
    pub(crate) fn open_through_copy(&self, ino: Ino) -> bool {
        self.handles.of_file(ino).any(|f| f.through.is_some())
    }

    fn copies_dir(&self) -> &str {
        self.cfg.copies.as_ref().map_or("", |p| p.dir.as_str())
    }

    fn partial_path(&self, n: u64) -> String {
        let dir = self.cfg.copies.as_ref().map_or("", |p| p.partial_dir.as_str());
        format!("{dir}partial-{n}")
    }

    /// Do fetches of `ino` skip the disk chunk cache? Yes while a reader reads it in order and
    /// its copy is being written: the copy keeps those bytes, written to the disk once rather
    /// than twice (random reads keep using the chunk cache).
    pub(crate) fn copy_replaces_cache(&self, ino: Ino) -> bool {
        let sequential = self.reads.has_sequential_reader(ino, &self.cfg.policy);
        let name = self.copy_name_of(ino).map(|(name, _)| name);
        sequential && self.copies.partial.get(&ino).is_some_and(|p| Some(&p.name) == name.as_ref())
    }

    /// Are so many writes to `ino`'s copy in flight that reading ahead must wait? (Their bytes
    /// are held in memory until written: a disk slower than the fetches would grow it.)
    pub(crate) fn copy_backlogged(&self, ino: Ino) -> bool {
        self.copies.partial.get(&ino).is_some_and(|p| p.writing >= MAX_COPY_WRITES)
    }

    /// Bytes of `ino` at `offset` arrived from the Hub: write them to its partial copy.
    pub(crate) fn copy_fetched(&mut self, ino: Ino, offset: u64, pieces: &[Bytes]) {
        let Some(policy) = self.cfg.copies.clone() else { return };
        let Some((name, size)) = self.copy_name_of(ino) else { return };
        if size < policy.min_size || self.writes.has(ino) || self.copies.by_name.contains_key(&name) {
            return;
        }
        if self.copies.partial.get(&ino).is_some_and(|p| p.name != name) {
            self.abandon_copy(ino);
        }
        if !self.copies.partial.contains_key(&ino) {
            let elsewhere = |p: &Partial| p.name == name;
            if self.copies.partial.values().any(elsewhere) || self.copies.publishing.values().any(elsewhere) {
                return;
            }
            if !self.make_room(size, policy.max_bytes) {
                return;
            }
            self.copies.next += 1;
            let partial = Partial { name, number: self.copies.next, size, covered: Vec::new(), writing: 0 };
            self.copies.partial.insert(ino, partial);
            self.copies.bytes += size;
        }
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let range = offset..offset + len;
        let Some(partial) = self.copies.partial.get_mut(&ino) else { return };
        if partial.covered.iter().any(|c| c.start <= range.start && range.end <= c.end) {
            return;
        }
        partial.writing += 1;
        let n = partial.number;
        let mut at = offset;
        let edits = pieces
            .iter()
            .map(|p| {
                let edit = StageEdit::Write { offset: at, data: p.clone() };
                at += p.len() as u64;
                edit
            })
            .collect();
        let effect = Effect::Stage(StageOp::Edit { path: self.partial_path(n), edits });
        self.start_effect(Purpose::Copy { ino, copy: n, step: CopyStep::Write(range) }, effect);
    }

    /// A step on copy `n` (of `ino`, for writes and publishing) ended.
    pub(crate) fn on_copy_step(&mut self, ino: Ino, n: u64, step: CopyStep, result: Result<(), FsError>) {
        match step {
            CopyStep::Write(range) => self.on_copy_written(ino, n, range, result),
            CopyStep::Publish => self.on_copy_published(n, result),
            CopyStep::Remove => {
                if let Err(e) = result {
                    self.log(LogLevel::Warn, format!("removing a local copy: {}", e.detail));
                }
            }
        }
    }

    fn on_copy_written(&mut self, ino: Ino, n: u64, range: Range<u64>, result: Result<(), FsError>) {
        let Some(partial) = self.copies.partial.get_mut(&ino).filter(|p| p.number == n) else {
            // Abandoned while this write was in flight: the write may have created it again.
            self.remove_copy_file(self.partial_path(n));
            return;
        };
        partial.writing -= 1;
        if let Err(e) = result {
            let path = self.partial_path(n);
            self.log(
                LogLevel::Warn,
                format!("local copy {path} not kept ({}); the file reads through the mount", e.detail),
            );
            return self.abandon_copy(ino);
        }
        insert_range(&mut partial.covered, range);
        if partial.complete() {
            let Some(partial) = self.copies.partial.remove(&ino) else { return };
            let to = format!("{}{}", self.copies_dir(), partial.name);
            let effect = Effect::Stage(StageOp::Publish { from: self.partial_path(n), to });
            self.copies.publishing.insert(n, partial);
            self.start_effect(Purpose::Copy { ino, copy: n, step: CopyStep::Publish }, effect);
        }
    }

    fn on_copy_published(&mut self, n: u64, result: Result<(), FsError>) {
        let Some(partial) = self.copies.publishing.remove(&n) else { return };
        self.copies.bytes -= partial.size;
        match result {
            Ok(()) if !self.copies.by_name.contains_key(&partial.name) => {
                self.stats.copies_made += 1;
                self.copies.clock += 1;
                self.copies.store(partial.name, partial.size);
            }
            Ok(()) => {}
            Err(e) => {
                self.log(LogLevel::Warn, format!("local copy {} not kept: {}", partial.name, e.detail));
                self.remove_copy_file(self.partial_path(n));
            }
        }
    }

    /// `ino`'s content changed (or its copy cannot be written): its partial copy goes.
    pub(crate) fn abandon_copy(&mut self, ino: Ino) {
        let Some(partial) = self.copies.partial.remove(&ino) else { return };
        self.copies.bytes -= partial.size;
        self.remove_copy_file(self.partial_path(partial.number));
    }

    /// Remove the least recently opened stored copies not open until `size` more bytes fit.
    fn make_room(&mut self, size: u64, max_bytes: u64) -> bool {
        while self.copies.bytes + size > max_bytes {
            let victim = (self.copies.stored.iter())
                .filter(|(n, _)| !self.handles.through_open(**n))
                .min_by_key(|(n, s)| (s.used, **n))
                .map(|(n, _)| *n);
            let Some(stored) = victim.and_then(|n| self.copies.stored.remove(&n)) else { return false };
            self.copies.by_name.remove(&stored.name);
            self.copies.bytes -= stored.size;
            self.remove_copy_file(format!("{}{}", self.copies_dir(), stored.name));
        }
        true
    }

    fn remove_copy_file(&mut self, path: String) {
        let effect = Effect::Stage(StageOp::Remove { path });
        self.start_effect(Purpose::Copy { ino: ROOT_INO, copy: 0, step: CopyStep::Remove }, effect);
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
    use super::{copy_name, copy_name_size, insert_range};
    use crate::hub::ContentSource;

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

    #[test]
    fn copies_are_named_by_hex_hashes_only() {
        let xet = ContentSource::Xet { hash: "ab".repeat(32) };
        let name = copy_name(&xet, 42).expect("a xet hash names a copy");
        assert_eq!(copy_name_size(&name), Some(42));
        assert_eq!(copy_name_size(&format!("git-{}-7", "c".repeat(40))), Some(7));
        for hostile in ["../../etc/passwd", "ab/cd", "", "ab cd"] {
            assert_eq!(copy_name(&ContentSource::Xet { hash: hostile.into() }, 1), None, "{hostile:?}");
        }
        for not_a_copy in ["partial-3", "xet-zz-1", "xet-ab-", "lfs-ab-1", "xet-ab-1-2", "xet-ab-01"] {
            assert_eq!(copy_name_size(not_a_copy), None, "{not_a_copy}");
        }
    }
}

//! File bytes already fetched: non-overlapping segments per inode, bounded by a byte budget
//! with least-recently-used eviction across all files. Segments are `Bytes` slices of what the
//! effects returned, so serving a read that falls inside one segment copies nothing.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::collections::Map;
use crate::inode::Ino;
use bytes::{Bytes, BytesMut};

struct Segment {
    data: Bytes,
    last_use: u64,
}

#[derive(Default)]
pub struct ReadCache {
    files: Map<Ino, BTreeMap<u64, Segment>>,
    /// (last_use, ino, start) of every segment, oldest first.
    lru: BTreeMap<(u64, Ino, u64), ()>,
    bytes: u64,
    budget: u64,
    tick: u64,
}

impl ReadCache {
    pub fn new(budget: u64) -> Self {
        ReadCache { budget, ..Default::default() }
    }

    pub fn cached_bytes(&self) -> u64 {
        self.bytes
    }

    /// Sub-ranges of `want` not held in the cache, in order.
    pub fn gaps(&self, ino: Ino, want: Range<u64>) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        if want.is_empty() {
            return gaps;
        }
        let mut pos = want.start;
        if let Some(segs) = self.files.get(&ino) {
            let first = segs.range(..=pos).next_back().map(|(s, _)| *s).unwrap_or(pos);
            for (&start, seg) in segs.range(first..want.end) {
                let end = start + seg.data.len() as u64;
                if end <= pos {
                    continue;
                }
                if start > pos {
                    gaps.push(pos..start.min(want.end));
                }
                pos = pos.max(end);
                if pos >= want.end {
                    break;
                }
            }
        }
        if pos < want.end {
            gaps.push(pos..want.end);
        }
        gaps
    }

    /// The bytes of `want` if fully cached (zero-copy when one segment holds them).
    pub fn read(&mut self, ino: Ino, want: Range<u64>) -> Option<Bytes> {
        if want.is_empty() {
            return Some(Bytes::new());
        }
        if !self.gaps(ino, want.clone()).is_empty() {
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let segs = self.files.get_mut(&ino)?;
        let first = segs.range(..=want.start).next_back().map(|(s, _)| *s)?;
        let mut pieces = Vec::new();
        for (&start, seg) in segs.range_mut(first..want.end) {
            let end = start + seg.data.len() as u64;
            if end <= want.start {
                continue;
            }
            let from = want.start.max(start) - start;
            let to = want.end.min(end) - start;
            pieces.push(seg.data.slice(from as usize..to as usize));
            self.lru.remove(&(seg.last_use, ino, start));
            seg.last_use = tick;
            self.lru.insert((tick, ino, start), ());
        }
        if pieces.len() == 1 {
            return pieces.pop();
        }
        let mut out = BytesMut::with_capacity((want.end - want.start) as usize);
        for p in pieces {
            out.extend_from_slice(&p);
        }
        Some(out.freeze())
    }

    /// Store `data` fetched at `offset`, keeping only the parts not already cached.
    pub fn insert(&mut self, ino: Ino, offset: u64, data: Bytes) {
        let end = offset + data.len() as u64;
        for gap in self.gaps(ino, offset..end) {
            let piece = data.slice((gap.start - offset) as usize..(gap.end - offset) as usize);
            self.tick += 1;
            self.bytes += piece.len() as u64;
            self.lru.insert((self.tick, ino, gap.start), ());
            self.files.entry(ino).or_default().insert(gap.start, Segment { data: piece, last_use: self.tick });
        }
    }

    /// A sequential reader has moved past `offset`: segments wholly before it are evicted first
    /// (the kernel page cache already holds those bytes).
    pub fn demote_before(&mut self, ino: Ino, offset: u64) {
        let Some(segs) = self.files.get_mut(&ino) else {
            return;
        };
        for (&start, seg) in segs.range_mut(..offset) {
            if start + seg.data.len() as u64 <= offset && seg.last_use != 0 {
                self.lru.remove(&(seg.last_use, ino, start));
                seg.last_use = 0;
                self.lru.insert((0, ino, start), ());
            }
        }
    }

    /// Forget everything cached for `ino` (its content changed).
    pub fn invalidate(&mut self, ino: Ino) {
        if let Some(segs) = self.files.remove(&ino) {
            for (start, seg) in segs {
                self.lru.remove(&(seg.last_use, ino, start));
                self.bytes -= seg.data.len() as u64;
            }
        }
    }

    /// Drop least-recently-used segments until the cache fits its budget.
    pub fn evict(&mut self) {
        while self.bytes > self.budget {
            let Some(((_, ino, start), ())) = self.lru.pop_first() else {
                break;
            };
            if let Some(segs) = self.files.get_mut(&ino) {
                if let Some(seg) = segs.remove(&start) {
                    self.bytes -= seg.data.len() as u64;
                }
                if segs.is_empty() {
                    self.files.remove(&ino);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(range: Range<u64>) -> Bytes {
        range.map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
    }

    #[test]
    fn gaps_and_reads() {
        let mut c = ReadCache::new(1 << 20);
        c.insert(1, 10, data(10..20));
        c.insert(1, 30, data(30..40));
        assert_eq!(c.gaps(1, 0..50), vec![0..10, 20..30, 40..50]);
        assert_eq!(c.gaps(1, 12..18), vec![]);
        assert_eq!(c.read(1, 12..18).unwrap(), data(12..18));
        assert!(c.read(1, 15..35).is_none());
        c.insert(1, 15, data(15..35));
        assert_eq!(c.read(1, 11..39).unwrap(), data(11..39));
        assert_eq!(c.cached_bytes(), 30);
        assert_eq!(c.gaps(2, 0..5), vec![0..5]);
    }

    #[test]
    fn eviction_is_lru() {
        let mut c = ReadCache::new(20);
        c.insert(1, 0, data(0..10));
        c.insert(2, 0, data(0..10));
        c.read(1, 0..1);
        c.insert(3, 0, data(0..10));
        c.evict();
        assert_eq!(c.cached_bytes(), 20);
        assert!(c.read(2, 0..1).is_none());
        assert!(c.read(1, 0..10).is_some());
    }

    proptest! {
        /// Whatever is inserted, reads return exactly the file's bytes and the accounting holds.
        #[test]
        fn model(ops in proptest::collection::vec((0u64..200, 1u64..60, any::<bool>()), 1..40)) {
            let mut c = ReadCache::new(150);
            for (start, len, evict) in ops {
                c.insert(7, start, data(start..start + len));
                if let Some(b) = c.read(7, start..start + len / 2) {
                    prop_assert_eq!(b, data(start..start + len / 2));
                }
                if evict { c.evict(); prop_assert!(c.cached_bytes() <= 150); }
                let total: u64 = c.files.values().flat_map(|s| s.values()).map(|s| s.data.len() as u64).sum();
                prop_assert_eq!(total, c.cached_bytes());
                prop_assert_eq!(c.lru.len(), c.files.values().map(|s| s.len()).sum::<usize>());
            }
        }
    }
}

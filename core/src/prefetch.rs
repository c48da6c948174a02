//! Read-ahead policy per reader, in the manner of the kernel's readahead: the window grows with
//! the length of the current sequential streak, and nothing is read ahead until the streak is
//! longer than one large random read. So a sequential stream gets deep prefetch, and random
//! reads (even 1 MiB ones, which the kernel splits into several sequential requests) fetch only
//! what they cover.

use std::ops::Range;

use crate::config::ReadPolicy;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadPattern {
    /// Where the next read would start if the reader is sequential.
    next_offset: u64,
    /// Bytes read back to back in the current streak.
    streak: u64,
}

/// Ranges to have fetched for one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPlan {
    /// Needed to answer the read now.
    pub demand: Range<u64>,
    /// Worth fetching ahead of the reader (may be empty).
    pub ahead: Range<u64>,
}

impl ReadPattern {
    /// Record a read of `[offset, end)` in a file of `file_size` bytes and plan the fetches.
    pub fn on_read(&mut self, offset: u64, end: u64, file_size: u64, policy: &ReadPolicy) -> FetchPlan {
        let len = end.saturating_sub(offset);
        // A re-read inside the streak's last request (kernel retries, overlapping reads) keeps it.
        let sequential = offset == self.next_offset || (offset < self.next_offset && end >= self.next_offset);
        // The kernel's own readahead and several FUSE threads deliver a sequential stream
        // slightly out of order (a block from further on, one that overtook another): a read
        // near the streak's end belongs to it.
        let near = self.streak > 0 && offset.abs_diff(self.next_offset) <= policy.max_window;
        if sequential && self.streak > 0 {
            self.streak += end.saturating_sub(self.next_offset);
        } else if near {
            self.streak += len;
        } else {
            self.streak = len;
        }
        self.next_offset = self.next_offset.max(end);
        if self.streak < policy.sequential_threshold {
            return FetchPlan { demand: offset..end, ahead: end..end };
        }
        let window = self.window(policy);
        let ahead_end = end.saturating_add(window).min(file_size);
        FetchPlan { demand: offset..end, ahead: end.min(ahead_end)..ahead_end }
    }

    /// Where the next read would start if the reader is sequential.
    pub fn position(&self) -> u64 {
        self.next_offset
    }

    /// Current read-ahead window (0 while the reader does not look sequential).
    pub fn window(&self, policy: &ReadPolicy) -> u64 {
        if self.streak < policy.sequential_threshold {
            0
        } else {
            self.streak.clamp(policy.initial_window, policy.max_window)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn random_large_reads_do_not_prefetch() {
        let p = ReadPolicy::default();
        let mut r = ReadPattern::default();
        // One 1 MiB pread arrives as eight 128 KiB kernel reads.
        for i in 0..8 {
            let off = 500 * MIB + i * (128 << 10);
            let plan = r.on_read(off, off + (128 << 10), 1 << 30, &p);
            assert!(plan.ahead.is_empty(), "read {i} prefetched {:?}", plan.ahead);
        }
    }

    #[test]
    fn sequential_stream_grows_to_max_window() {
        let p = ReadPolicy::default();
        let mut r = ReadPattern::default();
        let mut off = 0;
        let mut last = None;
        while off < 200 * MIB {
            last = Some(r.on_read(off, off + (128 << 10), 1 << 30, &p));
            off += 128 << 10;
        }
        assert_eq!(r.window(&p), p.max_window);
        assert_eq!(last.unwrap().ahead, off..off + p.max_window);
        // A jump resets it.
        let plan = r.on_read(900 * MIB, 900 * MIB + 4096, 1 << 30, &p);
        assert!(plan.ahead.is_empty());
        assert_eq!(r.window(&p), 0);
    }

    #[test]
    fn reads_out_of_order_near_the_stream_keep_it() {
        let p = ReadPolicy::default();
        let mut r = ReadPattern::default();
        // What the kernel sent for a safetensors load through mmap (1 MiB reads).
        let mut order = vec![0, 1, 15, 16, 2, 3, 5, 4];
        order.extend(6..15);
        order.extend([17, 32, 33]);
        order.extend(18..32);
        for (i, mib) in order.into_iter().enumerate() {
            let plan = r.on_read(mib * MIB, (mib + 1) * MIB, 1 << 30, &p);
            assert!(i < 5 || !plan.ahead.is_empty(), "read {i} (at {mib} MiB) did not read ahead");
        }
        assert_eq!(r.window(&p), p.max_window);
        // A far jump still ends it.
        assert!(r.on_read(600 * MIB, 601 * MIB, 1 << 30, &p).ahead.is_empty());
        assert_eq!(r.window(&p), 0);
    }

    #[test]
    fn small_random_reads_near_each_other_never_prefetch() {
        let p = ReadPolicy::default();
        let mut r = ReadPattern::default();
        for i in 0..200u64 {
            let off = 100 * MIB + (i * 7919 % 64) * (64 << 10);
            assert!(r.on_read(off, off + 4096, 1 << 30, &p).ahead.is_empty(), "read {i}");
        }
    }

    proptest! {
        #[test]
        fn bounded(reads in proptest::collection::vec((0u64..1 << 30, 1u64..1 << 21, any::<bool>()), 1..100)) {
            let p = ReadPolicy::default();
            let mut r = ReadPattern::default();
            let mut next = 0;
            for (off, len, seq) in reads {
                let size = 1u64 << 30;
                let off = if seq { next } else { off }.min(size - 1);
                let end = (off + len).min(size);
                next = end;
                let plan = r.on_read(off, end, size, &p);
                prop_assert!(plan.ahead.end - plan.ahead.start <= p.max_window);
                prop_assert!(plan.ahead.end <= size);
                prop_assert!(plan.ahead.is_empty() || plan.ahead.start == end);
                prop_assert_eq!(plan.demand, off..end);
            }
        }
    }
}

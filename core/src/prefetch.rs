//! Read-ahead policy per reader: the window doubles while reads stay sequential and collapses
//! on a random access, so sequential streams get deep prefetch and random reads fetch only what
//! they cover.

use std::ops::Range;

use crate::config::ReadPolicy;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadPattern {
    /// Where the next read would start if the reader is sequential.
    next_offset: u64,
    /// Current read-ahead window (0 = random access, no read-ahead).
    window: u64,
    /// Reads seen; the very first read at offset 0 counts as sequential.
    reads: u64,
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
        let sequential = offset == self.next_offset && (self.reads > 0 || offset == 0);
        self.window = if sequential {
            if self.window == 0 {
                policy.initial_window
            } else {
                (self.window * 2).min(policy.max_window)
            }
        } else {
            0
        };
        self.reads += 1;
        self.next_offset = end;
        let ahead_start = end.min(file_size);
        let ahead_end = end.saturating_add(self.window).min(file_size);
        FetchPlan { demand: offset..end, ahead: ahead_start..ahead_end }
    }

    pub fn window(&self) -> u64 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_on_sequential_collapses_on_random() {
        let p = ReadPolicy::default();
        let mut r = ReadPattern::default();
        let plan = r.on_read(0, 128 << 10, 1 << 30, &p);
        assert_eq!(plan.ahead, (128 << 10)..(128 << 10) + p.initial_window);
        let mut off = 128 << 10;
        for _ in 0..20 {
            r.on_read(off, off + (128 << 10), 1 << 30, &p);
            off += 128 << 10;
        }
        assert_eq!(r.window(), p.max_window);
        let plan = r.on_read(500 << 20, (500 << 20) + (1 << 20), 1 << 30, &p);
        assert_eq!(r.window(), 0);
        assert!(plan.ahead.is_empty());
        assert_eq!(plan.demand, (500 << 20)..(501 << 20));
    }

    proptest! {
        #[test]
        fn bounded(reads in proptest::collection::vec((0u64..1 << 30, 1u64..1 << 21), 1..100)) {
            let p = ReadPolicy::default();
            let mut r = ReadPattern::default();
            for (off, len) in reads {
                let size = 1u64 << 30;
                let end = (off + len).min(size);
                let plan = r.on_read(off, end, size, &p);
                prop_assert!(plan.ahead.end - plan.ahead.start <= p.max_window);
                prop_assert!(plan.ahead.end <= size);
                prop_assert_eq!(plan.demand, off..end);
            }
        }
    }
}

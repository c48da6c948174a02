//! Directory listings: fetched page by page, then served to lookup, getattr and readdir(plus)
//! with no per-file request. A listing remembers when it was loaded, so a mutable source (a
//! bucket) can be re-listed after its TTL while the old children keep serving the local view.
//! Requests that need a listing still in flight wait in the filesystem's parked table.
//!
//! Children carry stable readdir cookies (2, 3, ...; 0 and 1 are `.` and `..`): removing an
//! entry never shifts the others, so a reader that deletes as it goes skips nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::collections::{Map, Set};
use crate::inode::Ino;
use crate::time::Instant;

/// First cookie of a child entry.
pub const FIRST_COOKIE: u64 = 2;

#[derive(Debug, Default)]
struct Dir {
    children: BTreeMap<u64, Ino>,
    next_cookie: u64,
    /// `None` until the first listing completed.
    loaded_at: Option<Instant>,
    /// When a request last needed this listing (for `--inode-soft-limit` eviction).
    used_at: Option<Instant>,
    /// Children of a listing in progress.
    fetching: Option<Vec<Ino>>,
    /// Names that listing has shown so far.
    fetched_names: Set<String>,
}

#[derive(Default)]
pub struct Listings {
    dirs: Map<Ino, Dir>,
}

/// What the caller must do after asking for a directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Need {
    /// The listing is loaded and fresh: serve from `children`.
    Ready,
    /// The first page must be requested now (and waited for).
    StartFetch,
    /// A fetch is already in flight: wait for it.
    Wait,
}

impl Listings {
    /// Is `dir` loaded and younger than `ttl` (`None` = never stale)?
    pub fn is_fresh(&self, dir: Ino, now: Instant, ttl: Option<Duration>) -> bool {
        match self.dirs.get(&dir).and_then(|d| d.loaded_at) {
            None => false,
            // A listing is always fresh for the instant it completed in, so the requests it
            // wakes are served even with a zero TTL.
            Some(at) => ttl.is_none_or(|ttl| {
                let age = now.saturating_duration_since(at);
                age < ttl || age.is_zero()
            }),
        }
    }

    /// Ready if fresh; otherwise say whether a fetch must start.
    pub fn need(&mut self, dir: Ino, now: Instant, ttl: Option<Duration>) -> Need {
        if let Some(d) = self.dirs.get_mut(&dir) {
            d.used_at = Some(now);
        }
        if self.is_fresh(dir, now, ttl) {
            return Need::Ready;
        }
        let d = self.dirs.entry(dir).or_default();
        d.used_at = Some(now);
        if d.fetching.is_some() {
            Need::Wait
        } else {
            d.fetching = Some(Vec::new());
            d.fetched_names.clear();
            Need::StartFetch
        }
    }

    /// Start a background re-listing of a loaded directory; false if one is running.
    pub fn start_refresh(&mut self, dir: Ino) -> bool {
        let d = self.dirs.entry(dir).or_default();
        if d.fetching.is_some() {
            return false;
        }
        d.fetching = Some(Vec::new());
        d.fetched_names.clear();
        true
    }

    /// Loaded directories (candidates for a poll's re-listing), in inode order.
    pub fn loaded(&self) -> Vec<Ino> {
        let mut dirs: Vec<Ino> = self.dirs.iter().filter(|(_, d)| d.loaded_at.is_some()).map(|(ino, _)| *ino).collect();
        dirs.sort_unstable();
        dirs
    }

    pub fn is_loaded(&self, dir: Ino) -> bool {
        self.dirs.get(&dir).is_some_and(|d| d.loaded_at.is_some())
    }

    /// Children in cookie order.
    pub fn children(&self, dir: Ino) -> Vec<(u64, Ino)> {
        self.dirs.get(&dir).map(|d| d.children.iter().map(|(c, i)| (*c, *i)).collect()).unwrap_or_default()
    }

    /// Up to `max` children from cookie `from` on, in cookie order.
    pub fn children_from(&self, dir: Ino, from: u64, max: usize) -> Vec<(u64, Ino)> {
        self.dirs
            .get(&dir)
            .map(|d| d.children.range(from..).take(max).map(|(c, i)| (*c, *i)).collect())
            .unwrap_or_default()
    }

    pub fn child_count(&self, dir: Ino) -> usize {
        self.dirs.get(&dir).map_or(0, |d| d.children.len())
    }

    /// Is this the first time the listing in progress shows `name`?
    pub fn first_sighting(&mut self, dir: Ino, name: &str) -> bool {
        match self.dirs.get_mut(&dir) {
            Some(d) => d.fetched_names.insert(name.to_string()),
            None => true,
        }
    }

    /// Append one page's children (already inserted in the inode table).
    pub fn add_page(&mut self, dir: Ino, inos: impl IntoIterator<Item = Ino>) {
        if let Some(fetching) = self.dirs.get_mut(&dir).and_then(|d| d.fetching.as_mut()) {
            fetching.extend(inos);
        }
    }

    /// The last page arrived: returns what it listed; the caller merges and calls `set_loaded`.
    pub fn take_fetched(&mut self, dir: Ino) -> Vec<Ino> {
        let Some(d) = self.dirs.get_mut(&dir) else { return Vec::new() };
        d.fetched_names.clear();
        d.fetching.take().unwrap_or_default()
    }

    /// Install `children` (kept in their old cookie order, new ones appended) as the loaded
    /// listing.
    pub fn set_loaded(&mut self, dir: Ino, children: &[Ino], now: Instant) {
        let d = self.dirs.entry(dir).or_default();
        let keep: Set<Ino> = children.iter().copied().collect();
        d.children.retain(|_, ino| keep.contains(ino));
        let present: Set<Ino> = d.children.values().copied().collect();
        d.next_cookie = d.next_cookie.max(FIRST_COOKIE);
        for ino in children {
            if !present.contains(ino) {
                d.children.insert(d.next_cookie, *ino);
                d.next_cookie += 1;
            }
        }
        d.loaded_at = Some(now);
    }

    /// A directory created in the mount: loaded, empty, never fetched.
    pub fn set_empty(&mut self, dir: Ino, now: Instant) {
        self.set_loaded(dir, &[], now);
    }

    /// Add a child to a loaded (or loading) listing.
    pub fn add_child(&mut self, dir: Ino, ino: Ino) {
        if let Some(d) = self.dirs.get_mut(&dir) {
            if !d.children.values().any(|i| *i == ino) {
                d.next_cookie = d.next_cookie.max(FIRST_COOKIE);
                d.children.insert(d.next_cookie, ino);
                d.next_cookie += 1;
            }
        }
    }

    /// Add a child to `dir` whether or not it is listed yet (the overlay's layer entries, put
    /// in before the remote listing; a listing keeps children with local changes).
    pub fn seed_child(&mut self, dir: Ino, ino: Ino) {
        self.dirs.entry(dir).or_default();
        self.add_child(dir, ino);
    }

    pub fn remove_child(&mut self, dir: Ino, ino: Ino) {
        if let Some(d) = self.dirs.get_mut(&dir) {
            d.children.retain(|_, i| *i != ino);
            if let Some(f) = d.fetching.as_mut() {
                f.retain(|i| *i != ino);
            }
        }
    }

    /// Loaded directories with no listing in flight, least recently used first (ties by inode,
    /// so the order is the same in every process).
    pub fn idle_by_last_use(&self) -> Vec<Ino> {
        let mut dirs: Vec<(Instant, Ino)> = self
            .dirs
            .iter()
            .filter(|(_, d)| d.loaded_at.is_some() && d.fetching.is_none())
            .map(|(ino, d)| (d.used_at.or(d.loaded_at).unwrap_or(Instant::ZERO), *ino))
            .collect();
        dirs.sort_unstable();
        dirs.into_iter().map(|(_, ino)| ino).collect()
    }

    /// Has `dir` a listing, loaded or in flight?
    pub fn is_known(&self, dir: Ino) -> bool {
        self.dirs.get(&dir).is_some_and(|d| d.loaded_at.is_some() || d.fetching.is_some())
    }

    /// Forget a directory's listing (it was removed, or evicted: the next access lists again).
    pub fn drop_dir(&mut self, dir: Ino) {
        self.dirs.remove(&dir);
    }

    /// Re-listing a loaded directory failed: keep serving what it had, as if listed `now`.
    pub fn keep_stale(&mut self, dir: Ino, now: Instant) {
        if let Some(d) = self.dirs.get_mut(&dir) {
            d.fetching = None;
            d.fetched_names.clear();
            d.loaded_at = Some(now);
        }
    }

    /// The listing failed: forget the partial fetch (the next access retries).
    pub fn fail(&mut self, dir: Ino) {
        if let Some(d) = self.dirs.get_mut(&dir) {
            d.fetching = None;
            d.fetched_names.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fetch_many_waiters() {
        let mut l = Listings::default();
        let now = Instant::ZERO;
        assert_eq!(l.need(1, now, None), Need::StartFetch);
        assert_eq!(l.need(1, now, None), Need::Wait);
        l.add_page(1, [5, 6]);
        l.add_page(1, [7]);
        let fetched = l.take_fetched(1);
        l.set_loaded(1, &fetched, now);
        assert_eq!(l.need(1, now, None), Need::Ready);
        assert_eq!(l.children(1), vec![(2, 5), (3, 6), (4, 7)]);
    }

    #[test]
    fn cookies_are_stable_across_removal_and_refresh() {
        let mut l = Listings::default();
        l.set_loaded(1, &[5, 6, 7], Instant::ZERO);
        l.remove_child(1, 6);
        assert_eq!(l.children(1), vec![(2, 5), (4, 7)]);
        l.add_child(1, 8);
        assert_eq!(l.children(1), vec![(2, 5), (4, 7), (5, 8)]);
        l.set_loaded(1, &[7, 9, 5], Instant::ZERO);
        assert_eq!(l.children(1), vec![(2, 5), (4, 7), (6, 9)]);
    }

    #[test]
    fn ttl_and_failure() {
        let mut l = Listings::default();
        let ttl = Some(Duration::from_secs(10));
        assert_eq!(l.need(1, Instant::ZERO, ttl), Need::StartFetch);
        l.fail(1);
        assert_eq!(l.need(1, Instant::ZERO, ttl), Need::StartFetch);
        l.take_fetched(1);
        l.set_loaded(1, &[], Instant::ZERO);
        assert!(l.is_fresh(1, Instant::from_nanos(9_000_000_000), ttl));
        assert_eq!(l.need(1, Instant::from_nanos(10_000_000_000), ttl), Need::StartFetch);
    }
}

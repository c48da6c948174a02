//! Directory listings: fetched once per directory, page by page, then served to lookup, getattr
//! and readdir(plus) with no per-file request. Requests that need a listing still in flight wait
//! here until its last page arrives.

use hashbrown::HashMap;

use crate::inode::Ino;
use crate::request::RequestId;

/// A request parked until a directory's listing is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiter {
    Lookup { req: RequestId, name: String },
    ReadDir { req: RequestId, offset: u64, plus: bool },
}

#[derive(Debug)]
enum State {
    Loading { children: Vec<Ino> },
    Loaded { children: Vec<Ino> },
}

#[derive(Default)]
pub struct Listings {
    dirs: HashMap<Ino, State>,
    waiters: HashMap<Ino, Vec<Waiter>>,
}

/// What the caller must do after asking for a directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// The listing is complete: serve from these children, in listing order.
    Ready(&'a [Ino]),
    /// The first page must be requested now (the request was parked).
    StartFetch,
    /// A fetch is already in flight (the request was parked).
    Wait,
}

impl Listings {
    /// Children of `dir` if its listing is complete; otherwise park `waiter`.
    pub fn need(&mut self, dir: Ino, waiter: Waiter) -> Need<'_> {
        let loading = match self.dirs.get(&dir) {
            Some(State::Loaded { .. }) => None,
            Some(State::Loading { .. }) => Some(true),
            None => Some(false),
        };
        match loading {
            None => Need::Ready(self.children(dir).unwrap_or_default()),
            Some(already) => {
                self.waiters.entry(dir).or_default().push(waiter);
                if already {
                    Need::Wait
                } else {
                    self.dirs.insert(dir, State::Loading { children: Vec::new() });
                    Need::StartFetch
                }
            }
        }
    }

    pub fn children(&self, dir: Ino) -> Option<&[Ino]> {
        match self.dirs.get(&dir) {
            Some(State::Loaded { children }) => Some(children),
            _ => None,
        }
    }

    /// Append one page's children (already inserted in the inode table).
    pub fn add_page(&mut self, dir: Ino, inos: impl IntoIterator<Item = Ino>) {
        if let Some(State::Loading { children }) = self.dirs.get_mut(&dir) {
            for ino in inos {
                if !children.contains(&ino) {
                    children.push(ino);
                }
            }
        }
    }

    /// The last page arrived: the listing is complete; returns the parked requests.
    pub fn finish(&mut self, dir: Ino) -> Vec<Waiter> {
        if let Some(State::Loading { children }) = self.dirs.remove(&dir) {
            self.dirs.insert(dir, State::Loaded { children });
        }
        self.waiters.remove(&dir).unwrap_or_default()
    }

    /// The listing failed: forget the partial state (the next access retries) and return the
    /// parked requests so they can be failed.
    pub fn fail(&mut self, dir: Ino) -> Vec<Waiter> {
        self.dirs.remove(&dir);
        self.waiters.remove(&dir).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fetch_many_waiters() {
        let mut l = Listings::default();
        let w = |n| Waiter::Lookup { req: RequestId(n), name: "x".into() };
        assert_eq!(l.need(1, w(1)), Need::StartFetch);
        assert_eq!(l.need(1, w(2)), Need::Wait);
        l.add_page(1, [5, 6]);
        l.add_page(1, [6, 7]);
        assert_eq!(l.finish(1), vec![w(1), w(2)]);
        assert_eq!(l.need(1, w(3)), Need::Ready(&[5, 6, 7]));
        assert_eq!(l.children(1), Some(&[5u64, 6, 7][..]));
    }

    #[test]
    fn failure_resets() {
        let mut l = Listings::default();
        let w = Waiter::ReadDir { req: RequestId(1), offset: 0, plus: false };
        assert_eq!(l.need(1, w.clone()), Need::StartFetch);
        assert_eq!(l.fail(1), vec![w.clone()]);
        assert_eq!(l.need(1, w), Need::StartFetch);
    }
}

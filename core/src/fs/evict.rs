//! Bounded memory for huge trees (`--inode-soft-limit`): every sweep interval, when the inode
//! table holds more than the limit, whole directory listings are unloaded, least recently used
//! first, until it is back under 90 % of it. A listing is unloaded only when none of its
//! children is still needed: held by the kernel (a lookup not yet forgotten, with FUSE), open,
//! written or created here and not yet committed, being fetched, or a directory whose own
//! listing is still loaded. Children the kernel still holds in a listing that could otherwise
//! go are invalidated, a bounded batch per sweep, so the kernel forgets them and the next sweep
//! can drop them. Numbers are identities of paths, so an evicted entry comes back under the
//! same number when it is listed again (NFS handles stay valid; see `resolve`).

use crate::inode::{Ino, NodeKind, ROOT_INO};
use crate::request::KernelNotify;
use crate::time::Instant;

use super::parked::Wait;
use super::Filesystem;

/// Most entries one sweep asks the kernel to forget (it asks for as many as the table is over
/// its target, up to this).
const INVALIDATE_BATCH: usize = 16 << 10;
/// Passes over the listings per sweep (a parent goes once its loaded subdirectories have).
const PASSES: usize = 4;

/// When the next sweep runs, and when the last one ran.
#[derive(Default)]
pub(crate) struct Sweeper {
    pub next: Option<Instant>,
    last: Option<Instant>,
}

/// Why a child keeps its listing loaded.
#[derive(PartialEq, Eq)]
enum Hold {
    Free,
    /// Only the kernel holds it: invalidating its entry lets it go.
    Kernel,
    Pinned,
}

impl Filesystem {
    pub(crate) fn schedule_sweep(&mut self, now: Instant) {
        if self.cfg.inode_soft_limit.is_some() {
            self.sweeper.next = Some(now.saturating_add(self.cfg.lru_sweep_interval));
        }
    }

    /// A listing just added entries: far over the limit (half again), sweep now rather than at
    /// the next interval, so a fast walk (`find`) does not outrun the sweeps.
    pub(crate) fn sweep_if_far_over(&mut self, now: Instant) {
        let far_over = self.cfg.inode_soft_limit.is_some_and(|limit| self.inodes.len() > limit + limit / 2);
        // At most ten sweeps per interval: a table held by open files is not rescanned for
        // every listing.
        let recent =
            self.sweeper.last.is_some_and(|at| now.saturating_duration_since(at) < self.cfg.lru_sweep_interval / 10);
        if far_over && !recent {
            self.sweep(now);
        }
    }

    pub(crate) fn sweep(&mut self, now: Instant) {
        self.schedule_sweep(now);
        self.sweeper.last = Some(now);
        let Some(limit) = self.cfg.inode_soft_limit else { return };
        if self.inodes.len() <= limit {
            return;
        }
        let target = limit - limit / 10;
        let batch = (self.inodes.len() - target).min(INVALIDATE_BATCH);
        let mut invalidated = 0;
        let mut asked = crate::collections::Set::default();
        for _ in 0..PASSES {
            let before = self.inodes.len();
            for dir in self.listings.idle_by_last_use() {
                if self.inodes.len() <= target {
                    return;
                }
                let children = self.listings.children(dir);
                let holds: Vec<Hold> = children.iter().map(|(_, c)| self.hold(*c)).collect();
                if holds.iter().all(|h| *h == Hold::Free) {
                    for (_, child) in children {
                        self.evict(child);
                    }
                    self.listings.drop_dir(dir);
                } else if !holds.contains(&Hold::Pinned) && invalidated < batch && asked.insert(dir) {
                    for ((_, child), hold) in children.iter().zip(&holds) {
                        if *hold == Hold::Kernel && invalidated < batch {
                            let name = self.inodes.get(*child).map(|n| n.name.clone()).unwrap_or_default();
                            self.out.notifies.push_back(KernelNotify::InvalidateEntry { parent: dir, name });
                            invalidated += 1;
                        }
                    }
                }
            }
            if self.inodes.len() == before {
                break;
            }
        }
    }

    fn hold(&self, ino: Ino) -> Hold {
        let Some(node) = self.inodes.get(ino) else { return Hold::Free };
        let pinned = ino == ROOT_INO
            || node.local
            || node.detached
            || self.handles.is_open(ino)
            || self.writes.has(ino)
            || self.reads.is_fetching(ino)
            || self.parked.is_waiting(Wait::Bytes(ino))
            || self.bases.contains_key(&ino)
            || self.unreported.contains_key(&ino)
            || self.commits.is_changing(&self.inodes.path(ino))
            || matches!(node.kind, NodeKind::Dir) && self.listings.is_known(ino);
        match (pinned, self.cfg.kernel_forgets && node.lookups > 0) {
            (true, _) => Hold::Pinned,
            (false, true) => Hold::Kernel,
            (false, false) => Hold::Free,
        }
    }

    fn evict(&mut self, ino: Ino) {
        self.content_changed(ino);
        self.kernel_pages.remove(&ino);
        self.stale.remove(&ino);
        self.inodes.remove(ino);
    }
}

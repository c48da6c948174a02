//! Freshness of a bucket mount (and of a repo mounted at a branch): merging a (re-)listing into
//! the tree and the background poll that probes the bucket's `updatedAt` (or resolves the
//! branch again) and re-lists loaded directories when it moved.
//!
//! Local state always wins over what the Hub shows: a file being written, a path with a
//! commit op still queued, and anything created in the mount and not yet committed are kept
//! as they are. Everything else follows the listing, and each change becomes a kernel
//! invalidation.

use std::collections::VecDeque;

use crate::collections::Set;
use crate::commits::Op;
use crate::error::{FsError, LogLevel};
use crate::hub::{ContentSource, TreeEntry, TreeEntryKind};
use crate::inode::{Ino, NodeKind};
use crate::request::KernelNotify;
use crate::time::Instant;

use super::attrs::node_kind;
use super::flights::Purpose;
use super::{Filesystem, Remote};

/// Longest the poll interval grows to after repeated 401s (2^6 x the configured interval).
const MAX_POLL_BACKOFF: u32 = 6;

/// The background poll: when it runs next, its backoff after auth failures, what it saw, and
/// the re-listings a change started (at most `poll_listing_concurrency` at once).
#[derive(Default)]
pub(crate) struct Poller {
    pub next: Option<Instant>,
    backoff: u32,
    /// A bucket's `updatedAt` or a followed revision's commit, as last seen.
    pub remote_version: Option<String>,
    relist_queue: VecDeque<Ino>,
    relisting: Set<Ino>,
}

impl Filesystem {
    /// Does `ino` carry local changes a listing must not overwrite?
    fn has_local_changes(&self, ino: Ino) -> bool {
        let Some(node) = self.inodes.get(ino) else { return false };
        node.local || self.writes.has(ino) || self.commits.is_changing(&self.inodes.path(ino))
    }

    /// Was `path` committed after `dir`'s listing was requested? Then the listing may show
    /// it as it was before the commit, and the mount's view of it stands.
    fn committed_during(&self, dir: Ino, path: &str) -> bool {
        self.commits.committed_during(dir, path)
    }

    /// Is listed directory `path` (unknown to the mount) one the mount moved or emptied, whose
    /// deletes the listing predates? Then it stays away.
    fn emptied_here(&self, dir: Ino, path: &str) -> bool {
        let prefix = format!("{path}/");
        let (add, delete) = self.commits.queue.ops_under(&prefix);
        (delete && !add) || self.commits.committed_under_during(dir, &prefix)
    }

    /// Apply one listed entry to directory `dir`; returns the child it now maps to, or `None`
    /// when the entry is hidden (by a local delete, or as an OS metadata file of a bucket).
    pub(crate) fn merge_entry(&mut self, dir: Ino, name: &str, entry: &TreeEntry) -> Option<Ino> {
        if matches!(self.commits.queue.latest(&entry.path), Some(Op::Delete)) {
            return None;
        }
        if self.hides_os_junk() && crate::osjunk::is_os_junk(name) {
            return None;
        }
        if self.committed_during(dir, &entry.path) {
            return self.inodes.child(dir, name);
        }
        let refreshing = self.listings.is_loaded(dir);
        let Some(ino) = self.inodes.child(dir, name) else {
            if entry.kind == TreeEntryKind::Directory && self.emptied_here(dir, &entry.path) {
                return None;
            }
            let ino = self.new_node(dir, name, entry);
            if refreshing {
                self.out.notifies.push_back(KernelNotify::InvalidateEntry { parent: dir, name: name.to_string() });
            }
            return Some(ino);
        };
        if let Some(n) = self.inodes.get_mut(ino).filter(|n| n.layer) {
            // Overlay: the layer entry hides the remote one.
            n.shadows_remote = true;
            return Some(ino);
        }
        if self.has_local_changes(ino) {
            self.note_remote_change(ino, entry);
            return Some(ino);
        }
        let current = self.inodes.get(ino).map(|n| n.kind.clone());
        let listed = node_kind(entry);
        match (current, &listed) {
            (Some(NodeKind::Dir), NodeKind::Dir) => Some(ino),
            (Some(old @ NodeKind::File { .. }), NodeKind::File { .. }) if old == listed => Some(ino),
            (Some(NodeKind::File { .. }), NodeKind::File { .. }) if self.open_through_copy(ino) => {
                // The kernel holds this inode open through its old copy and takes no other
                // backing file for it: the new content is a new inode, as after a rename over
                // the file (open descriptors keep the old one).
                self.drop_child(dir, ino);
                Some(self.new_node(dir, name, entry))
            }
            (Some(NodeKind::File { .. }), NodeKind::File { .. }) => {
                if let Some(n) = self.inodes.get_mut(ino) {
                    n.kind = listed;
                    n.meta.mtime_ns = entry.mtime_secs.map(|s| s.saturating_mul(1_000_000_000));
                }
                self.content_changed(ino);
                self.out.notifies.push_back(KernelNotify::InvalidateInode { ino });
                Some(ino)
            }
            _ => {
                // The kind changed (file <-> directory): a new node replaces the old one.
                self.drop_child(dir, ino);
                Some(self.new_node(dir, name, entry))
            }
        }
    }

    /// A listing shows file `ino`, which has changes not yet committed, with content that is
    /// neither what the mount last knew nor what it is committing: someone else changed it
    /// meanwhile. The local version still wins (it is newer here); the log says so.
    fn note_remote_change(&mut self, ino: Ino, entry: &TreeEntry) {
        let TreeEntryKind::File { source: ContentSource::Xet { hash: listed }, .. } = &entry.kind else {
            return;
        };
        let Some(node) = self.inodes.get(ino) else { return };
        let known = self.bases.get(&ino) == Some(listed)
            || !node.local
                && matches!(&node.kind, NodeKind::File { source: ContentSource::Xet { hash }, .. } if hash == listed);
        let path = self.inodes.path(ino);
        let ours = matches!(self.commits.queue.latest(&path), Some(Op::Add { xet_hash, .. }) if xet_hash == listed);
        let changing =
            self.writes.get(ino).is_some_and(|ws| ws.is_dirty()) || self.commits.queue.latest(&path).is_some();
        if !known && !ours && changing {
            self.bases.insert(ino, listed.clone());
            let short = &listed[..listed.len().min(12)];
            self.log(
                LogLevel::Warn,
                format!("{path} changed in the bucket (now {short}…) while it has local changes not yet committed: the local version will replace it"),
            );
        }
    }

    /// The final children of `dir` after a listing returned `fetched`: those plus every old
    /// child with local changes (or a directory holding some). Dropped children are detached
    /// and invalidated.
    pub(crate) fn merge_listing(&mut self, dir: Ino, fetched: Vec<Ino>) -> Vec<Ino> {
        let listed: Set<Ino> = fetched.iter().copied().collect();
        let mut children = fetched;
        for (_, old) in self.listings.children(dir) {
            if listed.contains(&old) {
                continue;
            }
            let keep = self.has_local_changes(old)
                || self.committed_during(dir, &self.inodes.path(old))
                || self.listings.children(old).iter().any(|(_, c)| self.has_local_changes(*c));
            if keep {
                children.push(old);
            } else {
                self.drop_child(dir, old);
            }
        }
        children
    }

    fn new_node(&mut self, dir: Ino, name: &str, entry: &TreeEntry) -> Ino {
        let ino = self.inodes.insert_child(dir, name, node_kind(entry));
        if let Some(n) = self.inodes.get_mut(ino) {
            n.meta.mtime_ns = entry.mtime_secs.map(|s| s.saturating_mul(1_000_000_000));
        }
        ino
    }

    /// A child the Hub no longer shows: gone from the mount and from the kernel's caches.
    fn drop_child(&mut self, dir: Ino, ino: Ino) {
        let name = self.inodes.get(ino).map(|n| n.name.clone()).unwrap_or_default();
        self.listings.remove_child(dir, ino);
        self.inodes.detach(ino);
        self.listings.drop_dir(ino);
        self.content_changed(ino);
        self.out.notifies.push_back(KernelNotify::InvalidateEntry { parent: dir, name });
    }

    pub(crate) fn start_poll(&mut self) {
        self.poll.next = None;
        let url = match &self.remote {
            Remote::Bucket { id } => self.cfg.urls.bucket_info(id),
            Remote::Repo { repo, follow: Some(rev), .. } => self.cfg.urls.revision_info(repo, rev),
            Remote::Repo { follow: None, .. } => return,
        };
        self.stats.polls += 1;
        self.hub_get(Purpose::Poll, url);
    }

    pub(crate) fn on_poll(&mut self, result: Result<String, FsError>, now: Instant) {
        match result {
            Ok(version) => {
                self.poll.backoff = 0;
                let changed = self.poll.remote_version.as_ref().is_some_and(|seen| *seen != version);
                if changed {
                    if let Remote::Repo { commit, repo, .. } = &mut self.remote {
                        *commit = version.clone();
                        self.read_token = std::sync::Arc::from(self.cfg.urls.xet_read_token(repo, &version));
                    }
                    self.log(LogLevel::Debug, format!("remote changed ({version}): re-listing"));
                    self.refresh_loaded();
                }
                self.poll.remote_version = Some(version);
            }
            Err(e) => {
                // An expired or revoked token: back off instead of hammering the Hub.
                if e.errno == crate::error::Errno::Acces {
                    self.poll.backoff = (self.poll.backoff + 1).min(MAX_POLL_BACKOFF);
                }
                self.log(LogLevel::Warn, format!("polling for remote changes failed: {e}"));
            }
        }
        if let Some(interval) = self.cfg.poll_interval {
            self.poll.next = Some(now.saturating_add(interval * 2u32.pow(self.poll.backoff)));
        }
    }

    /// Re-list every loaded directory in the background, a few at a time.
    fn refresh_loaded(&mut self) {
        for dir in self.listings.loaded() {
            if !self.poll.relist_queue.contains(&dir) && !self.poll.relisting.contains(&dir) {
                self.poll.relist_queue.push_back(dir);
            }
        }
        self.next_relistings();
    }

    fn next_relistings(&mut self) {
        let limit = self.cfg.poll_listing_concurrency.max(1);
        while self.poll.relisting.len() < limit {
            let Some(dir) = self.poll.relist_queue.pop_front() else { break };
            if self.inodes.get(dir).is_some_and(|n| !n.detached) && self.listings.start_refresh(dir) {
                self.poll.relisting.insert(dir);
                self.start_listing(dir);
            }
        }
    }

    /// `dir`'s listing ended (listed or failed): the poll may start its next re-listing.
    pub(crate) fn listing_ended(&mut self, dir: Ino) {
        self.commits.listing_ended(dir);
        if self.poll.relisting.remove(&dir) {
            self.next_relistings();
        }
    }
}

//! Resolving a stable identity core does not hold: an NFS file handle kept by a client across
//! a restart of the mount. Inode numbers derive from paths (`identity`), so one recursive
//! listing of the mounted tree tells which path has the number; that path is then walked name
//! by name, loading listings on the way as any lookup would, and the request answered with the
//! entry, or `Stale` when no path has the number.
//!
//! Every identity asked for while a search runs waits for it; a finished search is kept for
//! `REUSE`, so a client holding many handles pays for one listing. Only the first probe of
//! each path is matched (a number taken by a collision when the handle was made is not found
//! again: `Stale`).

use std::time::Duration;

use crate::collections::Map;
use crate::error::{Errno, FsError};
use crate::hub::{self, TreePage};
use crate::inode::{Ino, ROOT_INO};
use crate::request::{Caller, Request, RequestId};
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::{Then, Wait};
use super::{Filesystem, Remote};

/// How long a finished search answers for identities it did not find.
const REUSE: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(crate) struct Search {
    /// Every path of the listing (files and the directories above them), by identity.
    index: Map<Ino, String>,
    running: bool,
    done_at: Option<Instant>,
    skipped: Vec<String>,
}

fn stale(ino: Ino) -> FsError {
    FsError::new(Errno::Stale, "stale", format!("no file of this mount has identity {ino}"))
}

impl Filesystem {
    /// A stable identity back to its file, while the file exists in this mount.
    pub(crate) fn resolve(&mut self, id: RequestId, caller: &Caller, ino: Ino, now: Instant) {
        match self.inodes.get(ino) {
            Some(n) if !n.detached => return self.entry_reply(id, ino, None),
            Some(_) => return self.fail(id, stale(ino)),
            None => {}
        }
        if let Some(path) = self.search.index.get(&ino).cloned() {
            return self.walk_to(id, caller, ino, &path, now);
        }
        let recent = self.search.done_at.is_some_and(|at| now.saturating_duration_since(at) < REUSE);
        if recent && !self.search.running {
            return self.fail(id, stale(ino));
        }
        if !self.search.running {
            self.start_search();
        }
        self.park(id, Wait::Search, Then::Redispatch(caller.clone(), Request::Resolve { ino }));
    }

    /// Walk `path` from the root; a listing still loading parks the request, which then starts
    /// the walk again (the listings on the way are loaded by then).
    fn walk_to(&mut self, id: RequestId, caller: &Caller, ino: Ino, path: &str, now: Instant) {
        let root = self.inodes.path(ROOT_INO);
        let below = if root.is_empty() { path } else { path.strip_prefix(&root).unwrap_or("").trim_start_matches('/') };
        let req = Request::Resolve { ino };
        let mut at = ROOT_INO;
        for name in below.split('/').filter(|n| !n.is_empty()) {
            if !self.ready_dir(id, caller, at, &req, now) {
                return;
            }
            match self.inodes.child(at, name) {
                Some(child) => at = child,
                None => return self.fail(id, stale(ino)),
            }
        }
        if at == ino {
            self.entry_reply(id, ino, None)
        } else {
            self.fail(id, stale(ino))
        }
    }

    fn start_search(&mut self) {
        let root = self.inodes.path(ROOT_INO);
        let limit = self.cfg.policy.tree_page_limit;
        let url = match &self.remote {
            Remote::Repo { repo, commit, .. } => self.cfg.urls.tree_recursive(repo, commit, &root, limit),
            Remote::Bucket { id } => self.cfg.urls.bucket_tree(id, &root, true, limit),
        };
        self.search = Search { running: true, ..Search::default() };
        self.hub_get(Purpose::Search, url);
    }

    pub(crate) fn on_search_page(&mut self, page: TreePage, next: Option<String>, now: Instant) {
        let root = self.inodes.path(ROOT_INO);
        let prefix = if root.is_empty() { String::new() } else { format!("{root}/") };
        self.search.skipped.extend(page.skipped);
        for entry in page.entries {
            let clean = entry.path.strip_prefix(&prefix).is_some_and(hub::is_clean_path);
            if !clean {
                self.search.skipped.push(format!("{:?}: not below {prefix:?}", entry.path));
                continue;
            }
            // The entry and each directory above it (bucket listings name files only).
            let mut path = entry.path.as_str();
            while path.len() > root.len() {
                let ino = self.inodes.identity_of(path);
                if self.search.index.insert(ino, path.to_string()).is_some() {
                    break;
                }
                path = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            }
        }
        match next {
            Some(url) if self.cfg.urls.is_same_origin(&url) => {
                self.hub_get(Purpose::Search, url);
            }
            Some(url) => {
                let err = FsError::new(Errno::Io, "bad_hub_response", format!("pagination link leaves the Hub: {url}"));
                self.fail_search(err);
            }
            None => {
                self.search.running = false;
                self.search.done_at = Some(now);
                let skipped = std::mem::take(&mut self.search.skipped);
                self.log_skipped("listing the mount to resolve file handles", &skipped);
                self.wake(Wait::Search, now);
            }
        }
    }

    pub(crate) fn fail_search(&mut self, err: FsError) {
        self.search = Search::default();
        self.fail_waiting(Wait::Search, &err);
    }
}

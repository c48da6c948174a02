//! Names and directories: lookup, resolve (stable identities back to files), readdir(plus)
//! filled to the frontend's byte budget, readlink, statfs, and directory listings (fetched page
//! by page, merged into the tree by `refresh`).

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Errno, FsError, LogLevel};
use crate::hub;
use crate::inode::{Ino, NodeKind, ROOT_INO};
use crate::listing::{Need, FIRST_COOKIE};
use crate::request::{Caller, DirBudget, DirEntry, FileKind, Reply, Request, RequestId, StatFs};
use crate::time::Instant;

use super::flights::Purpose;
use super::parked::{Then, Wait};
use super::{Filesystem, Remote, NAME_MAX};

impl Filesystem {
    /// How long a listing is trusted: forever for a commit, the metadata TTL for a bucket.
    pub(crate) fn listing_ttl(&self) -> Option<Duration> {
        match self.remote {
            Remote::Repo { .. } => None,
            Remote::Bucket { .. } => Some(self.cfg.metadata_ttl),
        }
    }

    /// Is `dir`'s listing loaded and fresh? If not, `req` waits for it (a fetch starts if none
    /// is running) and is handled again once it is in.
    pub(crate) fn listed(&mut self, id: RequestId, caller: &Caller, dir: Ino, req: &Request, now: Instant) -> bool {
        let ttl = self.listing_ttl();
        match self.listings.need(dir, now, ttl) {
            Need::Ready => return true,
            Need::StartFetch => self.start_listing(dir),
            Need::Wait => {}
        }
        self.park(id, Wait::Listing(dir), Then::Redispatch(caller.clone(), req.clone()));
        false
    }

    /// `dir` is a directory whose listing is loaded and fresh; otherwise an error is answered
    /// or `req` waits for the listing. Every request that reads or changes a directory's
    /// entries starts here.
    pub(crate) fn ready_dir(&mut self, id: RequestId, caller: &Caller, dir: Ino, req: &Request, now: Instant) -> bool {
        if let Err(e) = self.check_dir(dir) {
            self.fail(id, e);
            return false;
        }
        self.listed(id, caller, dir, req, now)
    }

    pub(crate) fn lookup(&mut self, id: RequestId, caller: &Caller, parent: Ino, name: String, now: Instant) {
        if name.len() > NAME_MAX {
            return self.fail(id, FsError::new(Errno::NameTooLong, "name_too_long", ""));
        }
        let req = Request::Lookup { parent, name };
        if !self.ready_dir(id, caller, parent, &req, now) {
            return;
        }
        let Request::Lookup { name, .. } = req else { return };
        let found = match name.as_str() {
            "." => Some(parent),
            ".." => self.inodes.get(parent).map(|n| n.parent),
            _ => self.inodes.child(parent, &name),
        };
        match found {
            Some(ino) => self.entry_reply(id, ino, None),
            None => self.fail(id, FsError::not_found()),
        }
    }

    /// Answer with `ino`'s entry (counted as a lookup); `dir` is the directory a new name was
    /// added to, with its attributes before.
    pub(crate) fn entry_reply(&mut self, id: RequestId, ino: Ino, dir: Option<(Ino, crate::request::WccAttr)>) {
        match self.attr(ino) {
            Some(attr) => {
                self.inodes.add_lookup(ino);
                let dir = dir.map(|(d, before)| self.change(d, before));
                self.reply(id, Reply::Entry { attr, ttl: self.cfg.metadata_ttl, dir });
            }
            None => self.fail(id, FsError::not_found()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn readdir(
        &mut self,
        id: RequestId,
        caller: &Caller,
        ino: Ino,
        offset: u64,
        plus: bool,
        budget: DirBudget,
        now: Instant,
    ) {
        if let Err(e) = self.check_dir(ino) {
            return self.fail(id, e);
        }
        // A reader past the first page keeps its snapshot: re-listing mid-way would not help.
        let req = Request::ReadDir { ino, offset, plus, budget };
        if (offset > 0 && self.listings.is_loaded(ino)) || self.listed(id, caller, ino, &req, now) {
            self.answer_readdir(id, ino, offset, plus, budget);
        }
    }

    /// Entries from cookie `offset` on, as many as fit `budget`. Cookies 0 and 1 are `.` and
    /// `..`; children carry stable cookies from 2 on, and an entry's next offset is its cookie
    /// + 1. Only entries in the reply count as lookups, so nothing needs undoing.
    fn answer_readdir(&mut self, id: RequestId, dir: Ino, offset: u64, plus: bool, budget: DirBudget) {
        let parent = self.inodes.get(dir).map_or(ROOT_INO, |n| n.parent);
        let mut candidates: Vec<(u64, Ino, String)> = Vec::new();
        if offset == 0 {
            candidates.push((0, dir, ".".into()));
        }
        if offset <= 1 {
            candidates.push((1, parent, "..".into()));
        }
        let max = (budget.bytes / budget.entry_fixed.max(1)) as usize + 1;
        for (cookie, ino) in self.listings.children_from(dir, offset.max(FIRST_COOKIE), max) {
            let name = self.inodes.get(ino).map(|n| n.name.clone()).unwrap_or_default();
            candidates.push((cookie, ino, name));
        }
        let more_children = self.listings.children_from(dir, offset.max(FIRST_COOKIE), max + 1).len() > max;
        let mut entries = Vec::new();
        let mut used = 0u64;
        let mut eof = !more_children;
        for (cookie, ino, name) in candidates {
            let size = budget.entry_size(name.len());
            if used + size > u64::from(budget.bytes) {
                eof = false;
                break;
            }
            used += size;
            let attr = self.attr(ino);
            let kind = attr.as_ref().map_or(FileKind::RegularFile, |a| a.kind);
            let counts = plus && cookie >= FIRST_COOKIE && attr.is_some();
            if counts {
                self.inodes.add_lookup(ino);
            }
            let attr = if plus { attr } else { None };
            entries.push(DirEntry { ino, next_offset: cookie + 1, kind, name, attr, lookup: counts });
        }
        if entries.is_empty() && !eof {
            return self.fail(id, FsError::new(Errno::TooSmall, "readdir_too_small", "no entry fits the reply"));
        }
        let verifier = self.cfg.verifier;
        self.reply(id, Reply::Dir { entries, ttl: self.cfg.metadata_ttl, eof, verifier });
    }

    pub(crate) fn readlink(&mut self, id: RequestId, ino: Ino) {
        match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::Symlink { target }) => {
                let data = Bytes::from(target.clone().into_bytes());
                self.reply(id, Reply::Data { data, eof: true })
            }
            Some(_) => self.fail(id, FsError::new(Errno::Inval, "not_a_symlink", "")),
            None => self.fail(id, FsError::not_found()),
        }
    }

    pub(crate) fn statfs(&mut self, id: RequestId) {
        let files = self.inodes.len() as u64;
        self.reply(id, Reply::StatFs(StatFs { blocks: 0, files, block_size: 4096, name_max: NAME_MAX as u32 }));
    }

    // ---- listings ------------------------------------------------------------------------

    pub(crate) fn start_listing(&mut self, dir: Ino) {
        let path = self.inodes.path(dir);
        let limit = self.cfg.policy.tree_page_limit;
        let url = match &self.remote {
            Remote::Repo { repo, commit, .. } => self.cfg.urls.tree(repo, commit, &path, limit),
            Remote::Bucket { id } => self.cfg.urls.bucket_tree(id, &path, false, limit),
        };
        self.commits.listing_started(dir);
        self.hub_get(Purpose::ListPage { dir }, url);
    }

    /// Say in the log (once per line, see `log`) that a listing left entries out.
    pub(crate) fn log_skipped(&mut self, listing: &str, skipped: &[String]) {
        if let Some(first) = skipped.first() {
            let more = if skipped.len() > 1 { format!(" (and {} more)", skipped.len() - 1) } else { String::new() };
            self.log(LogLevel::Warn, format!("{listing}: left out an entry the Hub sent: {first}{more}"));
        }
    }

    pub(crate) fn on_page(&mut self, dir: Ino, page: hub::TreePage, next: Option<String>, now: Instant) {
        let dir_path = self.inodes.path(dir);
        let mut skipped = page.skipped;
        let mut inos = Vec::with_capacity(page.entries.len());
        for entry in page.entries {
            let Some(name) = child_name(&dir_path, &entry.path) else {
                skipped.push(format!("{:?}: not a child of the directory", entry.path));
                continue;
            };
            // A name listed twice: the first stands.
            if !self.listings.first_sighting(dir, name) {
                skipped.push(format!("{:?}: listed twice", entry.path));
                continue;
            }
            if let Some(ino) = self.merge_entry(dir, name, &entry) {
                inos.push(ino);
            }
        }
        let shown = if dir_path.is_empty() { "/" } else { dir_path.as_str() };
        self.log_skipped(&format!("listing {shown}"), &skipped);
        self.listings.add_page(dir, inos);
        match next {
            Some(url) if self.cfg.urls.is_same_origin(&url) => {
                self.hub_get(Purpose::ListPage { dir }, url);
            }
            Some(url) => {
                let err = FsError::new(
                    Errno::Io,
                    "bad_hub_response",
                    format!("pagination link leaves the Hub endpoint: {url}"),
                );
                self.fail_listing(dir, err);
            }
            None => {
                let fetched = self.listings.take_fetched(dir);
                let children = self.merge_listing(dir, fetched);
                self.listings.set_loaded(dir, &children, now);
                self.listing_ended(dir);
                self.sweep_if_far_over(now);
                if self.stale.remove(&dir) {
                    self.log(LogLevel::Warn, format!("listing {} works again", self.inodes.path(dir)));
                }
                self.wake(Wait::Listing(dir), now);
            }
        }
    }

    pub(crate) fn fail_listing(&mut self, dir: Ino, err: FsError) {
        let shown = match self.inodes.path(dir) {
            p if p.is_empty() => "/".to_string(),
            p => p,
        };
        if err.errno == Errno::NoEnt && self.layer_dir_not_remote(dir) {
            let now = self.now;
            return self.on_page(dir, hub::TreePage::default(), None, now);
        }
        let err = FsError { detail: format!("listing {shown}: {}", err.detail), ..err };
        self.listing_ended(dir);
        if self.listings.is_loaded(dir) && err.errno != Errno::NoEnt {
            // Stale if error: what the directory had keeps being served (for another TTL) until
            // the Hub answers again; said once per directory.
            if self.stale.insert(dir) {
                self.log(LogLevel::Warn, format!("{err}; serving its last listing until the Hub answers"));
            }
            self.listings.keep_stale(dir, self.now);
            let now = self.now;
            return self.wake(Wait::Listing(dir), now);
        }
        self.listings.fail(dir);
        if !self.parked.is_waiting(Wait::Listing(dir)) {
            // A background re-listing: nobody to tell but the log.
            self.log(LogLevel::Warn, format!("{err}"));
        }
        self.fail_waiting(Wait::Listing(dir), &err);
    }
}

/// The name of `path` inside directory `dir_path`, if it is a direct child.
pub(crate) fn child_name<'a>(dir_path: &str, path: &'a str) -> Option<&'a str> {
    let rest = if dir_path.is_empty() { path } else { path.strip_prefix(dir_path)?.strip_prefix('/')? };
    let ok = !rest.is_empty() && !rest.contains('/') && rest != "." && rest != ".." && !rest.contains('\0');
    ok.then_some(rest)
}

//! The filesystem state machine: a repo at a pinned commit (read-only) or a bucket
//! (read-write unless configured read-only).
//!
//! Method classes, in the manner of quinn-proto:
//! - getters: `config`, `stats`, `is_busy`, `has_unsaved`;
//! - inputs: `handle_request`, `handle_completion`, `handle_timeout` (each takes `now`), and the
//!   command `begin_drain`;
//! - outputs, drained in this order after every input: `poll_reply`, `poll_effect`,
//!   `poll_notify`, `poll_log`, then `poll_timeout` for when to call `handle_timeout` next.
//!
//! It owns every policy: inode numbering, listing fetches and their freshness, read-ahead,
//! caching, write staging, upload and commit scheduling, retries and errno mapping. It never
//! performs IO. This file holds the dispatch, the outputs, listings and the read path; writes,
//! namespace changes and freshness live in `writes`, `namespace` and `refresh`.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashMap;

use crate::commits::CommitQueue;
use crate::config::{MountConfig, Source, WriteMode};
use crate::effect::{Completion, Effect, EffectFailure, EffectId, FailureKind, StageOp};
use crate::error::{Errno, FsError, LogLevel};
use crate::hub::{self, ContentSource, TreeEntryKind};
use crate::inode::{Ino, InodeTable, NodeKind, ROOT_INO};
use crate::listing::{Listings, Need, Waiter};
use crate::prefetch::ReadPattern;
use crate::readcache::ReadCache;
use crate::request::{Attr, DirEntry, FileKind, KernelNotify, Reply, Request, RequestId, StatFs};
use crate::retry;
use crate::time::Instant;
use crate::writes::WriteState;

const NANOS: i64 = 1_000_000_000;

/// Longest file name the mount accepts.
pub(crate) const NAME_MAX: usize = 255;
/// Directory entries returned per readdir reply at most.
const READDIR_BATCH: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Reader {
    Handle(u64),
    /// Stateless reads (NFS) share one pattern per inode.
    Inode(Ino),
}

/// Why an effect was started; decides what its completion does.
#[derive(Debug)]
pub(crate) enum Purpose {
    ListPage {
        dir: Ino,
    },
    Fetch {
        ino: Ino,
        range: Range<u64>,
    },
    /// A staging-file operation for `ino`.
    Stage {
        ino: Ino,
        kind: StageKind,
    },
    /// One upload session for several files: (file, generation uploaded) per source.
    Upload {
        files: Vec<(Ino, u64)>,
    },
    /// A step of `ino`'s upload stream.
    Stream {
        ino: Ino,
        step: crate::stream::StreamStep,
    },
    Commit,
    Poll,
    /// Recursive listing of a directory about to be renamed.
    Scan {
        dir: Ino,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StageKind {
    /// Create or fill the staging file before any other use.
    Prepare,
    /// A batch of queued writes and truncations (the file's `edit_in_flight`).
    Edit,
    /// A read of one's own writes, answering `req`.
    Read {
        req: RequestId,
    },
    Remove,
}

#[derive(Debug)]
pub(crate) struct InFlight {
    pub purpose: Purpose,
    pub effect: Effect,
    pub attempts: u32,
}

#[derive(Debug)]
pub(crate) struct ParkedRead {
    pub req: RequestId,
    pub range: Range<u64>,
}

/// An open file handle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenFile {
    pub ino: Ino,
    pub write: bool,
}

/// How the unmount drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Everything written was committed.
    Drained,
    /// The time limit ran out with changes still unsaved.
    GaveUp,
}

/// Counters for benchmarks and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hub_requests: u64,
    pub fetches: u64,
    pub bytes_fetched: u64,
    pub bytes_read: u64,
    pub retries: u64,
    pub uploads: u64,
    pub bytes_uploaded: u64,
    pub commits: u64,
    pub polls: u64,
}

pub struct Filesystem {
    pub(crate) cfg: MountConfig,
    pub(crate) inodes: InodeTable,
    pub(crate) listings: Listings,
    pub(crate) cache: ReadCache,
    pub(crate) patterns: HashMap<Reader, ReadPattern>,
    pub(crate) open_files: HashMap<u64, OpenFile>,
    next_fh: u64,
    next_effect: u64,
    pub(crate) in_flight: HashMap<EffectId, InFlight>,
    /// Byte ranges being fetched, per inode.
    pub(crate) fetching: HashMap<Ino, Vec<(Range<u64>, EffectId)>>,
    pub(crate) parked_reads: HashMap<Ino, Vec<ParkedRead>>,
    /// Effects waiting for their retry time.
    retries: BTreeMap<(Instant, EffectId), ()>,
    /// Files being written, by inode.
    pub(crate) writes: HashMap<Ino, WriteState>,
    pub(crate) commits: CommitQueue,
    /// No commit is started before this (after a batch finally failed).
    pub(crate) commit_not_before: Option<Instant>,
    /// Directory scans in progress (entries so far, requests waiting), by directory.
    pub(crate) scans: HashMap<Ino, (Vec<hub::TreeEntry>, Vec<RequestId>)>,
    /// Completed scans, consumed by the rename that asked for them.
    pub(crate) scanned: HashMap<Ino, Vec<hub::TreeEntry>>,
    /// Requests parked (on a listing or a scan) to be handled again from the start.
    pub(crate) retry_requests: HashMap<RequestId, Request>,
    /// Names staging files uniquely.
    pub(crate) next_stage: u64,
    /// Upload effects in flight (bounded by `MAX_UPLOADS`).
    pub(crate) uploads_in_flight: usize,
    /// Count of commits that succeeded; a listing remembers the count when it started.
    pub(crate) commit_epoch: u64,
    pub(crate) listing_epoch: HashMap<Ino, u64>,
    /// Paths committed while some listing was in flight, with the epoch of their commit: such
    /// a listing may show them as they were before, so it is not trusted for them.
    pub(crate) committed: Vec<(u64, String)>,
    /// Errors of background work (upload, commit) not yet reported to the file's user.
    pub(crate) unreported: HashMap<Ino, FsError>,
    pub(crate) next_poll: Option<Instant>,
    pub(crate) poll_backoff: u32,
    /// What the last poll saw: a bucket's `updatedAt` or a followed revision's commit.
    pub(crate) remote_version: Option<String>,
    pub(crate) draining: bool,
    /// The unmount drain: when it gives up, and whether its outcome was reported.
    drain_deadline: Option<Instant>,
    drain_outcome: Option<DrainOutcome>,
    replies: VecDeque<(RequestId, Reply)>,
    effects: VecDeque<(EffectId, Effect)>,
    pub(crate) notifies: VecDeque<KernelNotify>,
    logs: VecDeque<(LogLevel, String)>,
    pub(crate) stats: Stats,
}

impl Filesystem {
    pub fn new(cfg: MountConfig) -> Self {
        let cache = ReadCache::new(cfg.policy.cache_bytes);
        // A bucket's first poll runs at once: it records the `updatedAt` later polls compare
        // with. A followed repo revision starts from the commit resolved at mount time.
        let (next_poll, remote_version) = match (&cfg.source, cfg.poll_interval) {
            (Source::Bucket { .. }, Some(_)) => (Some(Instant::ZERO), None),
            (Source::Repo { commit, follow: Some(_), .. }, Some(every)) => {
                (Some(Instant::ZERO.saturating_add(every)), Some(commit.clone()))
            }
            _ => (None, None),
        };
        Filesystem {
            inodes: InodeTable::new(&cfg.subfolder),
            cfg,
            listings: Listings::default(),
            cache,
            patterns: HashMap::new(),
            open_files: HashMap::new(),
            next_fh: 1,
            next_effect: 1,
            in_flight: HashMap::new(),
            fetching: HashMap::new(),
            parked_reads: HashMap::new(),
            retries: BTreeMap::new(),
            writes: HashMap::new(),
            commits: CommitQueue::default(),
            commit_not_before: None,
            scans: HashMap::new(),
            scanned: HashMap::new(),
            retry_requests: HashMap::new(),
            next_stage: 0,
            uploads_in_flight: 0,
            commit_epoch: 0,
            listing_epoch: HashMap::new(),
            committed: Vec::new(),
            unreported: HashMap::new(),
            next_poll,
            poll_backoff: 0,
            remote_version,
            draining: false,
            drain_deadline: None,
            drain_outcome: None,
            replies: VecDeque::new(),
            effects: VecDeque::new(),
            notifies: VecDeque::new(),
            logs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    // ---- getters -------------------------------------------------------------------------

    pub fn config(&self) -> &MountConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// True while effects are outstanding or waiting to be retried.
    pub fn is_busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// True while something written is not yet committed to the bucket.
    pub fn has_unsaved(&self) -> bool {
        self.writes.values().any(WriteState::is_dirty) || !self.commits.is_empty()
    }

    // ---- inputs --------------------------------------------------------------------------

    pub fn handle_request(&mut self, id: RequestId, req: Request, now: Instant) {
        self.dispatch(id, req, now);
        self.pump(now);
        self.check_drain(now);
    }

    pub(crate) fn dispatch(&mut self, id: RequestId, req: Request, now: Instant) {
        if req.is_modifying() && self.cfg.writes.mode == WriteMode::ReadOnly {
            return self.fail(id, self.read_only_error());
        }
        match req {
            Request::Lookup { parent, name } => self.lookup(id, parent, name, now),
            Request::Forget { ino, nlookup } => {
                self.inodes.forget(ino, nlookup);
                self.reply(id, Reply::Empty);
            }
            Request::GetAttr { ino } => match self.attr(ino) {
                Some(attr) => self.reply(id, Reply::Attr { attr, ttl: self.cfg.metadata_ttl }),
                None => self.fail(id, FsError::not_found()),
            },
            Request::ReadDir { ino, offset, plus } => self.readdir(id, ino, offset, plus, now),
            Request::Open { ino, write, truncate } => self.open(id, ino, write, truncate, now),
            Request::Read { ino, fh, offset, size } => self.read(id, ino, fh, offset, size),
            Request::Write { ino, fh: _, offset, data } => self.write(id, ino, offset, data, now),
            Request::Release { fh } => self.release(id, fh, now),
            Request::Flush { ino, fh } => self.flush(id, ino, fh, now),
            Request::Fsync { ino } => self.fsync(id, ino, now),
            Request::Access { ino, write } => match self.inodes.get(ino) {
                None => self.fail(id, FsError::not_found()),
                Some(_) if write && self.cfg.writes.mode == WriteMode::ReadOnly => {
                    self.fail(id, self.read_only_error())
                }
                Some(_) => self.reply(id, Reply::Empty),
            },
            Request::ReadLink { ino } => match self.inodes.get(ino).map(|n| &n.kind) {
                Some(NodeKind::Symlink { target }) => {
                    let target = Bytes::from(target.clone().into_bytes());
                    self.reply(id, Reply::Data(target))
                }
                Some(_) => self.fail(id, FsError::new(Errno::Inval, "not_a_symlink", "")),
                None => self.fail(id, FsError::not_found()),
            },
            Request::StatFs => self.reply(
                id,
                Reply::StatFs(StatFs {
                    blocks: 0,
                    files: self.inodes.len() as u64,
                    block_size: 4096,
                    name_max: NAME_MAX as u32,
                }),
            ),
            Request::Create { parent, name, mode, owner } => self.create(id, parent, name, mode, owner, now),
            Request::Mkdir { parent, name, mode, owner } => self.mkdir(id, parent, name, mode, owner, now),
            Request::Mknod { parent, name, kind, mode, rdev, owner } => {
                self.mknod(id, parent, name, (kind, mode, rdev), owner, now)
            }
            Request::Unlink { parent, name } => self.unlink(id, parent, name, now),
            Request::Rmdir { parent, name } => self.rmdir(id, parent, name, now),
            Request::Rename { parent, name, new_parent, new_name, no_replace } => {
                self.rename(id, (parent, name), (new_parent, new_name), no_replace, now)
            }
            Request::Symlink { parent, name, target, owner } => self.symlink(id, parent, name, target, owner, now),
            Request::Link { ino, new_parent, new_name } => self.link(id, ino, new_parent, new_name, now),
            Request::SetAttr { ino, set } => self.setattr(id, ino, set, now),
            Request::Unsupported { op } => {
                self.fail(id, FsError::new(Errno::NotSup, "unsupported", format!("{op} is not supported here")))
            }
        }
    }

    pub fn handle_completion(&mut self, id: EffectId, completion: Completion, now: Instant) {
        let Some(flight) = self.in_flight.remove(&id) else {
            return;
        };
        match completion {
            Completion::Failed(failure) => self.on_failure(id, flight, failure, now),
            Completion::Http(resp) if !(200..300).contains(&resp.status) => {
                self.on_failure(id, flight, hub::failure_from_response(&resp), now)
            }
            completion => match flight.purpose {
                Purpose::ListPage { dir } => match tree_page(completion) {
                    Ok((entries, next)) => self.on_page(dir, entries, next, now),
                    Err(e) => self.fail_listing(dir, e),
                },
                Purpose::Fetch { ino, range } => match completion {
                    Completion::Bytes(data) => {
                        let len: u64 = data.iter().map(|b| b.len() as u64).sum();
                        if len == range.end - range.start {
                            self.on_fetched(id, ino, range, data);
                        } else {
                            let msg = format!("short fetch: wanted {} bytes, got {len}", range.end - range.start);
                            let flight = InFlight { purpose: Purpose::Fetch { ino, range }, ..flight };
                            self.on_failure(id, flight, EffectFailure::new(FailureKind::Transient, None, msg), now);
                        }
                    }
                    other => self.fail_fetch(id, ino, range, unexpected(&other)),
                },
                Purpose::Stage { ino, kind } => self.on_staged(ino, kind, Ok(completion), now),
                Purpose::Upload { files } => match completion {
                    Completion::Uploaded(results) if results.len() == files.len() => {
                        self.upload_done();
                        for ((ino, generation), (xet_hash, size)) in files.into_iter().zip(results) {
                            self.on_uploaded(ino, generation, xet_hash, size, now);
                        }
                    }
                    other => {
                        self.upload_done();
                        for (ino, _) in files {
                            self.on_upload_failed(ino, unexpected(&other), now);
                        }
                    }
                },
                Purpose::Stream { ino, step } => self.on_stream(ino, step, Ok(completion), now),
                Purpose::Commit => self.on_committed(now),
                Purpose::Poll => match completion {
                    Completion::Http(resp) => {
                        let version = match self.cfg.source {
                            Source::Bucket { .. } => hub::parse_bucket_updated_at(&resp.body),
                            Source::Repo { .. } => hub::parse_revision_info(&resp.body).map(|info| info.sha),
                        };
                        self.on_poll(version, now)
                    }
                    other => self.on_poll(Err(format!("{other:?}")), now),
                },
                Purpose::Scan { dir } => match tree_page(completion) {
                    Ok((entries, next)) => self.on_scan_page(dir, entries, next, now),
                    Err(e) => self.fail_scan(dir, e),
                },
            },
        }
        self.pump(now);
        self.check_drain(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((&(at, id), ())) = self.retries.first_key_value() {
            if at > now {
                break;
            }
            self.retries.remove(&(at, id));
            if let Some(flight) = self.in_flight.get(&id) {
                self.stats.retries += 1;
                self.effects.push_back((id, flight.effect.clone()));
            }
        }
        if self.next_poll.is_some_and(|at| at <= now) {
            self.start_poll(now);
        }
        self.pump(now);
        self.check_drain(now);
    }

    /// Unmounting: upload and commit everything dirty now instead of after its debounce, for
    /// at most `limit`; `poll_drained` then says whether everything was saved.
    pub fn begin_drain(&mut self, now: Instant, limit: Duration) {
        self.draining = true;
        self.drain_deadline = Some(now.saturating_add(limit));
        self.commit_not_before = None;
        self.pump(now);
        self.check_drain(now);
    }

    /// Report the drain's outcome once: everything saved, or the time limit ran out first.
    fn check_drain(&mut self, now: Instant) {
        let Some(deadline) = self.drain_deadline else { return };
        if !self.has_unsaved() {
            self.drain_outcome = Some(DrainOutcome::Drained);
        } else if now >= deadline {
            self.drain_outcome = Some(DrainOutcome::GaveUp);
        } else {
            return;
        }
        self.drain_deadline = None;
    }

    // ---- outputs -------------------------------------------------------------------------

    pub fn poll_reply(&mut self) -> Option<(RequestId, Reply)> {
        self.replies.pop_front()
    }

    pub fn poll_effect(&mut self) -> Option<(EffectId, Effect)> {
        self.effects.pop_front()
    }

    pub fn poll_notify(&mut self) -> Option<KernelNotify> {
        self.notifies.pop_front()
    }

    /// Log lines about background work (uploads, commits, polls) that no request carries.
    pub fn poll_log(&mut self) -> Option<(LogLevel, String)> {
        self.logs.pop_front()
    }

    /// The unmount drain's outcome, once it is known (see `begin_drain`).
    pub fn poll_drained(&mut self) -> Option<DrainOutcome> {
        self.drain_outcome.take()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = self.retries.keys().next().map(|(at, _)| *at);
        let write = self.writes.values().filter(|w| w.is_dirty()).filter_map(|w| w.due).min();
        let commit = self.commit_not_before.filter(|_| self.commits.has_pending());
        let batch_window = self.commits.oldest().map(|t| t.saturating_add(self.cfg.writes.flush_max_batch_window));
        [retry, write, commit, batch_window, self.next_poll, self.drain_deadline].into_iter().flatten().min()
    }

    // ---- lookups and listings ------------------------------------------------------------

    /// How long a listing is trusted: forever for a pinned commit, the metadata TTL for a bucket.
    pub(crate) fn listing_ttl(&self) -> Option<Duration> {
        match self.cfg.source {
            Source::Repo { .. } => None,
            Source::Bucket { .. } => Some(self.cfg.metadata_ttl),
        }
    }

    /// Ensure `dir`'s listing is loaded and fresh; if not, park `waiter` and return false.
    pub(crate) fn listed(&mut self, dir: Ino, waiter: Waiter, now: Instant) -> bool {
        let ttl = self.listing_ttl();
        match self.listings.need(dir, waiter, now, ttl) {
            Need::Ready => true,
            Need::StartFetch => {
                self.start_listing(dir);
                false
            }
            Need::Wait => false,
        }
    }

    fn lookup(&mut self, id: RequestId, parent: Ino, name: String, now: Instant) {
        if let Err(e) = self.check_dir(parent) {
            return self.fail(id, e);
        }
        if name.len() > NAME_MAX {
            return self.fail(id, FsError::new(Errno::NameTooLong, "name_too_long", ""));
        }
        if self.listed(parent, Waiter::Lookup { req: id, name: name.clone() }, now) {
            self.answer_lookup(id, parent, &name);
        }
    }

    fn answer_lookup(&mut self, id: RequestId, parent: Ino, name: &str) {
        let found = match name {
            "." => Some(parent),
            ".." => self.inodes.get(parent).map(|n| n.parent),
            _ => self.inodes.child(parent, name),
        };
        match found.and_then(|ino| self.attr(ino)) {
            Some(attr) => {
                self.inodes.add_lookup(attr.ino);
                self.reply(id, Reply::Entry { attr, ttl: self.cfg.metadata_ttl });
            }
            None => self.fail(id, FsError::not_found()),
        }
    }

    fn readdir(&mut self, id: RequestId, ino: Ino, offset: u64, plus: bool, now: Instant) {
        if let Err(e) = self.check_dir(ino) {
            return self.fail(id, e);
        }
        // A reader past the first batch keeps its snapshot: re-listing mid-way would not help.
        if offset > 0 && self.listings.is_loaded(ino) {
            return self.answer_readdir(id, ino, offset, plus);
        }
        if self.listed(ino, Waiter::ReadDir { req: id, offset, plus }, now) {
            self.answer_readdir(id, ino, offset, plus);
        }
    }

    fn answer_readdir(&mut self, id: RequestId, dir: Ino, offset: u64, plus: bool) {
        let parent = self.inodes.get(dir).map_or(ROOT_INO, |n| n.parent);
        let mut entries = Vec::new();
        // Offsets 0 and 1 are "." and ".."; children carry stable cookies from 2 on, and an
        // entry's next_offset is its cookie + 1.
        let mut listed: Vec<(u64, Ino, String)> = Vec::new();
        if offset == 0 {
            listed.push((0, dir, ".".into()));
        }
        if offset <= 1 {
            listed.push((1, parent, "..".into()));
        }
        for (cookie, ino) in self.listings.children(dir) {
            if cookie >= offset && listed.len() < READDIR_BATCH {
                listed.push((cookie, ino, self.inodes.get(ino).map(|n| n.name.clone()).unwrap_or_default()));
            }
        }
        for (cookie, ino, name) in listed {
            let kind = self.attr(ino).map_or(FileKind::RegularFile, |a| a.kind);
            let attr = if plus && cookie >= 2 { self.attr(ino) } else { None };
            if attr.is_some() {
                self.inodes.add_lookup(ino);
            }
            entries.push(DirEntry { ino, next_offset: cookie + 1, kind, name, attr });
        }
        self.reply(id, Reply::Dir { entries, ttl: self.cfg.metadata_ttl });
    }

    pub(crate) fn start_listing(&mut self, dir: Ino) {
        let path = self.inodes.path(dir);
        let limit = self.cfg.policy.tree_page_limit;
        let url = match &self.cfg.source {
            Source::Repo { repo, commit, .. } => self.cfg.urls.tree(repo, commit, &path, limit),
            Source::Bucket { id } => self.cfg.urls.bucket_tree(id, &path, false, limit),
        };
        self.listing_epoch.insert(dir, self.commit_epoch);
        self.start_effect(Purpose::ListPage { dir }, Effect::HubGet { url });
    }

    fn on_page(&mut self, dir: Ino, entries: Vec<hub::TreeEntry>, next: Option<String>, now: Instant) {
        let dir_path = self.inodes.path(dir);
        let mut page = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(name) = child_name(&dir_path, &entry.path) else {
                continue;
            };
            if let Some(ino) = self.merge_entry(dir, name, &entry) {
                page.push(ino);
            }
        }
        self.listings.add_page(dir, page);
        match next {
            Some(url) if self.cfg.urls.is_same_origin(&url) => {
                self.start_effect(Purpose::ListPage { dir }, Effect::HubGet { url });
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
                self.listing_epoch.remove(&dir);
                for waiter in self.listings.set_loaded(dir, &children, now) {
                    self.resume(dir, waiter, now);
                }
            }
        }
    }

    fn resume(&mut self, dir: Ino, waiter: Waiter, now: Instant) {
        match waiter {
            Waiter::Lookup { req, name } => self.answer_lookup(req, dir, &name),
            Waiter::ReadDir { req, offset, plus } => self.answer_readdir(req, dir, offset, plus),
            Waiter::Retry { req } => {
                if let Some(request) = self.retry_requests.remove(&req) {
                    self.dispatch(req, request, now);
                }
            }
        }
    }

    fn fail_listing(&mut self, dir: Ino, err: FsError) {
        let shown = match self.inodes.path(dir) {
            p if p.is_empty() => "/".to_string(),
            p => p,
        };
        let err = FsError { detail: format!("listing {shown}: {}", err.detail), ..err };
        self.listing_epoch.remove(&dir);
        let waiters = self.listings.fail(dir);
        if waiters.is_empty() {
            // A background re-listing: nobody to tell but the log.
            self.log(LogLevel::Warn, format!("{err}"));
        }
        for waiter in waiters {
            let req = match waiter {
                Waiter::Lookup { req, .. } | Waiter::ReadDir { req, .. } => req,
                Waiter::Retry { req } => {
                    self.retry_requests.remove(&req);
                    req
                }
            };
            self.fail(req, err.clone());
        }
    }

    // ---- reads ---------------------------------------------------------------------------

    fn open(&mut self, id: RequestId, ino: Ino, write: bool, truncate: bool, now: Instant) {
        match self.inodes.get(ino).map(|n| &n.kind) {
            None => return self.fail(id, FsError::not_found()),
            Some(NodeKind::Dir) => return self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", "")),
            // The kernel opens FIFOs and devices itself; nothing else reaches here.
            Some(NodeKind::Symlink { .. } | NodeKind::Special { .. }) => {
                return self.fail(id, FsError::new(Errno::Inval, "not_a_regular_file", ""))
            }
            Some(NodeKind::File { .. }) => {}
        }
        if write || truncate {
            if let Err(e) = self.open_for_write(ino, truncate, now) {
                return self.fail(id, e);
            }
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.open_files.insert(fh, OpenFile { ino, write });
        // Pinned commits never change: the kernel may keep its page cache across opens.
        let keep_cache = matches!(self.cfg.source, Source::Repo { follow: None, .. });
        self.reply(id, Reply::Open { fh, keep_cache });
    }

    /// A new handle for a file core just created (`create`).
    pub(crate) fn new_handle(&mut self, ino: Ino) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.open_files.insert(fh, OpenFile { ino, write: true });
        fh
    }

    fn release(&mut self, id: RequestId, fh: u64, now: Instant) {
        self.patterns.remove(&Reader::Handle(fh));
        if let Some(open) = self.open_files.remove(&fh) {
            if open.write {
                self.writer_closed(open.ino, now);
            }
        }
        self.reply(id, Reply::Empty);
    }

    fn read(&mut self, id: RequestId, ino: Ino, fh: Option<u64>, offset: u64, size: u32) {
        let (file_size, _) = match self.inodes.get(ino).map(|n| &n.kind) {
            None => return self.fail(id, FsError::not_found()),
            Some(NodeKind::File { size, source }) => (*size, source),
            Some(_) => return self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", "")),
        };
        if self.writes.contains_key(&ino) {
            return self.read_written(id, ino, offset, size);
        }
        if offset >= file_size || size == 0 {
            return self.reply(id, Reply::Data(Bytes::new()));
        }
        let end = offset.saturating_add(u64::from(size)).min(file_size);
        let reader = fh.map_or(Reader::Inode(ino), Reader::Handle);
        let policy = &self.cfg.policy;
        let plan = self.patterns.entry(reader).or_default().on_read(offset, end, file_size, policy);
        self.ensure_fetched(ino, plan.demand.clone());
        if !plan.ahead.is_empty() {
            // Refill the window in batches of at least half of it, so a steady reader causes a
            // few large fetches rather than one small fetch per read.
            let missing = self.missing(ino, plan.ahead.clone());
            if missing.iter().map(|r| r.end - r.start).sum::<u64>() * 2 >= plan.ahead.end - plan.ahead.start {
                self.fetch(ino, missing);
            }
            self.cache.demote_before(ino, offset);
        }
        match self.cache.read(ino, offset..end) {
            Some(data) => self.reply_data(id, data),
            None => self.parked_reads.entry(ino).or_default().push(ParkedRead { req: id, range: offset..end }),
        }
    }

    /// Parts of `range` neither cached nor already being fetched.
    fn missing(&self, ino: Ino, range: Range<u64>) -> Vec<Range<u64>> {
        let flying: Vec<Range<u64>> =
            self.fetching.get(&ino).map(|v| v.iter().map(|(r, _)| r.clone()).collect()).unwrap_or_default();
        self.cache.gaps(ino, range).into_iter().flat_map(|gap| subtract(gap, &flying)).collect()
    }

    /// Start fetches for the parts of `range` neither cached nor already being fetched.
    fn ensure_fetched(&mut self, ino: Ino, range: Range<u64>) {
        let missing = self.missing(ino, range);
        self.fetch(ino, missing);
    }

    /// Start fetches for `pieces` (already known to be missing), at most `max_fetch` each.
    fn fetch(&mut self, ino: Ino, pieces: Vec<Range<u64>>) {
        if pieces.is_empty() {
            return;
        }
        let Some(NodeKind::File { size, source }) = self.inodes.get(ino).map(|n| n.kind.clone()) else { return };
        for piece in pieces {
            let mut start = piece.start;
            while start < piece.end {
                let end = piece.end.min(start + self.cfg.policy.max_fetch);
                let effect = match (&source, &self.cfg.source) {
                    (ContentSource::Xet { hash }, _) => {
                        Effect::CasRange { xet_hash: hash.clone(), file_size: size, range: start..end }
                    }
                    (ContentSource::Regular { .. }, Source::Repo { repo, commit, .. }) => {
                        let url = self.cfg.urls.resolve(repo, commit, &self.inodes.path(ino));
                        Effect::HubRange { url, range: start..end }
                    }
                    (ContentSource::Regular { .. }, Source::Bucket { .. }) => return,
                };
                let id = self.start_effect(Purpose::Fetch { ino, range: start..end }, effect);
                self.fetching.entry(ino).or_default().push((start..end, id));
                self.stats.fetches += 1;
                start = end;
            }
        }
    }

    fn on_fetched(&mut self, id: EffectId, ino: Ino, range: Range<u64>, pieces: Vec<Bytes>) {
        // A fetch no longer tracked belongs to content that has since changed: drop it.
        if self.forget_fetch(ino, id) {
            let mut offset = range.start;
            for piece in pieces {
                let len = piece.len() as u64;
                self.cache.insert(ino, offset, piece);
                offset += len;
            }
            self.stats.bytes_fetched += offset - range.start;
        }
        self.serve_parked(ino);
        self.cache.evict();
    }

    /// Answer parked reads now covered; re-fetch what an eviction or failure left uncovered.
    pub(crate) fn serve_parked(&mut self, ino: Ino) {
        let Some(parked) = self.parked_reads.remove(&ino) else {
            return;
        };
        let mut still = Vec::new();
        for p in parked {
            match self.cache.read(ino, p.range.clone()) {
                Some(data) => self.reply_data(p.req, data),
                None => still.push(p),
            }
        }
        for p in &still {
            self.ensure_fetched(ino, p.range.clone());
        }
        if !still.is_empty() {
            self.parked_reads.insert(ino, still);
        }
    }

    /// Stop tracking fetch `id`; false if it was not tracked (anymore).
    fn forget_fetch(&mut self, ino: Ino, id: EffectId) -> bool {
        let Some(v) = self.fetching.get_mut(&ino) else { return false };
        let before = v.len();
        v.retain(|(_, e)| *e != id);
        let found = v.len() != before;
        if v.is_empty() {
            self.fetching.remove(&ino);
        }
        found
    }

    /// `ino`'s content changed: cached bytes and fetches in flight are of the old content.
    pub(crate) fn content_changed(&mut self, ino: Ino) {
        self.cache.invalidate(ino);
        self.fetching.remove(&ino);
        self.patterns.retain(|r, _| *r != Reader::Inode(ino));
    }

    fn fail_fetch(&mut self, id: EffectId, ino: Ino, range: Range<u64>, err: FsError) {
        // The file is in the listing, so missing bytes are an I/O error, not ENOENT.
        let err = if err.errno == Errno::NoEnt { FsError::new(Errno::Io, "content_missing", err.detail) } else { err };
        self.forget_fetch(ino, id);
        let parked = self.parked_reads.remove(&ino).unwrap_or_default();
        let (failed, kept): (Vec<_>, Vec<_>) =
            parked.into_iter().partition(|p| p.range.start < range.end && range.start < p.range.end);
        let path = self.inodes.path(ino);
        for p in failed {
            self.fail(p.req, FsError { detail: format!("{path}: {}", err.detail), ..err.clone() });
        }
        if !kept.is_empty() {
            self.parked_reads.insert(ino, kept);
        }
    }

    // ---- effects and failures ------------------------------------------------------------

    pub(crate) fn start_effect(&mut self, purpose: Purpose, effect: Effect) -> EffectId {
        let id = EffectId(self.next_effect);
        self.next_effect += 1;
        if matches!(effect, Effect::HubGet { .. } | Effect::HubRange { .. } | Effect::HubPost { .. }) {
            self.stats.hub_requests += 1;
        }
        self.effects.push_back((id, effect.clone()));
        self.in_flight.insert(id, InFlight { purpose, effect, attempts: 1 });
        id
    }

    pub(crate) fn stage(&mut self, ino: Ino, kind: StageKind, op: StageOp) {
        self.start_effect(Purpose::Stage { ino, kind }, Effect::Stage(op));
    }

    fn on_failure(&mut self, id: EffectId, mut flight: InFlight, failure: EffectFailure, now: Instant) {
        if let Some(delay) = retry::next_delay(&failure, flight.attempts) {
            flight.attempts += 1;
            self.retries.insert((now.saturating_add(delay), id), ());
            self.in_flight.insert(id, flight);
            return;
        }
        let err = errno_for(&failure);
        match flight.purpose {
            Purpose::ListPage { dir } => self.fail_listing(dir, err),
            Purpose::Fetch { ino, range } => self.fail_fetch(id, ino, range, err),
            Purpose::Stage { ino, kind } => self.on_staged(ino, kind, Err(err), now),
            Purpose::Upload { files } => {
                self.upload_done();
                for (ino, _) in files {
                    self.on_upload_failed(ino, err.clone(), now);
                }
            }
            Purpose::Stream { ino, step } => self.on_stream(ino, step, Err(err), now),
            Purpose::Commit => self.on_commit_failed(err, now),
            Purpose::Poll => self.on_poll(Err(err.to_string()), now),
            Purpose::Scan { dir } => self.fail_scan(dir, err),
        }
    }

    // ---- helpers -------------------------------------------------------------------------

    pub(crate) fn check_dir(&self, ino: Ino) -> Result<(), FsError> {
        match self.inodes.get(ino).map(|n| &n.kind) {
            None => Err(FsError::not_found()),
            Some(NodeKind::Dir) => Ok(()),
            Some(_) => Err(FsError::new(Errno::NotDir, "not_a_directory", "")),
        }
    }

    fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.inodes.get(ino).map(|n| &n.kind), Some(NodeKind::Dir))
    }

    pub(crate) fn read_only_error(&self) -> FsError {
        let detail = match self.cfg.source {
            Source::Repo { .. } => "repo mounts are read-only",
            Source::Bucket { .. } => "this bucket is mounted --read-only",
        };
        FsError::new(Errno::RoFs, "read_only", detail)
    }

    pub(crate) fn attr(&self, ino: Ino) -> Option<Attr> {
        let node = self.inodes.get(ino)?;
        let writable = self.cfg.writes.mode != WriteMode::ReadOnly;
        let (kind, size, perm, nlink, rdev) = match &node.kind {
            NodeKind::Dir => (FileKind::Directory, 0, if writable { 0o755 } else { 0o555 }, 2, 0),
            NodeKind::File { size, .. } => (FileKind::RegularFile, *size, if writable { 0o644 } else { 0o444 }, 1, 0),
            NodeKind::Symlink { target } => (FileKind::Symlink, target.len() as u64, 0o777, 1, 0),
            NodeKind::Special { kind, rdev } => (*kind, 0, 0o644, 1, *rdev),
        };
        let nlink = match node.kind {
            // `.` and the parent's entry, plus each subdirectory's `..` (as far as listed).
            NodeKind::Dir => {
                let subdirs = self.listings.children(ino).iter().filter(|(_, c)| self.is_dir(*c)).count();
                2 + subdirs as u32
            }
            _ if node.detached => 0,
            _ => nlink,
        };
        let mtime_ns = node.meta.mtime_ns.unwrap_or(self.cfg.mtime_secs.saturating_mul(NANOS));
        Some(Attr {
            ino,
            size,
            kind,
            perm: node.meta.perm.unwrap_or(perm),
            nlink,
            uid: node.meta.uid.unwrap_or(self.cfg.uid),
            gid: node.meta.gid.unwrap_or(self.cfg.gid),
            atime_ns: node.meta.atime_ns.unwrap_or(mtime_ns),
            mtime_ns,
            ctime_ns: node.meta.ctime_ns.unwrap_or(mtime_ns),
            rdev,
        })
    }

    pub(crate) fn reply(&mut self, id: RequestId, reply: Reply) {
        self.replies.push_back((id, reply));
    }

    pub(crate) fn reply_data(&mut self, id: RequestId, data: Bytes) {
        self.stats.bytes_read += data.len() as u64;
        self.reply(id, Reply::Data(data));
    }

    pub(crate) fn fail(&mut self, id: RequestId, err: FsError) {
        self.reply(id, Reply::Error(err));
    }

    pub(crate) fn log(&mut self, level: LogLevel, line: String) {
        self.logs.push_back((level, line));
    }

    /// Wall-clock nanoseconds since the epoch at `now` (the runtime's origin is
    /// `cfg.wall_ms_at_zero`).
    pub(crate) fn wall_ns(&self, now: Instant) -> i64 {
        self.cfg.wall_ms_at_zero.saturating_mul(1_000_000).saturating_add(now.as_nanos() as i64)
    }

    /// Set `ino`'s ctime (and with `modified`, its mtime) to `now`.
    pub(crate) fn touch(&mut self, ino: Ino, modified: bool, now: Instant) {
        let t = self.wall_ns(now);
        if let Some(n) = self.inodes.get_mut(ino) {
            n.meta.ctime_ns = Some(t);
            if modified {
                n.meta.mtime_ns = Some(t);
            }
        }
    }

    /// The mtime a commit of `ino` carries, in milliseconds.
    pub(crate) fn commit_mtime_ms(&self, ino: Ino, now: Instant) -> i64 {
        let ns = self.inodes.get(ino).and_then(|n| n.meta.mtime_ns).unwrap_or_else(|| self.wall_ns(now));
        ns.div_euclid(1_000_000)
    }
}

/// A tree page's entries and its next-page link, from a successful listing response.
fn tree_page(completion: Completion) -> Result<(Vec<hub::TreeEntry>, Option<String>), FsError> {
    let Completion::Http(resp) = completion else { return Err(unexpected(&completion)) };
    let next = resp.header("link").and_then(hub::next_link);
    hub::parse_tree_page(&resp.body)
        .map(|entries| (entries, next))
        .map_err(|e| FsError::new(Errno::Io, "bad_hub_response", format!("HTTP {}: {e}", resp.status)))
}

fn unexpected(c: &Completion) -> FsError {
    let kind = match c {
        Completion::Http(_) => "an HTTP response",
        Completion::Bytes(_) => "bytes",
        Completion::Done => "done",
        Completion::Uploaded(_) => "an upload",
        Completion::Failed(_) => "a failure",
    };
    FsError::new(Errno::Io, "internal", format!("effect completed with {kind}"))
}

/// The name of `path` inside directory `dir_path`, if it is a direct child.
pub(crate) fn child_name<'a>(dir_path: &str, path: &'a str) -> Option<&'a str> {
    let rest = if dir_path.is_empty() { path } else { path.strip_prefix(dir_path)?.strip_prefix('/')? };
    let ok = !rest.is_empty() && !rest.contains('/') && rest != "." && rest != ".." && !rest.contains('\0');
    ok.then_some(rest)
}

/// `range` minus every range in `holes`, in order.
fn subtract(range: Range<u64>, holes: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut pieces = vec![range];
    for h in holes {
        pieces = pieces
            .into_iter()
            .flat_map(|p| {
                if h.end <= p.start || h.start >= p.end {
                    vec![p]
                } else {
                    let mut out = Vec::new();
                    if p.start < h.start {
                        out.push(p.start..h.start);
                    }
                    if h.end < p.end {
                        out.push(h.end..p.end);
                    }
                    out
                }
            })
            .collect();
    }
    pieces
}

/// Map a final (no more retries) failure to what the user sees.
pub(crate) fn errno_for(f: &EffectFailure) -> FsError {
    let detail = match f.status {
        Some(s) => format!("HTTP {s}: {}", f.message),
        None => f.message.clone(),
    };
    match (f.kind, f.status) {
        (FailureKind::Auth, _) => FsError::new(Errno::Acces, "hub_denied", detail),
        (FailureKind::NotFound, _) => FsError::new(Errno::NoEnt, "hub_not_found", detail),
        (_, Some(429)) => FsError::new(Errno::Again, "hub_rate_limited", detail),
        (_, Some(413 | 507)) => FsError::new(Errno::NoSpc, "hub_no_space", detail),
        (FailureKind::Transient, _) => FsError::new(Errno::Io, "hub_unavailable", detail),
        (FailureKind::Permanent, _) => FsError::new(Errno::Io, "bad_hub_response", detail),
    }
}

/// Which tree-entry kinds become which node kinds.
pub(crate) fn node_kind(entry: &hub::TreeEntry) -> NodeKind {
    match &entry.kind {
        TreeEntryKind::Directory => NodeKind::Dir,
        TreeEntryKind::File { size, source } => NodeKind::File { size: *size, source: source.clone() },
    }
}

#[cfg(test)]
mod tests;

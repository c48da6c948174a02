//! The filesystem state machine: a repo at a commit (read-only) or a bucket (read-write unless
//! configured read-only).
//!
//! Method classes, in the manner of quinn-proto:
//! - getters: `config`, `stats`, `inode_count`, `unsaved_files`, `is_busy`, `has_unsaved`, `write_verifier`;
//! - inputs: `handle_request`, `handle_completion`, `handle_timeout` (each takes `now`), and the
//!   command `begin_drain`;
//! - outputs, drained in this order after every input: `poll_reply`, `poll_effect`,
//!   `poll_notify`, `poll_log`, `poll_mounted`, `poll_drained`, then `poll_timeout` for when to
//!   call `handle_timeout` next.
//!
//! It owns every policy and never performs IO. State lives in parts that own it behind their
//! own types: the inode table, listings, the read path (`read`), open handles, effects in flight
//! (`flights`), requests that wait (`parked`), the write buffer (`writebuf`), the upload and
//! commit schedulers (`upload`, `commit`), directory scans, the poll (`refresh`), eviction of
//! idle listings (`evict`). This file holds the composition, the dispatch and the outputs.

mod access;
mod attrs;
mod breaker;
mod commit;
mod copies;
mod evict;
mod flights;
mod journal;
mod lookup;
mod mount;
mod namespace;
mod overlay;
mod parked;
mod read;
mod refresh;
mod resolve;
mod stream;
mod upload;
mod write;
mod writebuf;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::collections::Map;
use crate::config::{MountConfig, Source, WriteMode};
use crate::effect::{Completion, Effect, EffectFailure, EffectId, FailureKind, LocalError};
use crate::error::{Errno, FsError, LogLevel};
use crate::hub::{self, RepoRef};
use crate::identity;
use crate::inode::{Ino, InodeTable};
use crate::listing::Listings;
use crate::request::{Caller, KernelNotify, Reply, Request, RequestId};
use crate::retry;
use crate::rng::Rng;
use crate::time::Instant;

use breaker::{is_outage, Breakers, Endpoint};
use flights::{Flight, Flights, Purpose};
use parked::{Parked, Then, Wait};

pub use copies::copy_name_size;
pub use mount::MountInfo;

/// A log line repeated within this is counted instead of written again.
const LOG_REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// Longest file name the mount accepts.
pub(crate) const NAME_MAX: usize = 255;

/// What the mount shows, once resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Remote {
    /// A repo at `commit`; `follow` names the branch or tag the poll follows.
    Repo {
        repo: RepoRef,
        commit: String,
        follow: Option<String>,
    },
    Bucket {
        id: String,
    },
}

/// An open file handle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenFile {
    pub ino: Ino,
    pub write: bool,
    /// Opened through local copy number `n` (`copies`), not the page cache.
    pub through: Option<u64>,
}

#[derive(Default)]
pub(crate) struct Handles {
    next: u64,
    open: Map<u64, OpenFile>,
    /// Open handles per file.
    per_file: Map<Ino, u32>,
}

impl Handles {
    pub fn open(&mut self, ino: Ino, write: bool) -> u64 {
        self.next += 1;
        self.open.insert(self.next, OpenFile { ino, write, through: None });
        *self.per_file.entry(ino).or_default() += 1;
        self.next
    }

    pub fn close(&mut self, fh: u64) -> Option<OpenFile> {
        let file = self.open.remove(&fh)?;
        if let Some(n) = self.per_file.get_mut(&file.ino) {
            *n -= 1;
            if *n == 0 {
                self.per_file.remove(&file.ino);
            }
        }
        Some(file)
    }

    pub fn is_open(&self, ino: Ino) -> bool {
        self.per_file.contains_key(&ino)
    }

    pub fn get(&self, fh: u64) -> Option<OpenFile> {
        self.open.get(&fh).copied()
    }

    /// Handle `fh` reads through local copy `n`.
    pub fn set_through(&mut self, fh: u64, n: u64) {
        if let Some(f) = self.open.get_mut(&fh) {
            f.through = Some(n);
        }
    }

    /// The open handles of `ino`.
    pub fn of_file(&self, ino: Ino) -> impl Iterator<Item = &OpenFile> + '_ {
        self.open.values().filter(move |f| f.ino == ino)
    }

    /// Is a handle open through local copy `n`?
    pub fn through_open(&self, n: u64) -> bool {
        self.open.values().any(|f| f.through == Some(n))
    }
}

/// How the unmount drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Everything written was committed.
    Drained,
    /// The time limit ran out with changes still unsaved.
    GaveUp,
}

#[derive(Default)]
pub(crate) struct Drain {
    pub active: bool,
    started: Instant,
    deadline: Option<Instant>,
}

/// What core has for the outside, drained by the `poll_*` methods.
#[derive(Default)]
pub(crate) struct Outputs {
    replies: VecDeque<(RequestId, Reply)>,
    pub notifies: VecDeque<KernelNotify>,
    logs: VecDeque<(LogLevel, String)>,
    pub mounted: Option<Result<MountInfo, FsError>>,
    drained: Option<DrainOutcome>,
}

/// Counters for benchmarks, tests and `hf-mount status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hub_requests: u64,
    pub fetches: u64,
    pub bytes_fetched: u64,
    pub bytes_read: u64,
    /// Reads of remote content, and how many of them had to wait for bytes from the Hub.
    pub reads: u64,
    pub reads_waited: u64,
    pub bytes_written: u64,
    pub retries: u64,
    pub uploads: u64,
    pub upload_failures: u64,
    pub bytes_uploaded: u64,
    /// Of those, bytes uploaded while their file was written (upload streams that finished).
    pub bytes_streamed: u64,
    pub commits: u64,
    pub polls: u64,
    /// Local copies completed, and opens served from one through the kernel (`copies`).
    pub copies_made: u64,
    pub opens_through_copies: u64,
}

pub struct Filesystem {
    pub(crate) cfg: MountConfig,
    pub(crate) mount: mount::Phase,
    pub(crate) remote: Remote,
    /// mtime of directories and of files whose listing gives none.
    pub(crate) mtime_secs: i64,
    /// The Hub says the source is private.
    pub(crate) private: bool,
    /// Hub URLs of the xet tokens for reading and for uploading.
    pub(crate) read_token: Arc<str>,
    pub(crate) write_token: Arc<str>,
    pub(crate) inodes: InodeTable,
    pub(crate) listings: Listings,
    pub(crate) reads: read::Reads,
    pub(crate) handles: Handles,
    pub(crate) flights: Flights,
    pub(crate) parked: Parked,
    pub(crate) writes: writebuf::WriteBuffer,
    pub(crate) journal: journal::Journal,
    /// What the bucket held of each file when the mount started changing it, or the newer
    /// version a listing showed since (to tell a change made by someone else from the mount's
    /// own, and log each once). Not the journal's base: a recovery compares the bucket with
    /// the version the change started from.
    pub(crate) bases: Map<Ino, String>,
    /// The content identity of each file as the kernel last opened it (its page cache may
    /// hold those bytes).
    pub(crate) kernel_pages: Map<Ino, u64>,
    pub(crate) copies: copies::Copies,
    pub(crate) uploads: upload::UploadScheduler,
    pub(crate) commits: commit::CommitScheduler,
    pub(crate) scans: namespace::Scans,
    pub(crate) search: resolve::Search,
    pub(crate) poll: refresh::Poller,
    pub(crate) sweeper: evict::Sweeper,
    pub(crate) overlay: overlay::LayerQueue,
    /// Errors of background work (upload, commit) not yet reported to the file's user.
    pub(crate) unreported: Map<Ino, FsError>,
    pub(crate) drain: Drain,
    pub(crate) breakers: Breakers,
    /// Directories served from a stale listing because re-listing failed (logged once each).
    pub(crate) stale: crate::collections::Set<Ino>,
    /// The time of the input being handled.
    pub(crate) now: Instant,
    /// Log lines said lately: when, and how often repeated since.
    recent_logs: std::collections::BTreeMap<String, (Instant, u32)>,
    pub(crate) rng: Rng,
    pub(crate) out: Outputs,
    pub(crate) stats: Stats,
    /// Names staging files and upload streams uniquely.
    pub(crate) next_stage: u64,
}

impl Filesystem {
    /// A filesystem for `cfg`; it starts by resolving the source against the Hub (requests
    /// wait until `poll_mounted` reports the outcome).
    pub fn new(mut cfg: MountConfig) -> Self {
        if matches!(cfg.source, Source::Repo { .. }) {
            cfg.writes.mode = WriteMode::ReadOnly;
        }
        let remote = match &cfg.source {
            Source::Repo { repo, .. } => Remote::Repo { repo: repo.clone(), commit: String::new(), follow: None },
            Source::Bucket { id } => Remote::Bucket { id: id.clone() },
        };
        let seed = identity::mount_seed(&cfg.source.identity_key());
        let mut fs = Filesystem {
            inodes: InodeTable::new(&cfg.subfolder, seed),
            mount: mount::Phase::Resolving { probes: 0, bucket_error: None, is_repo: false },
            remote,
            mtime_secs: 0,
            private: false,
            read_token: Arc::from(""),
            write_token: Arc::from(""),
            listings: Listings::default(),
            reads: read::Reads::new(cfg.policy.cache_bytes),
            handles: Handles::default(),
            flights: Flights::default(),
            parked: Parked::default(),
            writes: writebuf::WriteBuffer::default(),
            journal: journal::Journal::default(),
            bases: Map::default(),
            kernel_pages: Map::default(),
            copies: copies::Copies::new(cfg.copies.as_ref().map_or(&[][..], |p| &p.stored)),
            uploads: upload::UploadScheduler::default(),
            commits: commit::CommitScheduler::default(),
            scans: namespace::Scans::default(),
            search: resolve::Search::default(),
            poll: refresh::Poller::default(),
            sweeper: evict::Sweeper::default(),
            overlay: overlay::LayerQueue::default(),
            unreported: Map::default(),
            drain: Drain::default(),
            breakers: Breakers::default(),
            stale: Default::default(),
            now: Instant::ZERO,
            recent_logs: Default::default(),
            rng: Rng::new(cfg.seed),
            out: Outputs::default(),
            stats: Stats::default(),
            next_stage: 0,
            cfg,
        };
        fs.start_mount();
        fs.schedule_sweep(Instant::ZERO);
        fs
    }

    // ---- getters -------------------------------------------------------------------------

    pub fn config(&self) -> &MountConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Entries in the inode table (`--inode-soft-limit` keeps it near its limit).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// Files written but not yet committed to the bucket.
    pub fn unsaved_files(&self) -> usize {
        self.writes.dirty().len()
    }

    /// True while effects are outstanding or waiting to be retried.
    pub fn is_busy(&self) -> bool {
        !self.flights.is_empty()
    }

    /// True while something written is not yet committed to the bucket.
    pub fn has_unsaved(&self) -> bool {
        self.writes.any_dirty() || !self.commits.is_idle()
    }

    /// Changes every time a mount starts (`MountConfig::verifier`): NFS clients resend
    /// unstable writes not committed under the verifier they saw.
    pub fn write_verifier(&self) -> u64 {
        self.cfg.verifier
    }

    // ---- inputs --------------------------------------------------------------------------

    pub fn handle_request(&mut self, id: RequestId, caller: Caller, req: Request, now: Instant) {
        self.now = self.now.max(now);
        self.dispatch(id, caller, req, now);
        self.after_input(now);
    }

    pub fn handle_completion(&mut self, id: EffectId, completion: Completion, now: Instant) {
        self.now = self.now.max(now);
        if let Some(flight) = self.flights.finish(id) {
            self.record_health(&flight.effect, &completion, now);
            match completion {
                Completion::Failed(failure) => self.on_failure(id, flight, failure, now),
                Completion::Http(resp) if !(200..300).contains(&resp.status) => {
                    self.on_failure(id, flight, hub::failure_from_response(&resp), now)
                }
                completion => self.on_success(id, flight, completion, now),
            }
        }
        self.after_input(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let breakers = &self.breakers;
        self.stats.retries += self.flights.fire_retries(now, |e| breakers.refuses(e, now));
        for (id, flight) in self.flights.expired(now) {
            let timeout = flight.timeout.unwrap_or_default();
            let failure = EffectFailure::new(FailureKind::Transient, None, format!("no answer within {timeout:?}"));
            if let Some(endpoint) = Endpoint::of(&flight.effect) {
                self.breakers.get(endpoint).on_outage(now);
            }
            self.on_failure(id, flight, failure, now);
        }
        for (id, then) in self.parked.expired(now) {
            if let Then::ServeRead { ino, .. } = then {
                let path = self.inodes.path(ino);
                let waited = self.cfg.timeouts.read_fetch.unwrap_or_default();
                let detail = format!("{path}: its bytes did not arrive within {waited:?}");
                self.fail(id, FsError::new(Errno::Io, "read_timeout", detail));
            }
        }
        if self.poll.next.is_some_and(|at| at <= now) {
            self.start_poll();
        }
        if self.sweeper.next.is_some_and(|at| at <= now) {
            self.sweep(now);
        }
        self.after_input(now);
    }

    /// The endpoint of `effect` answered: a success closes its breaker, an outage counts.
    fn record_health(&mut self, effect: &Effect, completion: &Completion, now: Instant) {
        let Some(endpoint) = Endpoint::of(effect) else { return };
        let failure = match completion {
            Completion::Failed(f) => Some(f.clone()),
            Completion::Http(resp) if !(200..300).contains(&resp.status) => Some(hub::failure_from_response(resp)),
            _ => None,
        };
        match failure {
            Some(f) if is_outage(&f) => {
                if self.breakers.get(endpoint).on_outage(now) {
                    self.log(LogLevel::Warn, format!("{endpoint:?} unreachable ({}): pausing calls to it", f.message));
                }
            }
            _ => self.breakers.get(endpoint).on_success(),
        }
    }

    /// Unmounting: upload and commit everything dirty now instead of after its debounce, for
    /// at most `limit`; `poll_drained` then says whether everything was saved.
    pub fn begin_drain(&mut self, now: Instant, limit: Duration) {
        self.now = self.now.max(now);
        self.drain = Drain { active: true, started: now, deadline: Some(now.saturating_add(limit)) };
        self.commits.not_before = None;
        self.commits.retry_refused_now(now);
        if self.is_mounted() {
            self.all_due(now);
        }
        self.after_input(now);
    }

    /// Work every input may have made due: attempts refused by a breaker fail, uploads and a
    /// commit start, the drain's outcome.
    fn after_input(&mut self, now: Instant) {
        for _ in 0..8 {
            let refused = self.flights.take_refused();
            if refused.is_empty() {
                break;
            }
            for (id, flight) in refused {
                let endpoint =
                    Endpoint::of(&flight.effect)
                        .map_or("remote", |e| if e == Endpoint::Hub { "the Hub" } else { "CAS" });
                let failure = EffectFailure::new(
                    FailureKind::Transient,
                    None,
                    format!("{endpoint} is unreachable (calls paused)"),
                );
                self.on_failure(id, flight, failure, now);
            }
        }
        if self.is_mounted() && self.cfg.writes.mode != WriteMode::ReadOnly {
            self.start_due_uploads(now);
            self.maybe_commit(now);
        }
        let Some(deadline) = self.drain.deadline else { return };
        let refused_again = !self.writes.any_dirty()
            && self.commits.only_refused_left()
            && self.commits.refused_retried_since(self.drain.started);
        let outcome = if !self.has_unsaved() {
            DrainOutcome::Drained
        } else if refused_again {
            let paths = self.commits.refused_paths().join(", ");
            self.log(LogLevel::Warn, format!("unmounting: the Hub still refuses {paths}; not in the bucket"));
            DrainOutcome::GaveUp
        } else if now >= deadline {
            DrainOutcome::GaveUp
        } else {
            return;
        };
        self.drain.deadline = None;
        self.out.drained = Some(outcome);
    }

    // ---- outputs -------------------------------------------------------------------------

    pub fn poll_reply(&mut self) -> Option<(RequestId, Reply)> {
        self.out.replies.pop_front()
    }

    pub fn poll_effect(&mut self) -> Option<(EffectId, Effect)> {
        self.flights.poll()
    }

    pub fn poll_notify(&mut self) -> Option<KernelNotify> {
        self.out.notifies.pop_front()
    }

    /// Log lines about background work (uploads, commits, polls) that no request carries.
    pub fn poll_log(&mut self) -> Option<(LogLevel, String)> {
        self.out.logs.pop_front()
    }

    /// The outcome of mount-time resolution, once.
    pub fn poll_mounted(&mut self) -> Option<Result<MountInfo, FsError>> {
        self.out.mounted.take()
    }

    /// The unmount drain's outcome, once it is known (see `begin_drain`).
    pub fn poll_drained(&mut self) -> Option<DrainOutcome> {
        self.out.drained.take()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.flights.next_timer(),
            self.parked.next_deadline(),
            self.uploads.next_due(),
            self.commits.next_wakeup(self.cfg.writes.flush_max_batch_window),
            self.poll.next,
            self.sweeper.next,
            self.drain.deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- dispatch ------------------------------------------------------------------------

    pub(crate) fn dispatch(&mut self, id: RequestId, caller: Caller, req: Request, now: Instant) {
        match &self.mount {
            mount::Phase::Mounted => {}
            mount::Phase::Failed(err) => return self.fail(id, err.clone()),
            mount::Phase::Resolving { .. } => return self.park(id, Wait::Mounted, Then::Redispatch(caller, req)),
        }
        if self.cfg.overlay {
            if self.cfg.access.check {
                if let Err(e) = self.check_access(&caller, &req) {
                    return self.fail(id, e);
                }
            }
            // What overlay mode leaves alone only reads the remote.
            if let Some(req) = self.overlay_dispatch(id, &caller, req, now) {
                self.handle(id, caller, req, now);
            }
            return;
        }
        if req.is_modifying() && self.cfg.writes.mode == WriteMode::ReadOnly {
            return self.fail(id, self.read_only_error());
        }
        if self.cfg.access.check {
            if let Err(e) = self.check_access(&caller, &req) {
                return self.fail(id, e);
            }
        }
        self.handle(id, caller, req, now);
    }

    /// Serve a request that passed the mount's checks.
    fn handle(&mut self, id: RequestId, caller: Caller, req: Request, now: Instant) {
        match req {
            Request::Lookup { parent, name } => self.lookup(id, &caller, parent, name, now),
            Request::Forget { ino, nlookup } => {
                self.inodes.forget(ino, nlookup);
                if self.inodes.get(ino).is_none_or(|n| n.lookups == 0) {
                    // The kernel dropped the inode, and its pages with it.
                    self.kernel_pages.remove(&ino);
                }
                self.reply(id, Reply::Empty);
            }
            Request::GetAttr { ino } => match self.attr(ino) {
                Some(attr) => self.reply(id, Reply::Attr { attr, ttl: self.cfg.metadata_ttl, before: None }),
                None => self.fail(id, FsError::not_found()),
            },
            Request::Resolve { ino } => self.resolve(id, &caller, ino, now),
            Request::ReadDir { ino, offset, plus, budget } => self.readdir(id, &caller, ino, offset, plus, budget, now),
            Request::Open { ino, write, truncate } => self.open(id, ino, write, truncate, now),
            Request::Read { ino, fh, offset, size } => self.read(id, &caller, ino, fh, offset, size),
            Request::Write { ino, fh, offset, data, stable } => {
                self.write(id, &caller, ino, fh, offset, data, stable, now)
            }
            Request::Fallocate { ino, offset, length, mode } => {
                self.fallocate(id, ino, offset..offset.saturating_add(length), mode, now)
            }
            Request::Release { fh } => self.release(id, fh, now),
            Request::Flush { ino, fh } => self.flush(id, &caller, ino, fh, now),
            Request::Fsync { ino } => self.fsync(id, &caller, ino, None, now),
            Request::Commit { ino, .. } => self.fsync(id, &caller, ino, Some(self.cfg.verifier), now),
            Request::Access { ino, mask } => match self.attr(ino) {
                Some(attr) => {
                    let allowed = self.allowed(&caller, &attr) & mask;
                    self.reply(id, Reply::Access { allowed })
                }
                None => self.fail(id, FsError::not_found()),
            },
            Request::ReadLink { ino } => self.readlink(id, ino),
            Request::StatFs => self.statfs(id),
            Request::Create { parent, name, mode, how, open } => {
                self.create(id, &caller, parent, name, mode, how, open, now)
            }
            Request::Mkdir { parent, name, mode } => self.mkdir(id, &caller, parent, name, mode, now),
            Request::Mknod { parent, name, kind, mode, rdev } => {
                self.mknod(id, &caller, parent, name, (kind, mode, rdev), now)
            }
            Request::Unlink { parent, name } => self.unlink(id, &caller, parent, name, now),
            Request::Rmdir { parent, name } => self.rmdir(id, &caller, parent, name, now),
            Request::Rename { parent, name, new_parent, new_name, no_replace } => {
                self.rename(id, &caller, (parent, name), (new_parent, new_name), no_replace, now)
            }
            Request::Symlink { parent, name, target } => self.symlink(id, &caller, parent, name, target, now),
            Request::Link { ino, new_parent, new_name } => self.link(id, &caller, ino, new_parent, new_name, now),
            Request::SetAttr { ino, set, guard_ctime } => self.setattr(id, ino, set, guard_ctime, now),
            Request::Unsupported { op } => {
                self.fail(id, FsError::new(Errno::NotSup, "unsupported", format!("{op} is not supported here")))
            }
        }
    }

    // ---- waiting requests ----------------------------------------------------------------

    pub(crate) fn park(&mut self, id: RequestId, wait: Wait, then: Then) {
        self.parked.park(id, wait, then);
    }

    /// `wait` is satisfied: resume everything waiting for it.
    pub(crate) fn wake(&mut self, wait: Wait, now: Instant) {
        for (id, then) in self.parked.take(wait) {
            self.resume(id, then, now);
        }
    }

    pub(crate) fn resume(&mut self, id: RequestId, then: Then, now: Instant) {
        match then {
            Then::Redispatch(caller, req) => self.dispatch(id, caller, req, now),
            Then::ServeRead { ino, range, deadline } => {
                self.serve_read(id, ino, range, deadline);
            }
            Then::Answer(reply) => self.reply(id, reply),
            Then::AnswerAfterStream { ino, reply } => match self.stream_backlogged(ino) {
                true => self.park(id, Wait::Stream(ino), Then::Answer(reply)),
                false => self.reply(id, reply),
            },
            Then::AfterSave { ino, reply } => self.answer_when_committed(id, ino, reply),
        }
    }

    /// `wait` can never be satisfied: everything waiting for it fails with `err`.
    pub(crate) fn fail_waiting(&mut self, wait: Wait, err: &FsError) {
        for (id, _) in self.parked.take(wait) {
            self.fail(id, err.clone());
        }
    }

    // ---- effects and failures ------------------------------------------------------------

    pub(crate) fn start_effect(&mut self, purpose: Purpose, effect: Effect) -> EffectId {
        if matches!(effect, Effect::HubGet { .. } | Effect::HubRange { .. } | Effect::HubPost { .. }) {
            self.stats.hub_requests += 1;
        }
        let timeout = self.timeout_for(&effect);
        self.start_effect_timed(purpose, effect, timeout)
    }

    /// Start `effect` with an attempt timeout of its own (uploads, sized by their files).
    pub(crate) fn start_effect_timed(
        &mut self,
        purpose: Purpose,
        effect: Effect,
        timeout: Option<Duration>,
    ) -> EffectId {
        let refuse = self.breakers.refuses(&effect, self.now);
        self.flights.start(purpose, effect, timeout, self.now, refuse)
    }

    /// How long moving `bytes` to or from CAS may take.
    pub(crate) fn transfer_timeout(&self, bytes: u64) -> Duration {
        let t = &self.cfg.timeouts;
        t.transfer_base
            .saturating_add(t.transfer_per_mib.saturating_mul(u32::try_from(bytes >> 20).unwrap_or(u32::MAX)))
    }

    /// How long one attempt of `effect` may take before core stops waiting for it. Only
    /// effects that may be repeated and reordered freely are given up on: reads, listings and
    /// content-addressed uploads.
    fn timeout_for(&self, effect: &Effect) -> Option<Duration> {
        use crate::effect::StreamOp;
        let t = &self.cfg.timeouts;
        match effect {
            Effect::HubGet { .. } => Some(t.hub_call),
            // A commit is never given up on while it may still land: a retry sent meanwhile,
            // or the next batch, could be applied before it (effects bound the HTTP call).
            Effect::HubPost { .. } => None,
            Effect::HubRange { range, .. } => Some(t.hub_call.max(self.transfer_timeout(range.end - range.start))),
            Effect::CasRange { .. } => t.read_fetch,
            // Uploads are timed by their files' sizes (`start_effect_timed`).
            Effect::Upload { .. } | Effect::Stream(StreamOp::Finish { .. }) => Some(t.transfer_base),
            Effect::Stream(StreamOp::Append { data, .. }) => {
                Some(self.transfer_timeout(data.iter().map(|c| c.len() as u64).sum()))
            }
            // Staging files are never given up on: a late fill would overwrite edits made after
            // it (effects bound their own IO).
            Effect::Stream(StreamOp::Abort { .. }) | Effect::Stage(_) | Effect::Layer(_) => None,
        }
    }

    pub(crate) fn hub_get(&mut self, purpose: Purpose, url: String) -> EffectId {
        self.start_effect(purpose, Effect::HubGet { url })
    }

    fn on_success(&mut self, id: EffectId, flight: Flight, completion: Completion, now: Instant) {
        match flight.purpose {
            Purpose::Mount(step) => self.on_mount_step(step, Ok(completion), now),
            // A page cut short or garbled is more often a broken connection than a broken Hub:
            // it is retried like one.
            Purpose::ListPage { dir } => match tree_page(completion) {
                Ok((page, next)) => self.on_page(dir, page, next, now),
                Err(e) => {
                    self.on_failure(id, Flight { purpose: Purpose::ListPage { dir }, ..flight }, malformed(e), now)
                }
            },
            Purpose::Fetch { ino, range } => match completion {
                Completion::Bytes(data) => {
                    let len: u64 = data.iter().map(|b| b.len() as u64).sum();
                    if len == range.end - range.start {
                        self.on_fetched(flight.origin, ino, range, data, now);
                    } else {
                        let msg = format!("short fetch: wanted {} bytes, got {len}", range.end - range.start);
                        let flight = Flight { purpose: Purpose::Fetch { ino, range }, ..flight };
                        self.on_failure(id, flight, EffectFailure::new(FailureKind::Transient, None, msg), now);
                    }
                }
                other => self.fail_fetch(flight.origin, ino, range, unexpected(&other)),
            },
            Purpose::Stage { ino, kind } => self.on_staged(ino, kind, Ok(completion), now),
            Purpose::Copy { ino, copy, step } => match completion {
                Completion::Done => self.on_copy_step(ino, copy, step, Ok(())),
                other => self.on_copy_step(ino, copy, step, Err(unexpected(&other))),
            },
            Purpose::Upload { files } => match completion {
                Completion::Uploaded(results) if results.len() == files.len() => {
                    self.uploads.ended();
                    for ((ino, generation), (xet_hash, size)) in files.into_iter().zip(results) {
                        self.on_uploaded(ino, generation, xet_hash, size, now);
                    }
                }
                other => self.on_upload_failed(files, unexpected(&other), now),
            },
            Purpose::Stream { ino, step } => self.on_stream(ino, step, Ok(completion), now),
            Purpose::Commit => self.on_committed(now),
            Purpose::Poll => match completion {
                Completion::Http(resp) => {
                    let version = match self.remote {
                        Remote::Bucket { .. } => hub::parse_bucket_updated_at(&resp.body),
                        Remote::Repo { .. } => hub::parse_revision_info(&resp.body).map(|info| info.sha),
                    };
                    self.on_poll(version.map_err(|e| FsError::new(Errno::Io, "bad_hub_response", e)), now)
                }
                other => self.on_poll(Err(unexpected(&other)), now),
            },
            Purpose::Scan { dir } => match tree_page(completion) {
                Ok((page, next)) => self.on_scan_page(dir, page, next, now),
                Err(e) => self.on_failure(id, Flight { purpose: Purpose::Scan { dir }, ..flight }, malformed(e), now),
            },
            Purpose::Search => match tree_page(completion) {
                Ok((page, next)) => self.on_search_page(page, next, now),
                Err(e) => self.on_failure(id, Flight { purpose: Purpose::Search, ..flight }, malformed(e), now),
            },
            Purpose::Layer(step) => self.on_layer(step, Ok(completion), now),
        }
    }

    fn on_failure(&mut self, _id: EffectId, flight: Flight, failure: EffectFailure, now: Instant) {
        // A stream step is never repeated (an append may have happened): its file is uploaded
        // whole instead.
        let retriable = !matches!(flight.purpose, Purpose::Stream { .. });
        if let Some(delay) = retry::next_delay(&failure, flight.attempts, &mut self.rng).filter(|_| retriable) {
            self.flights.retry_at(flight, now.saturating_add(delay));
            return;
        }
        let id = flight.origin;
        if let Purpose::Mount(step) = flight.purpose {
            return self.on_mount_step(step, Err(failure), now);
        }
        let err = errno_for(&failure);
        match flight.purpose {
            Purpose::Mount(_) => {}
            Purpose::ListPage { dir } => self.fail_listing(dir, err),
            Purpose::Fetch { ino, range } => self.fail_fetch(id, ino, range, err),
            Purpose::Stage { ino, kind } => self.on_staged(ino, kind, Err(err), now),
            Purpose::Copy { ino, copy, step } => self.on_copy_step(ino, copy, step, Err(err)),
            Purpose::Upload { files } => self.on_upload_failed(files, err, now),
            Purpose::Stream { ino, step } => self.on_stream(ino, step, Err(err), now),
            Purpose::Commit => {
                // A 4xx about the request itself: something in the batch is refused for good.
                let refused =
                    failure.kind == FailureKind::Permanent && matches!(failure.status, Some(400 | 409 | 413 | 422));
                self.on_commit_failed(err, refused, now)
            }
            Purpose::Poll => self.on_poll(Err(err), now),
            Purpose::Scan { dir } => self.fail_scan(dir, err),
            Purpose::Search => self.fail_search(err),
            Purpose::Layer(step) => self.on_layer(step, Err(err), now),
        }
    }

    // ---- replies and logs ----------------------------------------------------------------

    pub(crate) fn reply(&mut self, id: RequestId, reply: Reply) {
        self.out.replies.push_back((id, reply));
    }

    pub(crate) fn fail(&mut self, id: RequestId, err: FsError) {
        self.reply(id, Reply::Error(err));
    }

    /// Log a line about background work; the same line again within `LOG_REPEAT_WINDOW` is
    /// counted, not repeated (said with the count the next time it comes up).
    pub(crate) fn log(&mut self, level: LogLevel, line: String) {
        let now = self.now;
        match self.recent_logs.get_mut(&line) {
            Some((at, repeats)) if now.saturating_duration_since(*at) < LOG_REPEAT_WINDOW => {
                *repeats += 1;
                return;
            }
            Some((at, repeats)) => {
                let said = if *repeats > 0 { format!("{line} (and {repeats} times more since)") } else { line.clone() };
                *at = now;
                *repeats = 0;
                self.out.logs.push_back((level, said));
                return;
            }
            None => {}
        }
        if self.recent_logs.len() >= 512 {
            self.recent_logs.retain(|_, (at, _)| now.saturating_duration_since(*at) < LOG_REPEAT_WINDOW);
        }
        self.recent_logs.insert(line.clone(), (now, 0));
        self.out.logs.push_back((level, line));
    }

    pub(crate) fn read_only_error(&self) -> FsError {
        let detail = match self.remote {
            Remote::Repo { .. } => "repo mounts are read-only",
            Remote::Bucket { .. } => "this bucket is mounted --read-only",
        };
        FsError::new(Errno::RoFs, "read_only", detail)
    }
}

/// A tree page's entries and its next-page link, from a successful listing response.
pub(crate) fn tree_page(completion: Completion) -> Result<(hub::TreePage, Option<String>), FsError> {
    let Completion::Http(resp) = completion else { return Err(unexpected(&completion)) };
    let next = resp.header("link").and_then(hub::next_link);
    hub::parse_tree_page(&resp.body)
        .map(|entries| (entries, next))
        .map_err(|e| FsError::new(Errno::Io, "bad_hub_response", format!("HTTP {}: {e}", resp.status)))
}

/// A response that did not parse, as a failure worth retrying.
fn malformed(e: FsError) -> EffectFailure {
    EffectFailure::new(FailureKind::Transient, None, format!("malformed response: {}", e.detail))
}

pub(crate) fn unexpected(c: &Completion) -> FsError {
    let kind = match c {
        Completion::Http(_) => "an HTTP response",
        Completion::Bytes(_) => "bytes",
        Completion::Done => "done",
        Completion::Uploaded(_) => "an upload",
        Completion::Listed(_) => "layer entries",
        Completion::Failed(_) => "a failure",
    };
    FsError::new(Errno::Io, "internal", format!("effect completed with {kind}"))
}

/// Map a final (no more retries) failure to what the user sees.
pub(crate) fn errno_for(f: &EffectFailure) -> FsError {
    let detail = match f.status {
        Some(s) => format!("HTTP {s}: {}", f.message),
        None => f.message.clone(),
    };
    match (f.kind, f.status) {
        (FailureKind::Local(LocalError::NoSpace), _) => FsError::new(Errno::NoSpc, "local_no_space", detail),
        (FailureKind::Local(LocalError::Io), _) => FsError::new(Errno::Io, "local_io", detail),
        (FailureKind::Local(LocalError::Refused(errno)), _) => FsError::new(errno, "overlay_layer", detail),
        (FailureKind::Auth, _) => FsError::new(Errno::Acces, "hub_denied", detail),
        (FailureKind::NotFound, _) => FsError::new(Errno::NoEnt, "hub_not_found", detail),
        (_, Some(429)) => FsError::new(Errno::Again, "hub_rate_limited", detail),
        (_, Some(413 | 507)) => FsError::new(Errno::NoSpc, "hub_no_space", detail),
        (FailureKind::Transient, _) => FsError::new(Errno::Io, "hub_unavailable", detail),
        (FailureKind::Permanent, _) => FsError::new(Errno::Io, "bad_hub_response", detail),
    }
}

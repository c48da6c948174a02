//! The filesystem state machine for a read-only repo mount at a pinned commit.
//!
//! Method classes, in the manner of quinn-proto:
//! - getters: `config`, `stats`;
//! - inputs: `handle_request`, `handle_completion`, `handle_timeout` (each takes `now`);
//! - outputs, drained in this order after every input: `poll_reply`, `poll_effect`,
//!   `poll_notify`, then `poll_timeout` for when to call `handle_timeout` next.
//!
//! It owns every policy: inode numbering, listing fetches, read-ahead, caching, retries and
//! errno mapping. It never performs IO.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use bytes::Bytes;
use hashbrown::HashMap;

use crate::config::MountConfig;
use crate::effect::{Completion, Effect, EffectFailure, EffectId, FailureKind};
use crate::error::{Errno, FsError};
use crate::hub::{self, ContentSource, TreeEntryKind};
use crate::inode::{Ino, InodeTable, NodeKind, ROOT_INO};
use crate::listing::{Listings, Need, Waiter};
use crate::prefetch::ReadPattern;
use crate::readcache::ReadCache;
use crate::request::{Attr, DirEntry, FileKind, KernelNotify, Reply, Request, RequestId, StatFs};
use crate::retry;
use crate::time::Instant;

/// Longest file name the mount accepts in a lookup.
const NAME_MAX: usize = 255;
/// Directory entries returned per readdir reply at most.
const READDIR_BATCH: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Reader {
    Handle(u64),
    /// Stateless reads (NFS) share one pattern per inode.
    Inode(Ino),
}

#[derive(Debug)]
enum Purpose {
    ListPage { dir: Ino },
    Fetch { ino: Ino, range: Range<u64> },
}

#[derive(Debug)]
struct InFlight {
    purpose: Purpose,
    effect: Effect,
    attempts: u32,
}

#[derive(Debug)]
struct ParkedRead {
    req: RequestId,
    range: Range<u64>,
}

/// Counters for benchmarks and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hub_requests: u64,
    pub fetches: u64,
    pub bytes_fetched: u64,
    pub bytes_read: u64,
    pub retries: u64,
}

pub struct Filesystem {
    cfg: MountConfig,
    inodes: InodeTable,
    listings: Listings,
    cache: ReadCache,
    patterns: HashMap<Reader, ReadPattern>,
    open_files: HashMap<u64, Ino>,
    next_fh: u64,
    next_effect: u64,
    in_flight: HashMap<EffectId, InFlight>,
    /// Byte ranges being fetched, per inode.
    fetching: HashMap<Ino, Vec<(Range<u64>, EffectId)>>,
    parked_reads: HashMap<Ino, Vec<ParkedRead>>,
    /// Effects waiting for their retry time.
    retries: BTreeMap<(Instant, EffectId), ()>,
    replies: VecDeque<(RequestId, Reply)>,
    effects: VecDeque<(EffectId, Effect)>,
    notifies: VecDeque<KernelNotify>,
    stats: Stats,
}

impl Filesystem {
    pub fn new(cfg: MountConfig) -> Self {
        let cache = ReadCache::new(cfg.policy.cache_bytes);
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
            replies: VecDeque::new(),
            effects: VecDeque::new(),
            notifies: VecDeque::new(),
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

    // ---- inputs --------------------------------------------------------------------------

    pub fn handle_request(&mut self, id: RequestId, req: Request, _now: Instant) {
        match req {
            Request::Lookup { parent, name } => self.lookup(id, parent, name),
            Request::Forget { ino, nlookup } => self.inodes.forget(ino, nlookup),
            Request::GetAttr { ino } => match self.attr(ino) {
                Some(attr) => self.reply(id, Reply::Attr { attr, ttl: self.cfg.metadata_ttl }),
                None => self.fail(id, FsError::not_found()),
            },
            Request::ReadDir { ino, offset, plus } => self.readdir(id, ino, offset, plus),
            Request::Open { ino, write } => self.open(id, ino, write),
            Request::Read { ino, fh, offset, size } => self.read(id, ino, fh, offset, size),
            Request::Release { fh } => {
                self.open_files.remove(&fh);
                self.patterns.remove(&Reader::Handle(fh));
                self.reply(id, Reply::Empty);
            }
            // Nothing is ever written through a repo mount, so there is nothing to make durable.
            Request::Flush { .. } => self.reply(id, Reply::Empty),
            Request::Access { ino, write } => match self.inodes.get(ino) {
                None => self.fail(id, FsError::not_found()),
                Some(_) if write => self.fail(id, FsError::read_only()),
                Some(_) => self.reply(id, Reply::Empty),
            },
            Request::ReadLink { .. } => self.fail(id, FsError::new(Errno::Inval, "not_a_symlink", "")),
            Request::StatFs => self.reply(
                id,
                Reply::StatFs(StatFs {
                    blocks: 0,
                    files: self.inodes.len() as u64,
                    block_size: 4096,
                    name_max: NAME_MAX as u32,
                }),
            ),
            Request::Modify { .. } => self.fail(id, FsError::read_only()),
        }
    }

    pub fn handle_completion(&mut self, id: EffectId, completion: Completion, now: Instant) {
        let Some(flight) = self.in_flight.remove(&id) else {
            return;
        };
        let result = match (&flight.purpose, completion) {
            (Purpose::ListPage { .. }, Completion::Http(resp)) if (200..300).contains(&resp.status) => {
                let next = resp.header("link").and_then(hub::next_link);
                hub::parse_tree_page(&resp.body)
                    .map(|entries| (entries, next))
                    .map_err(|e| EffectFailure::new(FailureKind::Permanent, Some(resp.status), e))
                    .map(CompletionData::Page)
            }
            (_, Completion::Http(resp)) => Err(hub::failure_from_response(&resp)),
            (Purpose::Fetch { range, .. }, Completion::Bytes(data)) => {
                let len: usize = data.iter().map(Bytes::len).sum();
                if len as u64 == range.end - range.start {
                    Ok(CompletionData::Bytes(data))
                } else {
                    Err(EffectFailure::new(
                        FailureKind::Transient,
                        None,
                        format!("short fetch: wanted {} bytes, got {len}", range.end - range.start),
                    ))
                }
            }
            (Purpose::ListPage { .. }, Completion::Bytes(_)) => {
                Err(EffectFailure::new(FailureKind::Permanent, None, "listing completed with raw bytes"))
            }
            (_, Completion::Failed(f)) => Err(f),
        };
        match result {
            Ok(CompletionData::Page((entries, next))) => {
                let Purpose::ListPage { dir } = flight.purpose else { unreachable!("matched above") };
                self.on_page(dir, entries, next);
            }
            Ok(CompletionData::Bytes(data)) => {
                let Purpose::Fetch { ino, range } = flight.purpose else { unreachable!("matched above") };
                self.on_fetched(id, ino, range, data);
            }
            Err(failure) => self.on_failure(id, flight, failure, now),
        }
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

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.retries.keys().next().map(|(at, _)| *at)
    }

    // ---- requests ------------------------------------------------------------------------

    fn lookup(&mut self, id: RequestId, parent: Ino, name: String) {
        if let Err(e) = self.check_dir(parent) {
            return self.fail(id, e);
        }
        if name.len() > NAME_MAX {
            return self.fail(id, FsError::new(Errno::NameTooLong, "name_too_long", ""));
        }
        match self.listings.need(parent, Waiter::Lookup { req: id, name: name.clone() }) {
            Need::Ready(_) => self.answer_lookup(id, parent, &name),
            Need::StartFetch => self.start_listing(parent),
            Need::Wait => {}
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

    fn readdir(&mut self, id: RequestId, ino: Ino, offset: u64, plus: bool) {
        if let Err(e) = self.check_dir(ino) {
            return self.fail(id, e);
        }
        match self.listings.need(ino, Waiter::ReadDir { req: id, offset, plus }) {
            Need::Ready(_) => self.answer_readdir(id, ino, offset, plus),
            Need::StartFetch => self.start_listing(ino),
            Need::Wait => {}
        }
    }

    fn answer_readdir(&mut self, id: RequestId, dir: Ino, offset: u64, plus: bool) {
        let parent = self.inodes.get(dir).map_or(ROOT_INO, |n| n.parent);
        let children = self.listings.children(dir).unwrap_or_default();
        let mut entries = Vec::new();
        // Index 0 is ".", 1 is "..", 2.. the children; an entry's next_offset is its index + 1.
        let total = children.len() as u64 + 2;
        let mut idx = offset;
        while idx < total && entries.len() < READDIR_BATCH {
            let (ino, name) = match idx {
                0 => (dir, ".".to_string()),
                1 => (parent, "..".to_string()),
                _ => {
                    let ino = children[(idx - 2) as usize];
                    (ino, self.inodes.get(ino).map(|n| n.name.clone()).unwrap_or_default())
                }
            };
            let kind = if matches!(self.inodes.get(ino).map(|n| &n.kind), Some(NodeKind::Dir)) {
                FileKind::Directory
            } else {
                FileKind::RegularFile
            };
            let attr = if plus && idx >= 2 { self.attr(ino) } else { None };
            entries.push(DirEntry { ino, next_offset: idx + 1, kind, name, attr });
            idx += 1;
        }
        if plus {
            for e in entries.iter().filter(|e| e.attr.is_some()) {
                self.inodes.add_lookup(e.ino);
            }
        }
        self.reply(id, Reply::Dir { entries, ttl: self.cfg.metadata_ttl });
    }

    fn open(&mut self, id: RequestId, ino: Ino, write: bool) {
        match self.inodes.get(ino).map(|n| &n.kind) {
            None => self.fail(id, FsError::not_found()),
            Some(NodeKind::Dir) => self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", "")),
            Some(NodeKind::File { .. }) if write => self.fail(id, FsError::read_only()),
            Some(NodeKind::File { .. }) => {
                let fh = self.next_fh;
                self.next_fh += 1;
                self.open_files.insert(fh, ino);
                // A pinned commit never changes: the kernel may keep its page cache across opens.
                self.reply(id, Reply::Open { fh, keep_cache: true });
            }
        }
    }

    fn read(&mut self, id: RequestId, ino: Ino, fh: Option<u64>, offset: u64, size: u32) {
        let file_size = match self.inodes.get(ino).map(|n| &n.kind) {
            None => return self.fail(id, FsError::not_found()),
            Some(NodeKind::Dir) => return self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", "")),
            Some(NodeKind::File { size, .. }) => *size,
        };
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

    // ---- listings ------------------------------------------------------------------------

    fn start_listing(&mut self, dir: Ino) {
        let path = self.inodes.get(dir).map(|n| n.path.clone()).unwrap_or_default();
        let url = self.cfg.urls.tree(&self.cfg.repo, &self.cfg.commit, &path, self.cfg.policy.tree_page_limit);
        self.start_effect(Purpose::ListPage { dir }, Effect::HubGet { url });
    }

    fn on_page(&mut self, dir: Ino, entries: Vec<hub::TreeEntry>, next: Option<String>) {
        let dir_path = self.inodes.get(dir).map(|n| n.path.clone()).unwrap_or_default();
        let mut page = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(name) = child_name(&dir_path, &entry.path) else {
                continue;
            };
            let kind = match entry.kind {
                TreeEntryKind::Directory => NodeKind::Dir,
                TreeEntryKind::File { size, source } => NodeKind::File { size, source },
            };
            page.push(self.inodes.insert_child(dir, name, entry.path.clone(), kind));
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
                for waiter in self.listings.finish(dir) {
                    match waiter {
                        Waiter::Lookup { req, name } => self.answer_lookup(req, dir, &name),
                        Waiter::ReadDir { req, offset, plus } => self.answer_readdir(req, dir, offset, plus),
                    }
                }
            }
        }
    }

    fn fail_listing(&mut self, dir: Ino, err: FsError) {
        for waiter in self.listings.fail(dir) {
            let req = match waiter {
                Waiter::Lookup { req, .. } | Waiter::ReadDir { req, .. } => req,
            };
            self.fail(req, err.clone());
        }
    }

    // ---- reads ---------------------------------------------------------------------------

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
                let effect = match &source {
                    ContentSource::Xet { hash } => {
                        Effect::CasRange { xet_hash: hash.clone(), file_size: size, range: start..end }
                    }
                    ContentSource::Regular { .. } => {
                        let path = self.inodes.get(ino).map(|n| n.path.clone()).unwrap_or_default();
                        let url = self.cfg.urls.resolve(&self.cfg.repo, &self.cfg.commit, &path);
                        Effect::HubRange { url, range: start..end }
                    }
                };
                let id = self.start_effect(Purpose::Fetch { ino, range: start..end }, effect);
                self.fetching.entry(ino).or_default().push((start..end, id));
                self.stats.fetches += 1;
                start = end;
            }
        }
    }

    fn on_fetched(&mut self, id: EffectId, ino: Ino, range: Range<u64>, pieces: Vec<Bytes>) {
        self.forget_fetch(ino, id);
        let mut offset = range.start;
        for piece in pieces {
            let len = piece.len() as u64;
            self.cache.insert(ino, offset, piece);
            offset += len;
        }
        self.stats.bytes_fetched += offset - range.start;
        self.serve_parked(ino);
        self.cache.evict();
    }

    /// Answer parked reads now covered; re-fetch what an eviction or failure left uncovered.
    fn serve_parked(&mut self, ino: Ino) {
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

    fn forget_fetch(&mut self, ino: Ino, id: EffectId) {
        if let Some(v) = self.fetching.get_mut(&ino) {
            v.retain(|(_, e)| *e != id);
            if v.is_empty() {
                self.fetching.remove(&ino);
            }
        }
    }

    // ---- effects and failures ------------------------------------------------------------

    fn start_effect(&mut self, purpose: Purpose, effect: Effect) -> EffectId {
        let id = EffectId(self.next_effect);
        self.next_effect += 1;
        if matches!(effect, Effect::HubGet { .. } | Effect::HubRange { .. }) {
            self.stats.hub_requests += 1;
        }
        self.effects.push_back((id, effect.clone()));
        self.in_flight.insert(id, InFlight { purpose, effect, attempts: 1 });
        id
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
            Purpose::Fetch { ino, range } => {
                // The file is in the listing, so missing bytes are an I/O error, not ENOENT.
                let err = if err.errno == Errno::NoEnt {
                    FsError::new(Errno::Io, "content_missing", err.detail)
                } else {
                    err
                };
                self.forget_fetch(ino, id);
                let parked = self.parked_reads.remove(&ino).unwrap_or_default();
                let (failed, kept): (Vec<_>, Vec<_>) =
                    parked.into_iter().partition(|p| p.range.start < range.end && range.start < p.range.end);
                for p in failed {
                    self.fail(p.req, err.clone());
                }
                if !kept.is_empty() {
                    self.parked_reads.insert(ino, kept);
                }
            }
        }
    }

    // ---- helpers -------------------------------------------------------------------------

    fn check_dir(&self, ino: Ino) -> Result<(), FsError> {
        match self.inodes.get(ino).map(|n| &n.kind) {
            None => Err(FsError::not_found()),
            Some(NodeKind::File { .. }) => Err(FsError::new(Errno::NotDir, "not_a_directory", "")),
            Some(NodeKind::Dir) => Ok(()),
        }
    }

    fn attr(&self, ino: Ino) -> Option<Attr> {
        let node = self.inodes.get(ino)?;
        let (kind, size, perm, nlink) = match &node.kind {
            NodeKind::Dir => (FileKind::Directory, 0, 0o555, 2),
            NodeKind::File { size, .. } => (FileKind::RegularFile, *size, 0o444, 1),
        };
        Some(Attr {
            ino,
            size,
            kind,
            perm,
            nlink,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            mtime_secs: self.cfg.mtime_secs,
        })
    }

    fn reply(&mut self, id: RequestId, reply: Reply) {
        self.replies.push_back((id, reply));
    }

    fn reply_data(&mut self, id: RequestId, data: Bytes) {
        self.stats.bytes_read += data.len() as u64;
        self.reply(id, Reply::Data(data));
    }

    fn fail(&mut self, id: RequestId, err: FsError) {
        self.reply(id, Reply::Error(err));
    }
}

enum CompletionData {
    Page((Vec<hub::TreeEntry>, Option<String>)),
    Bytes(Vec<Bytes>),
}

/// The name of `path` inside directory `dir_path`, if it is a direct child.
fn child_name<'a>(dir_path: &str, path: &'a str) -> Option<&'a str> {
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
fn errno_for(f: &EffectFailure) -> FsError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_ranges() {
        assert_eq!(subtract(0..10, &[2..4, 6..7]), vec![0..2, 4..6, 7..10]);
        assert_eq!(subtract(0..10, std::slice::from_ref(&(0..10))), Vec::<Range<u64>>::new());
        assert_eq!(subtract(5..10, &[0..6, 9..20]), vec![6..9]);
    }

    fn fs() -> Filesystem {
        Filesystem::new(MountConfig {
            urls: hub::HubUrls::new("http://hub"),
            repo: hub::RepoRef { kind: hub::RepoKind::Model, id: "a/b".into() },
            commit: "0".repeat(40),
            subfolder: String::new(),
            uid: 7,
            gid: 8,
            metadata_ttl: std::time::Duration::from_secs(1),
            mtime_secs: 0,
            policy: crate::config::ReadPolicy::default(),
        })
    }

    fn answer(fs: &mut Filesystem, req: Request) -> Reply {
        fs.handle_request(RequestId(1), req, Instant::ZERO);
        let (id, reply) = fs.poll_reply().expect("answered without any IO");
        assert_eq!(id, RequestId(1));
        reply
    }

    fn errno(reply: Reply) -> Errno {
        match reply {
            Reply::Error(e) => e.errno,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn writes_are_read_only_and_local_answers_need_no_io() {
        let mut fs = fs();
        assert_eq!(errno(answer(&mut fs, Request::Modify { op: "mkdir" })), Errno::RoFs);
        assert_eq!(errno(answer(&mut fs, Request::Access { ino: ROOT_INO, write: true })), Errno::RoFs);
        assert_eq!(answer(&mut fs, Request::Access { ino: ROOT_INO, write: false }), Reply::Empty);
        assert_eq!(answer(&mut fs, Request::Flush { ino: ROOT_INO, fh: 1 }), Reply::Empty);
        assert_eq!(errno(answer(&mut fs, Request::GetAttr { ino: 99 })), Errno::NoEnt);
        assert_eq!(errno(answer(&mut fs, Request::Open { ino: ROOT_INO, write: false })), Errno::IsDir);
        assert_eq!(errno(answer(&mut fs, Request::Read { ino: ROOT_INO, fh: None, offset: 0, size: 1 })), Errno::IsDir);
        match answer(&mut fs, Request::GetAttr { ino: ROOT_INO }) {
            Reply::Attr { attr, .. } => {
                assert_eq!((attr.kind, attr.perm, attr.uid, attr.gid), (FileKind::Directory, 0o555, 7, 8))
            }
            other => panic!("{other:?}"),
        }
        assert!(fs.poll_effect().is_none(), "none of these needs the Hub");
    }

    #[test]
    fn lookup_waits_for_the_listing_then_answers() {
        let mut fs = fs();
        fs.handle_request(RequestId(1), Request::Lookup { parent: ROOT_INO, name: "f".into() }, Instant::ZERO);
        fs.handle_request(RequestId(2), Request::Lookup { parent: ROOT_INO, name: "nope".into() }, Instant::ZERO);
        assert!(fs.poll_reply().is_none());
        let (eid, effect) = fs.poll_effect().expect("one listing fetch");
        assert_eq!(
            effect,
            Effect::HubGet { url: format!("http://hub/api/models/a/b/tree/{}?limit=1000", "0".repeat(40)) }
        );
        assert!(fs.poll_effect().is_none(), "the second lookup shares the first fetch");
        let body = br#"[{"type":"file","oid":"x","size":3,"path":"f"}]"#;
        let page = crate::effect::HttpResponse { status: 200, headers: vec![], body: Bytes::from_static(body) };
        fs.handle_completion(eid, Completion::Http(page), Instant::ZERO);
        assert!(matches!(fs.poll_reply(), Some((RequestId(1), Reply::Entry { attr, .. })) if attr.size == 3));
        assert!(matches!(fs.poll_reply(), Some((RequestId(2), Reply::Error(e))) if e.errno == Errno::NoEnt));
    }

    #[test]
    fn child_names() {
        assert_eq!(child_name("", "a.txt"), Some("a.txt"));
        assert_eq!(child_name("d", "d/a"), Some("a"));
        assert_eq!(child_name("d", "d/a/b"), None);
        assert_eq!(child_name("d", "dx/a"), None);
        assert_eq!(child_name("", ".."), None);
    }
}

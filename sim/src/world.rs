//! The simulated outside world: a Hub holding one repo (with commits and branches) and one
//! bucket, a CAS keyed by content hash, and the local disk where staging files live. It
//! executes every effect core can ask for, answering from its current state; remote changes
//! (a new commit, a Python client's bucket write) are methods tests call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hfm_core::hub::{HubUrls, RepoRef, EMPTY_FILE_HASH};
use hfm_core::{Completion, Effect, EffectFailure, FailureKind, StageEdit, StageOp, StreamOp, UploadSource};

/// The simulated Hub's endpoint.
pub const ENDPOINT: &str = "http://hub.sim";

/// A 64-hex hash of `data` (the empty file has the all-zero hash, as in xet).
pub fn content_hash(data: &[u8]) -> String {
    if data.is_empty() {
        return EMPTY_FILE_HASH.to_string();
    }
    // Eight bytes at a time: exact (every byte counts) and fast enough for large files.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ data.len() as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        h = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    for b in words.remainder() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let mut out = String::with_capacity(64);
    for i in 0..4u64 {
        let z = h ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        out.push_str(&format!("{:016x}", z.wrapping_mul(0xbf58_476d_1ce4_e5b9)));
    }
    out
}

/// A repo: its commits (sha -> files) and branches.
pub struct SimRepo {
    pub repo: RepoRef,
    /// What mounts may call it (an alias resolves to `repo.id`).
    pub alias: Option<String>,
    pub commits: BTreeMap<String, BTreeMap<String, Bytes>>,
    pub branches: BTreeMap<String, String>,
    /// Files at most this large are regular git files (read through resolve); larger are xet.
    pub xet_threshold: usize,
    pub last_modified: String,
}

impl SimRepo {
    pub fn new(repo: RepoRef, files: BTreeMap<String, Bytes>) -> Self {
        let mut r = SimRepo {
            repo,
            alias: None,
            commits: BTreeMap::new(),
            branches: BTreeMap::new(),
            xet_threshold: 50_000,
            last_modified: "2026-01-02T03:04:05.000Z".into(),
        };
        r.commit("main", files);
        r
    }

    /// A new commit on `branch` holding `files`; returns its sha.
    pub fn commit(&mut self, branch: &str, files: BTreeMap<String, Bytes>) -> String {
        let n = self.commits.len() as u64 + 1;
        let sha = format!("{:040x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.commits.insert(sha.clone(), files);
        self.branches.insert(branch.to_string(), sha.clone());
        sha
    }

    /// The commit `rev` (a branch or a sha) names.
    pub fn resolve(&self, rev: &str) -> Option<&str> {
        if let Some(sha) = self.branches.get(rev) {
            return Some(sha);
        }
        self.commits.get_key_value(rev).map(|(k, _)| k.as_str())
    }
}

/// A bucket: path -> (xet hash, mtime in ms), and a version that moves on every change.
#[derive(Default)]
pub struct SimBucket {
    pub id: String,
    pub files: BTreeMap<String, (String, i64)>,
    pub updates: u64,
    /// Paths the Hub refuses for good in a batch (HTTP 400).
    pub refused: Vec<String>,
}

impl SimBucket {
    pub fn updated_at(&self) -> String {
        let secs = self.updates / 1000;
        format!("2026-01-01T{:02}:{:02}:{:02}.{:03}Z", secs / 3600 % 24, secs / 60 % 60, secs % 60, self.updates % 1000)
    }
}

#[derive(Default)]
pub struct World {
    pub repo: Option<SimRepo>,
    pub bucket: Option<SimBucket>,
    pub cas: BTreeMap<String, Bytes>,
    pub disk: BTreeMap<String, Vec<u8>>,
    /// Upload streams by id: the bytes appended so far.
    pub streams: BTreeMap<u64, Vec<u8>>,
    /// The overlay's local layer (`--overlay`): path -> content, `None` for a directory.
    pub layer: crate::layer::Tree,
    /// Hub calls answered (not CAS or disk).
    pub hub_calls: u64,
    /// Listings carry hostile entries, and every 11th arrives cut short.
    pub hostile: bool,
    pub(crate) listings_served: u64,
}

impl World {
    pub fn urls() -> HubUrls {
        HubUrls::new(ENDPOINT)
    }

    pub fn with_repo(repo: SimRepo) -> Self {
        let mut w = World::default();
        for files in repo.commits.values() {
            for data in files.values() {
                w.cas.insert(content_hash(data), data.clone());
            }
        }
        w.repo = Some(repo);
        w
    }

    pub fn with_bucket(id: &str) -> Self {
        World { bucket: Some(SimBucket { id: id.to_string(), ..SimBucket::default() }), ..World::default() }
    }

    pub fn content(&self, hash: &str) -> Option<Bytes> {
        if hash == EMPTY_FILE_HASH {
            return Some(Bytes::new());
        }
        self.cas.get(hash).cloned()
    }

    /// A remote client puts `data` at `path` of the bucket (upload + commit in one).
    pub fn remote_put(&mut self, path: &str, data: &[u8]) {
        let hash = content_hash(data);
        self.cas.insert(hash.clone(), Bytes::copy_from_slice(data));
        if let Some(b) = self.bucket.as_mut() {
            b.files.insert(path.to_string(), (hash, 1_700_000_000_000));
            b.updates += 1;
        }
    }

    pub fn remote_delete(&mut self, path: &str) {
        if let Some(b) = self.bucket.as_mut() {
            if b.files.remove(path).is_some() {
                b.updates += 1;
            }
        }
    }

    /// The bucket's files with their content.
    pub fn bucket_contents(&self) -> BTreeMap<String, Vec<u8>> {
        let Some(b) = &self.bucket else { return BTreeMap::new() };
        b.files.iter().map(|(p, (h, _))| (p.clone(), self.content(h).map(|c| c.to_vec()).unwrap_or_default())).collect()
    }

    pub fn execute(&mut self, effect: &Effect) -> Completion {
        match effect {
            Effect::HubGet { url } => {
                self.hub_calls += 1;
                self.get(url)
            }
            Effect::HubPost { url, body, .. } => {
                self.hub_calls += 1;
                self.post(url, body)
            }
            Effect::HubRange { url, range } => {
                self.hub_calls += 1;
                match self.resolve_bytes(url) {
                    Some(c) if range.end as usize <= c.len() => {
                        Completion::Bytes(vec![c.slice(range.start as usize..range.end as usize)])
                    }
                    _ => failed(FailureKind::NotFound, "no such file or range"),
                }
            }
            Effect::CasRange { xet_hash, file_size, range, .. } => match self.content(xet_hash) {
                Some(c) if c.len() as u64 == *file_size && range.end <= *file_size => {
                    // CAS hands ranges back in pieces; split at a few points to exercise joining.
                    let (a, b) = (range.start as usize, range.end as usize);
                    let cut = a + (b - a) / 3;
                    Completion::Bytes(vec![c.slice(a..cut), c.slice(cut..cut), c.slice(cut..b)])
                }
                _ => failed(FailureKind::NotFound, "unknown xet hash or range"),
            },
            Effect::Layer(op) => crate::layer::execute(&mut self.layer, op),
            Effect::Upload { sources, .. } => {
                let mut out = Vec::new();
                for source in sources {
                    let data: Vec<u8> = match source {
                        UploadSource::Memory(chunks) => chunks.iter().flat_map(|c| c.iter().copied()).collect(),
                        // A staging file removed meanwhile (its file was deleted): the upload fails.
                        UploadSource::File(p) => match self.disk.get(p) {
                            Some(d) => d.clone(),
                            None => return failed(FailureKind::Permanent, "no such staging file"),
                        },
                    };
                    let hash = content_hash(&data);
                    out.push((hash.clone(), data.len() as u64));
                    self.cas.insert(hash, Bytes::from(data));
                }
                Completion::Uploaded(out)
            }
            Effect::Stage(op) => self.stage(op),
            Effect::Stream(StreamOp::Append { stream, data, .. }) => {
                let buf = self.streams.entry(*stream).or_default();
                data.iter().for_each(|d| buf.extend_from_slice(d));
                Completion::Done
            }
            Effect::Stream(StreamOp::Finish { stream }) => match self.streams.remove(stream) {
                Some(data) => {
                    let hash = content_hash(&data);
                    let size = data.len() as u64;
                    self.cas.insert(hash.clone(), Bytes::from(data));
                    Completion::Uploaded(vec![(hash, size)])
                }
                None => failed(FailureKind::Permanent, "no such stream"),
            },
            Effect::Stream(StreamOp::Abort { stream }) => {
                self.streams.remove(stream);
                Completion::Done
            }
        }
    }

    fn stage(&mut self, op: &StageOp) -> Completion {
        match op {
            StageOp::Create { path } => {
                self.disk.insert(path.clone(), Vec::new());
            }
            StageOp::Fill { path, xet_hash, .. } => match self.content(xet_hash) {
                Some(data) => {
                    self.disk.insert(path.clone(), data.to_vec());
                }
                None => return failed(FailureKind::NotFound, "unknown xet hash"),
            },
            StageOp::Edit { path, edits } => {
                let f = self.disk.entry(path.clone()).or_default();
                for edit in edits {
                    match edit {
                        StageEdit::Write { offset, data } => {
                            let at = *offset as usize;
                            if f.len() < at + data.len() {
                                f.resize(at + data.len(), 0);
                            }
                            f[at..at + data.len()].copy_from_slice(data);
                        }
                        StageEdit::Truncate { size } => f.resize(*size as usize, 0),
                    }
                }
            }
            StageOp::Read { path, range } => {
                let Some(f) = self.disk.get(path) else { return failed(FailureKind::Permanent, "no such file") };
                let end = (range.end as usize).min(f.len());
                let start = (range.start as usize).min(end);
                return Completion::Bytes(vec![Bytes::copy_from_slice(&f[start..end])]);
            }
            StageOp::Remove { path } => {
                self.disk.remove(path);
            }
            StageOp::Publish { from, to } => {
                let Some(f) = self.disk.remove(from) else { return failed(FailureKind::Permanent, "no such file") };
                self.disk.insert(to.clone(), f);
            }
            StageOp::Journal { record, body, remove } => {
                match body {
                    Some(body) => self.disk.insert(record.clone(), body.to_vec()),
                    None => self.disk.remove(record),
                };
                for path in remove {
                    self.disk.remove(path);
                }
            }
        }
        Completion::Done
    }
}

pub(crate) fn failed(kind: FailureKind, message: &str) -> Completion {
    Completion::Failed(EffectFailure::new(kind, None, message))
}

/// The world behind the driver's executor trait (what `hfm-effects` is for the real mount).
#[derive(Clone)]
pub struct SimExecutor(pub Arc<Mutex<World>>);

impl SimExecutor {
    pub fn new(world: World) -> Self {
        SimExecutor(Arc::new(Mutex::new(world)))
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl hfm_driver::Executor for SimExecutor {
    fn execute(&self, effect: Effect) -> Completion {
        self.world().execute(&effect)
    }
}

//! Deterministic simulation of a writable bucket mount: a simulated kernel creates, writes,
//! overwrites, renames, links, unlinks, reads and fsyncs files while a simulated Hub, CAS and
//! disk complete uploads, staging IO and commits in random order, with injected transient
//! failures and random jumps of the clock (so debounces and retries fire). Checked against a
//! reference model: every read returns the newest content, every fsync'd file is in the bucket
//! with that content when fsync returns, and after the unmount drain the bucket equals the model.
//! A failing seed reproduces exactly: `SIM_SEED=<n> cargo test --test bucket_simulation`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

mod common;

use bytes::Bytes;
use common::Rng;
use hfm_core::config::{ReadPolicy, Source, WriteMode, WritePolicy};
use hfm_core::hub::{percent_decode, HubUrls, EMPTY_FILE_HASH};
use hfm_core::request::{Owner, SetAttr};
use hfm_core::{
    Completion, Effect, EffectFailure, EffectId, FailureKind, Filesystem, HttpResponse, Instant, MountConfig, Reply,
    Request, RequestId, StageEdit, StageOp, StreamOp, UploadSource, ROOT_INO,
};

/// The Hub, CAS and local disk as plain maps.
#[derive(Default)]
struct World {
    /// Upload streams by id: the bytes appended so far.
    streams: HashMap<u64, Vec<u8>>,
    bucket: BTreeMap<String, String>,
    cas: HashMap<String, Bytes>,
    disk: HashMap<String, Vec<u8>>,
    updates: u64,
}

fn content_hash(data: &[u8]) -> String {
    if data.is_empty() {
        return EMPTY_FILE_HASH.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}").repeat(4)
}

fn http(status: u16, body: String) -> Completion {
    Completion::Http(HttpResponse { status, headers: vec![], body: Bytes::from(body) })
}

impl World {
    fn content(&self, hash: &str) -> Bytes {
        if hash == EMPTY_FILE_HASH {
            return Bytes::new();
        }
        self.cas[hash].clone()
    }

    fn execute(&mut self, effect: &Effect) -> Completion {
        match effect {
            Effect::HubGet { url } => {
                let rest = url.strip_prefix("http://hub/api/buckets/sim/b").expect("bucket URL");
                if rest.is_empty() {
                    return http(
                        200,
                        format!(
                            "{{\"updatedAt\":\"2026-01-01T00:00:{:02}.{:03}Z\"}}",
                            self.updates / 1000 % 60,
                            self.updates % 1000
                        ),
                    );
                }
                let (path, query) = rest.strip_prefix("/tree").expect("tree URL").split_once('?').expect("query");
                let prefix = percent_decode(path.trim_start_matches('/')).expect("encoded path");
                let recursive = query.contains("recursive=true");
                http(200, self.list(&prefix, recursive))
            }
            Effect::HubPost { body, .. } => {
                for line in std::str::from_utf8(body).expect("utf8").lines() {
                    let v: serde_json::Value = serde_json::from_str(line).expect("json line");
                    let path = v["path"].as_str().expect("path").to_string();
                    match v["type"].as_str() {
                        Some("addFile") => {
                            let hash = v["xetHash"].as_str().expect("hash").to_string();
                            assert!(
                                hash == EMPTY_FILE_HASH || self.cas.contains_key(&hash),
                                "commit of an unknown hash"
                            );
                            self.bucket.insert(path, hash);
                        }
                        Some("deleteFile") => {
                            self.bucket.remove(&path);
                        }
                        other => panic!("unexpected batch op {other:?}"),
                    }
                }
                self.updates += 1;
                http(200, "{}".into())
            }
            Effect::Upload(sources) => {
                let mut out = Vec::new();
                for source in sources {
                    let data: Vec<u8> = match source {
                        UploadSource::Memory(chunks) => chunks.iter().flat_map(|c| c.iter().copied()).collect(),
                        // A staging file removed meanwhile (its file was deleted): the upload fails.
                        UploadSource::File(p) => match self.disk.get(p) {
                            Some(d) => d.clone(),
                            None => {
                                return Completion::Failed(EffectFailure::new(
                                    FailureKind::Permanent,
                                    None,
                                    "no such file",
                                ))
                            }
                        },
                    };
                    let hash = content_hash(&data);
                    out.push((hash.clone(), data.len() as u64));
                    self.cas.insert(hash, Bytes::from(data));
                }
                Completion::Uploaded(out)
            }
            Effect::CasRange { xet_hash, range, .. } => {
                Completion::Bytes(vec![self.content(xet_hash).slice(range.start as usize..range.end as usize)])
            }
            Effect::Stage(op) => self.stage(op),
            Effect::Stream(StreamOp::Append { stream, data }) => {
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
                None => Completion::Failed(EffectFailure::new(FailureKind::Permanent, None, "no such stream")),
            },
            Effect::Stream(StreamOp::Abort { stream }) => {
                self.streams.remove(stream);
                Completion::Done
            }
            Effect::HubRange { .. } => panic!("buckets have no git files"),
        }
    }

    fn list(&self, prefix: &str, recursive: bool) -> String {
        let mut out = Vec::new();
        let mut dirs = std::collections::BTreeSet::new();
        for (path, hash) in self.bucket.range(prefix.to_string()..) {
            let Some(rest) = path.strip_prefix(prefix) else { break };
            let rest = rest.strip_prefix('/').unwrap_or(rest);
            let size = self.content(hash).len();
            match rest.find('/') {
                Some(i) if !recursive => {
                    let dir = &path[..path.len() - rest.len() + i];
                    if dirs.insert(dir.to_string()) {
                        out.push(serde_json::json!({"type": "directory", "path": dir}));
                    }
                }
                _ => out.push(serde_json::json!({"type": "file", "path": path, "size": size, "xetHash": hash})),
            }
        }
        serde_json::Value::Array(out).to_string()
    }

    fn stage(&mut self, op: &StageOp) -> Completion {
        match op {
            StageOp::Create { path } => {
                self.disk.insert(path.clone(), Vec::new());
            }
            StageOp::Fill { path, xet_hash, .. } => {
                let data = self.content(xet_hash).to_vec();
                self.disk.insert(path.clone(), data);
            }
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
                let Some(f) = self.disk.get(path) else {
                    return Completion::Failed(EffectFailure::new(FailureKind::Permanent, None, "no such file"));
                };
                let end = (range.end as usize).min(f.len());
                let start = (range.start as usize).min(end);
                return Completion::Bytes(vec![Bytes::copy_from_slice(&f[start..end])]);
            }
            StageOp::Remove { path } => {
                self.disk.remove(path);
            }
        }
        Completion::Done
    }
}

struct Sim {
    rng: Rng,
    fs: Filesystem,
    world: World,
    now: Instant,
    effects: Vec<(EffectId, Effect)>,
    /// Hub reads are answered from the state at the time they were sent (their response
    /// travels back later, maybe after a commit changed the bucket).
    answered: HashMap<EffectId, Completion>,
    failures: HashMap<EffectId, u32>,
    next_req: u64,
    seed: u64,
}

impl Sim {
    /// Let the world complete one effect (random order, sometimes a transient failure) and move
    /// the clock; true if anything happened.
    fn tick(&mut self, faults: bool) -> bool {
        while let Some((id, effect)) = self.fs.poll_effect() {
            if matches!(effect, Effect::HubGet { .. }) {
                self.answered.insert(id, self.world.execute(&effect));
            }
            self.effects.push((id, effect));
        }
        let mut acted = false;
        if !self.effects.is_empty() {
            let (id, effect) = self.effects.swap_remove(self.rng.below(self.effects.len() as u64) as usize);
            let fails = self.failures.entry(id).or_default();
            let remote = matches!(effect, Effect::Upload(_) | Effect::HubPost { .. } | Effect::HubGet { .. });
            let stream_step = matches!(effect, Effect::Stream(StreamOp::Append { .. } | StreamOp::Finish { .. }));
            let completion = if faults && stream_step && self.rng.chance(5) {
                // Stream failures are final; the file must still arrive (uploaded whole).
                if let Effect::Stream(StreamOp::Append { stream, .. } | StreamOp::Finish { stream }) = &effect {
                    self.world.streams.remove(stream);
                }
                Completion::Failed(EffectFailure::new(FailureKind::Permanent, None, "injected stream failure"))
            } else if faults && remote && *fails < 2 && self.rng.chance(20) {
                *fails += 1;
                Completion::Failed(EffectFailure::from_status(
                    [500u16, 503, 429][self.rng.below(3) as usize],
                    "injected",
                ))
            } else if let Some(snapshot) = self.answered.remove(&id) {
                snapshot
            } else {
                self.world.execute(&effect)
            };
            self.answered.remove(&id);
            self.fs.handle_completion(id, completion, self.now);
            acted = true;
        }
        self.now = self.now.saturating_add(Duration::from_millis(self.rng.below(400)));
        if self.fs.poll_timeout().is_some_and(|t| t <= self.now) {
            self.fs.handle_timeout(self.now);
            acted = true;
        }
        acted
    }

    /// Send one request and run the world until it is answered.
    fn call(&mut self, req: Request) -> Reply {
        self.next_req += 1;
        let id = RequestId(self.next_req);
        self.fs.handle_request(id, req.clone(), self.now);
        for _ in 0..100_000 {
            if let Some((got, reply)) = self.fs.poll_reply() {
                assert_eq!(got, id, "seed {}: reply to an earlier request", self.seed);
                return reply;
            }
            if !self.tick(true) {
                // Nothing to do: jump to the next timer.
                if let Some(t) = self.fs.poll_timeout() {
                    self.now = t;
                    self.fs.handle_timeout(t);
                }
            }
        }
        panic!("seed {}: {req:?} never answered", self.seed);
    }
}

fn ok(seed: u64, what: &str, reply: &Reply) {
    assert!(!matches!(reply, Reply::Error(_)), "seed {seed}: {what} failed: {reply:?}");
}

fn run(seed: u64, mode: WriteMode) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut world = World::default();
    // Files already in the bucket, so edits start from fetched content.
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..4 {
        let data = rng.bytes(3000);
        let hash = content_hash(&data);
        world.cas.insert(hash.clone(), Bytes::from(data.clone()));
        let path = if i % 2 == 0 { format!("seed{i}") } else { format!("d/seed{i}") };
        world.bucket.insert(path.clone(), hash);
        model.insert(path, data);
    }
    let cfg = MountConfig {
        urls: HubUrls::new("http://hub"),
        source: Source::Bucket { id: "sim/b".into() },
        subfolder: String::new(),
        uid: 0,
        gid: 0,
        // Short, so re-listings race with commits.
        metadata_ttl: Duration::from_millis(1500),
        mtime_secs: 0,
        policy: ReadPolicy::default(),
        writes: WritePolicy {
            mode,
            staging_dir: "/stage/".into(),
            memory_limit: 4096,
            stream_threshold: 1500,
            ..WritePolicy::default()
        },
        wall_ms_at_zero: 0,
        poll_interval: None,
    };
    let fs = Filesystem::new(cfg);
    let mut sim = Sim {
        rng,
        fs,
        world,
        now: Instant::ZERO,
        effects: Vec::new(),
        answered: HashMap::new(),
        failures: HashMap::new(),
        next_req: 0,
        seed,
    };
    let owner = Owner::default();
    let entry_ino = |r: &Reply| match r {
        Reply::Entry { attr, .. } | Reply::Created { attr, .. } => attr.ino,
        other => panic!("seed {seed}: expected an entry, got {other:?}"),
    };
    let d = entry_ino(&sim.call(Request::Lookup { parent: ROOT_INO, name: "d".into() }));
    let dir_of = |path: &str| -> (u64, String) {
        match path.strip_prefix("d/") {
            Some(name) => (d, name.to_string()),
            None => (ROOT_INO, path.to_string()),
        }
    };
    let advanced = mode == WriteMode::Advanced;

    for step in 0..400 {
        let names: Vec<String> = model.keys().cloned().collect();
        let pick = |sim: &mut Sim| names.get(sim.rng.below(names.len() as u64) as usize).cloned();
        let ctx = format!("seed {seed} step {step} ({mode:?})");
        match sim.rng.below(8) {
            // Create a file and write it sequentially, then close.
            0 | 1 => {
                let path = if sim.rng.chance(50) { format!("f{step}") } else { format!("d/f{step}") };
                let (parent, name) = dir_of(&path);
                let r = sim.call(Request::Create { parent, name, mode: 0o644, owner });
                let Reply::Created { attr, fh, .. } = r else { panic!("{ctx}: create: {r:?}") };
                let mut data = Vec::new();
                for _ in 0..sim.rng.below(4) {
                    let mut chunk = sim.rng.bytes(3000);
                    chunk.push(1);
                    let w = sim.call(Request::Write {
                        ino: attr.ino,
                        fh: Some(fh),
                        offset: data.len() as u64,
                        data: Bytes::from(chunk.clone()),
                    });
                    ok(seed, "write", &w);
                    data.extend(chunk);
                }
                ok(seed, "close", &sim.call(Request::Flush { ino: attr.ino, fh }));
                sim.call(Request::Release { fh });
                model.insert(path, data);
            }
            // Edit an existing file: in place (advanced) or rewritten from scratch (streaming).
            2 => {
                let Some(path) = pick(&mut sim) else { continue };
                let (parent, name) = dir_of(&path);
                let ino = entry_ino(&sim.call(Request::Lookup { parent, name }));
                let truncate = !advanced;
                let r = sim.call(Request::Open { ino, write: true, truncate });
                let Reply::Open { fh, .. } = r else { panic!("{ctx}: open: {r:?}") };
                let data = model.get_mut(&path).expect("picked from the model");
                if truncate {
                    data.clear();
                }
                for _ in 0..sim.rng.below(3) + 1 {
                    let offset = if advanced { sim.rng.below(data.len() as u64 + 500) as usize } else { data.len() };
                    let mut chunk = sim.rng.bytes(2000);
                    chunk.push(2);
                    ok(
                        seed,
                        "write",
                        &sim.call(Request::Write {
                            ino,
                            fh: Some(fh),
                            offset: offset as u64,
                            data: Bytes::from(chunk.clone()),
                        }),
                    );
                    if data.len() < offset + chunk.len() {
                        data.resize(offset + chunk.len(), 0);
                    }
                    data[offset..offset + chunk.len()].copy_from_slice(&chunk);
                }
                if advanced && sim.rng.chance(30) {
                    let size = sim.rng.below(data.len() as u64 + 100);
                    let set = SetAttr { size: Some(size), ..Default::default() };
                    ok(seed, "truncate", &sim.call(Request::SetAttr { ino, set }));
                    data.resize(size as usize, 0);
                }
                ok(seed, "close", &sim.call(Request::Flush { ino, fh }));
                sim.call(Request::Release { fh });
            }
            // Rename, possibly over another file, possibly across directories.
            3 => {
                let Some(from) = pick(&mut sim) else { continue };
                let to = if sim.rng.chance(30) {
                    pick(&mut sim).unwrap_or_default()
                } else {
                    format!("{}r{step}", if sim.rng.chance(50) { "d/" } else { "" })
                };
                if from == to {
                    continue;
                }
                let ((p1, n1), (p2, n2)) = (dir_of(&from), dir_of(&to));
                let r =
                    sim.call(Request::Rename { parent: p1, name: n1, new_parent: p2, new_name: n2, no_replace: false });
                ok(seed, "rename", &r);
                let data = model.remove(&from).expect("picked");
                model.insert(to, data);
            }
            4 => {
                let Some(path) = pick(&mut sim) else { continue };
                let (parent, name) = dir_of(&path);
                ok(seed, "unlink", &sim.call(Request::Unlink { parent, name }));
                model.remove(&path);
            }
            5 => {
                let Some(path) = pick(&mut sim) else { continue };
                let (parent, name) = dir_of(&path);
                let ino = entry_ino(&sim.call(Request::Lookup { parent, name }));
                let to = format!("l{step}");
                let r = sim.call(Request::Link { ino, new_parent: ROOT_INO, new_name: to.clone() });
                entry_ino(&r);
                let data = model[&path].clone();
                model.insert(to, data);
            }
            // Read a whole file back: always the newest content.
            6 => {
                let Some(path) = pick(&mut sim) else { continue };
                let (parent, name) = dir_of(&path);
                let r = sim.call(Request::Lookup { parent, name });
                let Reply::Entry { attr, .. } = r else { panic!("{ctx}: lookup {path}: {r:?}") };
                assert_eq!(attr.size, model[&path].len() as u64, "{ctx}: size of {path}");
                let r = sim.call(Request::Read { ino: attr.ino, fh: None, offset: 0, size: 1 << 20 });
                let Reply::Data(got) = r else { panic!("{ctx}: read {path}: {r:?}") };
                assert!(got[..] == model[&path][..], "{ctx}: {path} read back different bytes");
            }
            // fsync: once it answers, the bucket holds the file as the model has it.
            _ => {
                let Some(path) = pick(&mut sim) else { continue };
                let (parent, name) = dir_of(&path);
                let ino = entry_ino(&sim.call(Request::Lookup { parent, name }));
                ok(seed, "fsync", &sim.call(Request::Fsync { ino }));
                let hash =
                    sim.world.bucket.get(&path).unwrap_or_else(|| panic!("{ctx}: fsync'd {path} not in the bucket"));
                assert!(
                    sim.world.content(hash)[..] == model[&path][..],
                    "{ctx}: fsync'd {path} has other content in the bucket"
                );
            }
        }
    }
    // Unmount: drain everything, without faults, then the bucket is the model.
    sim.fs.begin_drain(sim.now, Duration::from_secs(3600));
    for _ in 0..100_000 {
        if !sim.fs.has_unsaved() && sim.effects.is_empty() && !sim.fs.is_busy() {
            break;
        }
        if !sim.tick(false) {
            if let Some(t) = sim.fs.poll_timeout() {
                sim.now = t;
                sim.fs.handle_timeout(t);
            }
        }
    }
    assert!(!sim.fs.has_unsaved(), "seed {seed}: unsaved changes after the drain");
    let got: BTreeMap<String, Vec<u8>> =
        sim.world.bucket.iter().map(|(p, h)| (p.clone(), sim.world.content(h).to_vec())).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), model.keys().collect::<Vec<_>>(), "seed {seed}: bucket paths");
    for (p, data) in &model {
        assert!(got[p] == *data, "seed {seed}: {p} differs in the bucket");
    }
}

#[test]
fn simulated_bucket_writes_lose_nothing() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (1..=30).collect(),
    };
    for seed in seeds {
        run(seed, WriteMode::Streaming);
        run(seed, WriteMode::Advanced);
    }
}

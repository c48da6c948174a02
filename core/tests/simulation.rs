//! Deterministic simulation of the whole core: a simulated Hub and CAS answer effects in random
//! order with random delays and injected transient failures, while a simulated kernel issues
//! concurrent lookups, readdirs and reads. Every reply is checked against a reference model of
//! the repo. A failing seed reproduces exactly: `SIM_SEED=<n> cargo test --test simulation`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

mod common;

use bytes::Bytes;
use common::Rng;
use hfm_core::config::{ReadPolicy, Source, WritePolicy};
use hfm_core::hub::{HubUrls, RepoKind, RepoRef};
use hfm_core::{
    Completion, Effect, EffectFailure, EffectId, FailureKind, Filesystem, HttpResponse, Instant, MountConfig, Reply,
    Request, RequestId, ROOT_INO,
};

struct Model {
    /// path -> content ("" never appears; directories are implied).
    files: BTreeMap<String, Bytes>,
}

impl Model {
    fn new(rng: &mut Rng) -> Self {
        let mut files = BTreeMap::new();
        for i in 0..40 {
            let dir = ["", "a/", "a/b/", "c d/", "a/b/e#f/"][(i % 5) as usize];
            let size = match i % 4 {
                0 => 0,
                1 => rng.below(5000),
                2 => 100_000 + rng.below(3_000_000),
                _ => rng.below(200_000),
            };
            let content: Vec<u8> = (0..size).map(|j| (j * 31 + i * 7 + (j >> 9)) as u8).collect();
            files.insert(format!("{dir}file-{i}.bin"), Bytes::from(content));
        }
        for i in 0..2300 {
            files.insert(format!("big/{i:05}"), Bytes::from(format!("{i}")));
        }
        Model { files }
    }

    fn children(&self, dir: &str) -> Vec<(String, bool)> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut out: Vec<(String, bool)> = Vec::new();
        for path in self.files.keys() {
            let Some(rest) = path.strip_prefix(&prefix) else { continue };
            match rest.split_once('/') {
                Some((d, _)) => {
                    if !out.iter().any(|(n, _)| n == d) {
                        out.push((d.to_string(), true));
                    }
                }
                None => out.push((rest.to_string(), false)),
            }
        }
        out
    }

    fn dirs(&self) -> Vec<String> {
        let mut dirs = vec![String::new()];
        for path in self.files.keys() {
            let mut acc = String::new();
            let parts: Vec<&str> = path.split('/').collect();
            for p in &parts[..parts.len() - 1] {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(p);
                if !dirs.contains(&acc) {
                    dirs.push(acc.clone());
                }
            }
        }
        dirs
    }

    fn hash_of(path: &str) -> String {
        let mut h: u64 = 1469598103934665603;
        for b in path.bytes() {
            h = (h ^ b as u64).wrapping_mul(1099511628211);
        }
        format!("{h:016x}").repeat(4)
    }
}

/// Pre-rendered Hub responses for every tree page URL, and file contents by hash / resolve URL.
struct SimHub {
    pages: HashMap<String, HttpResponse>,
    by_hash: HashMap<String, Bytes>,
    by_url: HashMap<String, Bytes>,
}

const LIMIT: u32 = 1000;

impl SimHub {
    fn new(model: &Model, urls: &HubUrls, repo: &RepoRef, commit: &str) -> Self {
        let mut pages = HashMap::new();
        for dir in model.dirs() {
            let entries: Vec<String> = model
                .children(&dir)
                .into_iter()
                .map(|(name, is_dir)| {
                    let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
                    let path_json = serde_json::to_string(&path).unwrap();
                    if is_dir {
                        format!(r#"{{"type":"directory","oid":"x","size":0,"path":{path_json}}}"#)
                    } else {
                        let size = model.files[&path].len();
                        if size > 50_000 {
                            let h = Model::hash_of(&path);
                            format!(r#"{{"type":"file","oid":"x","size":{size},"path":{path_json},"xetHash":"{h}","lfs":{{"oid":"y","size":{size},"pointerSize":1}}}}"#)
                        } else {
                            format!(r#"{{"type":"file","oid":"x","size":{size},"path":{path_json}}}"#)
                        }
                    }
                })
                .collect();
            let first = urls.tree(repo, commit, &dir, LIMIT);
            let chunks: Vec<&[String]> = entries.chunks(LIMIT as usize).collect();
            let n = chunks.len().max(1);
            for page in 0..n {
                let url = if page == 0 { first.clone() } else { format!("{first}&cursor={page}") };
                let body = format!("[{}]", chunks.get(page).map(|c| c.join(",")).unwrap_or_default());
                let mut headers = vec![];
                if page + 1 < n {
                    headers.push(("link".to_string(), format!("<{first}&cursor={}>; rel=\"next\"", page + 1)));
                }
                pages.insert(url, HttpResponse { status: 200, headers, body: Bytes::from(body) });
            }
        }
        let mut by_hash = HashMap::new();
        let mut by_url = HashMap::new();
        for (path, content) in &model.files {
            by_hash.insert(Model::hash_of(path), content.clone());
            by_url.insert(urls.resolve(repo, commit, path), content.clone());
        }
        SimHub { pages, by_hash, by_url }
    }

    fn execute(&self, effect: &Effect) -> Completion {
        match effect {
            Effect::HubGet { url } => match self.pages.get(url) {
                Some(r) => Completion::Http(r.clone()),
                None => Completion::Http(HttpResponse {
                    status: 404,
                    headers: vec![("x-error-code".into(), "EntryNotFound".into())],
                    body: Bytes::new(),
                }),
            },
            Effect::HubRange { url, range } => match self.by_url.get(url) {
                Some(c) => Completion::Bytes(vec![c.slice(range.start as usize..range.end as usize)]),
                None => Completion::Failed(EffectFailure::new(FailureKind::NotFound, Some(404), "no such file")),
            },
            Effect::CasRange { xet_hash, file_size, range } => match self.by_hash.get(xet_hash) {
                Some(c) if c.len() as u64 == *file_size => {
                    // CAS hands ranges back in pieces; split at a few points to exercise joining.
                    let (a, b) = (range.start as usize, range.end as usize);
                    let cut = a + (b - a) / 3;
                    Completion::Bytes(vec![c.slice(a..cut), c.slice(cut..cut), c.slice(cut..b)])
                }
                _ => Completion::Failed(EffectFailure::new(FailureKind::NotFound, Some(404), "unknown xet hash")),
            },
            other => panic!("a read-only repo mount asked for {other:?}"),
        }
    }
}

enum Expect {
    Entry { path: String },
    Dir { dir: String, offset: u64 },
    Data { path: String, offset: u64, size: u32 },
}

fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let model = Model::new(&mut rng);
    let urls = HubUrls::new("http://hub.sim");
    let repo = RepoRef { kind: RepoKind::Dataset, id: "sim/repo".into() };
    let commit = "c".repeat(40);
    let hub = SimHub::new(&model, &urls, &repo, &commit);
    let policy = ReadPolicy { cache_bytes: 1 << 20 | rng.below(8 << 20), ..ReadPolicy::default() };
    let cfg = MountConfig {
        urls,
        source: Source::Repo { repo, commit, follow: None },
        subfolder: String::new(),
        uid: 1,
        gid: 1,
        metadata_ttl: Duration::from_secs(1),
        mtime_secs: 0,
        policy,
        writes: WritePolicy::default(),
        wall_ms_at_zero: 0,
        poll_interval: None,
    };
    let mut fs = Filesystem::new(cfg);
    let mut now = Instant::ZERO;
    let mut inos: HashMap<String, u64> = HashMap::from([(String::new(), ROOT_INO)]);
    let mut pending: HashMap<RequestId, Expect> = HashMap::new();
    let mut effects: Vec<(EffectId, Effect)> = Vec::new();
    let mut failures_of: HashMap<EffectId, u32> = HashMap::new();
    let mut next_req = 0u64;
    let paths: Vec<String> = model.files.keys().cloned().collect();
    let dirs = model.dirs();

    for step in 0..3000 {
        // The kernel sends something: only for objects it has already looked up.
        if rng.chance(40) || (pending.is_empty() && effects.is_empty()) {
            next_req += 1;
            let id = RequestId(next_req);
            let path = &paths[rng.below(paths.len() as u64) as usize];
            let (parent_path, name) = path.rsplit_once('/').map_or(("", path.as_str()), |(p, n)| (p, n));
            match (rng.below(3), inos.get(parent_path), inos.get(path.as_str())) {
                (0, Some(&parent), _) => {
                    fs.handle_request(id, Request::Lookup { parent, name: name.to_string() }, now);
                    pending.insert(id, Expect::Entry { path: path.clone() });
                }
                (1, _, Some(&ino)) => {
                    let size = model.files[path].len() as u64;
                    let offset = if rng.chance(50) { rng.below(size + 10) } else { 0 };
                    let len = [1u32, 4096, 131072, 1 << 20][rng.below(4) as usize];
                    fs.handle_request(id, Request::Read { ino, fh: None, offset, size: len }, now);
                    pending.insert(id, Expect::Data { path: path.clone(), offset, size: len });
                }
                _ => {
                    let dir = &dirs[rng.below(dirs.len() as u64) as usize];
                    if let Some(&ino) = inos.get(dir.as_str()) {
                        let offset = rng.below(4);
                        fs.handle_request(id, Request::ReadDir { ino, offset, plus: rng.chance(50) }, now);
                        pending.insert(id, Expect::Dir { dir: dir.clone(), offset });
                    } else {
                        // Look the directory up through its parent first.
                        let (pp, n) = dir.rsplit_once('/').map_or(("", dir.as_str()), |(p, n)| (p, n));
                        if let Some(&parent) = inos.get(pp) {
                            fs.handle_request(id, Request::Lookup { parent, name: n.to_string() }, now);
                            pending.insert(id, Expect::Entry { path: dir.clone() });
                        }
                    }
                }
            }
        }
        // The world completes one effect, in random order, sometimes failing it transiently.
        while let Some(e) = fs.poll_effect() {
            effects.push(e);
        }
        if !effects.is_empty() && rng.chance(70) {
            let (id, effect) = effects.swap_remove(rng.below(effects.len() as u64) as usize);
            let fails = failures_of.entry(id).or_default();
            let completion = if *fails < 2 && rng.chance(15) {
                *fails += 1;
                let status = [500u16, 503, 429][rng.below(3) as usize];
                Completion::Failed(EffectFailure::from_status(status, "injected"))
            } else {
                hub.execute(&effect)
            };
            fs.handle_completion(id, completion, now);
        }
        now = now.saturating_add(Duration::from_millis(rng.below(100)));
        if fs.poll_timeout().is_some_and(|t| t <= now) {
            fs.handle_timeout(now);
        }
        while let Some((id, reply)) = fs.poll_reply() {
            let expect =
                pending.remove(&id).unwrap_or_else(|| panic!("seed {seed} step {step}: reply to unknown {id:?}"));
            check(seed, step, &model, &mut inos, expect, reply);
        }
    }
    // Drain: finish every effect (no more failures) and let every retry fire.
    for _ in 0..10_000 {
        while let Some(e) = fs.poll_effect() {
            effects.push(e);
        }
        if let Some((id, effect)) = effects.pop() {
            fs.handle_completion(id, hub.execute(&effect), now);
        } else if let Some(t) = fs.poll_timeout() {
            now = t;
            fs.handle_timeout(now);
        } else {
            break;
        }
        while let Some((id, reply)) = fs.poll_reply() {
            let expect = pending.remove(&id).expect("reply to a pending request");
            check(seed, 0, &model, &mut inos, expect, reply);
        }
    }
    assert!(pending.is_empty(), "seed {seed}: {} requests never answered", pending.len());
    let stats = fs.stats();
    assert!(stats.bytes_read > 0, "seed {seed}: the simulation read nothing");
}

fn check(seed: u64, step: usize, model: &Model, inos: &mut HashMap<String, u64>, expect: Expect, reply: Reply) {
    let ctx = format!("seed {seed} step {step}");
    match (expect, reply) {
        (Expect::Entry { path }, Reply::Entry { attr, .. }) => {
            let size = model.files.get(&path).map_or(0, |c| c.len() as u64);
            assert_eq!(attr.size, size, "{ctx}: size of {path}");
            if let Some(&known) = inos.get(&path) {
                assert_eq!(known, attr.ino, "{ctx}: inode of {path} changed");
            }
            inos.insert(path, attr.ino);
        }
        (Expect::Data { path, offset, size }, Reply::Data(data)) => {
            let c = &model.files[&path];
            let start = (offset as usize).min(c.len());
            let end = (offset as usize).saturating_add(size as usize).min(c.len());
            assert!(data == c.slice(start..end), "{ctx}: read {path} @{offset}+{size} returned wrong bytes");
        }
        (Expect::Dir { dir, offset }, Reply::Dir { entries, .. }) => {
            let mut want: Vec<String> = vec![".".into(), "..".into()];
            want.extend(model.children(&dir).into_iter().map(|(n, _)| n));
            let got: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
            let expected: Vec<String> = want.into_iter().skip(offset as usize).take(got.len()).collect();
            assert_eq!(got, expected, "{ctx}: readdir {dir:?} from {offset}");
            assert!(!got.is_empty() || offset as usize >= model.children(&dir).len() + 2, "{ctx}: empty readdir page");
        }
        (_, reply) => panic!("{ctx}: unexpected reply {reply:?}"),
    }
}

#[test]
fn simulated_mount_answers_everything_correctly() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (1..=40).collect(),
    };
    for seed in seeds {
        run(seed);
    }
}

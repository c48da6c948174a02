//! Deterministic simulation of a repo mount: the simulated Hub and CAS complete effects in
//! random order with random delays and injected transient failures (mount-time resolution
//! included), while a simulated kernel sends concurrent lookups, getattrs, readdirs (random
//! byte budgets, plain and plus), reads, resolves and statfs. Every reply is checked against a
//! reference model of the repo. Replay one seed: `SIM_SEED=<n> cargo test --release -p hfm-sim
//! --test repo`.

use std::time::Duration;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use hfm_core::config::{ReadPolicy, Source};
use hfm_core::hub::{RepoKind, RepoRef};
use hfm_core::{Caller, DirBudget, FileKind, MountConfig, Reply, Request, ROOT_INO};
use hfm_sim::{Sim, SimRepo, World};

fn model(sim_rng: &mut hfm_core::rng::Rng) -> BTreeMap<String, Bytes> {
    let mut files = BTreeMap::new();
    for i in 0..40u64 {
        let dir = ["", "a/", "a/b/", "c d/", "a/b/e#f/"][(i % 5) as usize];
        let size = match i % 4 {
            0 => 0,
            1 => sim_rng.below(5000),
            2 => 100_000 + sim_rng.below(1_500_000),
            _ => sim_rng.below(200_000),
        };
        let content: Vec<u8> = (0..size).map(|j| (j * 31 + i * 7 + (j >> 9)) as u8).collect();
        files.insert(format!("{dir}file-{i}.bin"), Bytes::from(content));
    }
    for i in 0..700 {
        files.insert(format!("big/{i:05}"), Bytes::from(format!("{i}")));
    }
    files
}

/// Children of `dir` in the model: (name, is_dir), in the order the Hub lists them.
fn children(files: &BTreeMap<String, Bytes>, dir: &str) -> Vec<(String, bool)> {
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let mut out: Vec<(String, bool)> = Vec::new();
    for path in files.keys() {
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

fn dirs(files: &BTreeMap<String, Bytes>) -> Vec<String> {
    let mut dirs = vec![String::new()];
    for path in files.keys() {
        let parts: Vec<&str> = path.split('/').collect();
        for n in 1..parts.len() {
            let d = parts[..n].join("/");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs
}

enum Expect {
    Entry {
        path: String,
    },
    Attr {
        path: String,
    },
    Dir {
        dir: String,
        offset: u64,
    },
    /// A whole directory read page by page, following each page's last cookie.
    Walk {
        dir: String,
        ino: u64,
        plus: bool,
        budget: DirBudget,
        names: Vec<String>,
    },
    Data {
        path: String,
        offset: u64,
        size: u32,
    },
    Ok,
}

impl Expect {
    /// The path this request is about (a walk's or readdir's directory).
    fn path(&self) -> Option<&str> {
        match self {
            Expect::Entry { path } | Expect::Attr { path } | Expect::Data { path, .. } => Some(path),
            Expect::Dir { dir, .. } | Expect::Walk { dir, .. } => Some(dir),
            Expect::Ok => None,
        }
    }
}

/// What the simulated kernel holds: lookups it was given and has not forgotten, per path, and
/// every number it ever saw for a path (an evicted entry must come back under the same one).
#[derive(Default)]
struct Kernel {
    held: BTreeMap<String, (u64, u64)>,
    numbers: BTreeMap<String, u64>,
}

impl Kernel {
    fn saw(&mut self, ctx: &str, path: &str, ino: u64, counts: bool) {
        if let Some(&known) = self.numbers.get(path) {
            assert_eq!(known, ino, "{ctx}: {path} came back under another number");
        }
        self.numbers.insert(path.to_string(), ino);
        if counts {
            self.held.entry(path.to_string()).or_insert((ino, 0)).1 += 1;
        }
    }

    /// Entries of a readdirplus reply that count as lookups.
    fn saw_entries(&mut self, ctx: &str, dir: &str, entries: &[hfm_core::DirEntry]) {
        for e in entries.iter().filter(|e| e.lookup) {
            let path = if dir.is_empty() { e.name.clone() } else { format!("{dir}/{}", e.name) };
            self.saw(ctx, &path, e.ino, true);
        }
    }

    /// A held path to forget: no other held path below it and no request about it or below it
    /// pending (the kernel forgets only what no dentry or request still uses).
    fn pick_forget(&self, pending: &HashMap<u64, Expect>, pick: u64) -> Option<(String, u64, u64)> {
        let busy: Vec<&str> = pending.values().filter_map(Expect::path).collect();
        let candidates: Vec<(&String, &(u64, u64))> = self
            .held
            .iter()
            .filter(|(p, _)| {
                let below = format!("{p}/");
                let holds_more = self.held.range(below.clone()..).next().is_some_and(|(q, _)| q.starts_with(&below));
                !p.is_empty() && !holds_more && !busy.iter().any(|b| b == *p || b.starts_with(&below))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (path, (ino, count)) = candidates[(pick % candidates.len() as u64) as usize];
        Some((path.clone(), *ino, *count))
    }
}

/// One seed of the repo workload; returns the run's trace digest.
pub fn run(seed: u64) -> u64 {
    let mut rng = hfm_core::rng::Rng::new(seed ^ 0x5eed);
    let files = model(&mut rng);
    let repo = RepoRef { kind: RepoKind::Dataset, id: "sim/repo".into() };
    let mut sim_repo = SimRepo::new(repo.clone(), files.clone());
    sim_repo.alias = Some("sim/alias".into());
    let mut world = World::with_repo(sim_repo);
    // Every third seed talks to a hostile Hub: listings carry entries that must be left out,
    // and some arrive cut short.
    world.hostile = seed.is_multiple_of(3);
    let mut cfg = MountConfig::new(
        World::urls(),
        Source::Repo { repo: RepoRef { kind: RepoKind::Dataset, id: "sim/alias".into() }, revision: "main".into() },
    );
    cfg.policy =
        ReadPolicy { cache_bytes: 1 << 20 | rng.below(8 << 20), tree_page_limit: 100, ..ReadPolicy::default() };
    // Every other seed keeps a tiny inode table: idle listings are evicted and listed again.
    if seed % 2 == 1 {
        cfg.inode_soft_limit = Some(8);
        cfg.lru_sweep_interval = Duration::from_millis(700);
    }
    let mut sim = Sim::start(seed, cfg, world);
    sim.faults_on = true;
    let info = sim.wait_mounted().unwrap_or_else(|e| panic!("seed {seed}: mount failed: {e}"));
    assert!(info.label.starts_with("sim/repo@"), "seed {seed}: the alias resolves to the canonical id: {}", info.label);

    let mut inos: HashMap<String, u64> = HashMap::from([(String::new(), ROOT_INO)]);
    let mut pending: HashMap<u64, Expect> = HashMap::new();
    let paths: Vec<String> = files.keys().cloned().collect();
    let all_dirs = dirs(&files);
    let caller = Caller::new(1, 1);
    let mut kernel = Kernel::default();
    for step in 0..1800 {
        // Now and then the kernel forgets an entry nothing uses any more (what lets an inode
        // table under --inode-soft-limit drop listings).
        if sim.rng.below(100) < 8 {
            let pick = sim.rng.below(1 << 20);
            if let Some((path, ino, nlookup)) = kernel.pick_forget(&pending, pick) {
                kernel.held.remove(&path);
                inos.retain(|p, _| !(p == &path || p.starts_with(&format!("{path}/"))));
                let t = sim.submit(caller.clone(), Request::Forget { ino, nlookup });
                pending.insert(t, Expect::Ok);
            }
        }
        if sim.rng.below(100) < 40 || pending.is_empty() {
            let path = &paths[sim.rng.below(paths.len() as u64) as usize];
            let (parent_path, name) = path.rsplit_once('/').map_or(("", path.as_str()), |(p, n)| (p, n));
            let choice = sim.rng.below(6);
            match (choice, inos.get(parent_path).copied(), inos.get(path.as_str()).copied()) {
                (0, Some(parent), _) => {
                    let t = sim.submit(caller.clone(), Request::Lookup { parent, name: name.to_string() });
                    pending.insert(t, Expect::Entry { path: path.clone() });
                }
                (1 | 2, _, Some(ino)) => {
                    let size = files[path].len() as u64;
                    let offset = if sim.rng.below(2) == 0 { sim.rng.below(size + 10) } else { 0 };
                    let len = [1u32, 4096, 131072, 1 << 20][sim.rng.below(4) as usize];
                    let fh = (choice == 1).then_some(7);
                    let t = sim.submit(caller.clone(), Request::Read { ino, fh, offset, size: len });
                    pending.insert(t, Expect::Data { path: path.clone(), offset, size: len });
                }
                (3, _, Some(ino)) => {
                    let req = if sim.rng.below(2) == 0 { Request::GetAttr { ino } } else { Request::Resolve { ino } };
                    let t = sim.submit(caller.clone(), req);
                    pending.insert(t, Expect::Attr { path: path.clone() });
                }
                (4, _, _) => {
                    let t = sim.submit(caller.clone(), Request::StatFs);
                    pending.insert(t, Expect::Ok);
                }
                _ => {
                    let dir = &all_dirs[sim.rng.below(all_dirs.len() as u64) as usize];
                    if let Some(&ino) = inos.get(dir.as_str()) {
                        let plus = sim.rng.below(2) == 0;
                        let budget =
                            DirBudget { bytes: 300 + sim.rng.below(8000) as u32, entry_fixed: 24, name_align: 8 };
                        if sim.rng.below(2) == 0 {
                            let offset = sim.rng.below(4);
                            let t = sim.submit(caller.clone(), Request::ReadDir { ino, offset, plus, budget });
                            pending.insert(t, Expect::Dir { dir: dir.clone(), offset });
                        } else {
                            let t = sim.submit(caller.clone(), Request::ReadDir { ino, offset: 0, plus, budget });
                            let names = Vec::new();
                            pending.insert(t, Expect::Walk { dir: dir.clone(), ino, plus, budget, names });
                        }
                    } else {
                        // Look the directory up through its parent first.
                        let (pp, n) = dir.rsplit_once('/').map_or(("", dir.as_str()), |(p, n)| (p, n));
                        if let Some(&parent) = inos.get(pp) {
                            let t = sim.submit(caller.clone(), Request::Lookup { parent, name: n.to_string() });
                            pending.insert(t, Expect::Entry { path: dir.clone() });
                        }
                    }
                }
            }
        }
        if sim.rng.below(100) < 70 {
            sim.tick();
        }
        for (tag, reply) in sim.replies() {
            let expect =
                pending.remove(&tag).unwrap_or_else(|| panic!("seed {seed} step {step}: reply to unknown {tag}"));
            if let Some((req, next)) = check(seed, step, &files, &mut inos, &mut kernel, expect, reply) {
                let t = sim.submit(caller.clone(), req);
                pending.insert(t, next);
            }
        }
    }
    sim.faults_on = false;
    for _ in 0..100_000 {
        if pending.is_empty() {
            break;
        }
        if !sim.tick() {
            sim.jump_to_timer();
        }
        for (tag, reply) in sim.replies() {
            let expect = pending.remove(&tag).expect("reply to a pending request");
            if let Some((req, next)) = check(seed, 0, &files, &mut inos, &mut kernel, expect, reply) {
                let t = sim.submit(caller.clone(), req);
                pending.insert(t, next);
            }
        }
    }
    assert!(pending.is_empty(), "seed {seed}: {} requests never answered", pending.len());
    assert!(sim.filesystem().stats().bytes_read > 0, "seed {seed}: the simulation read nothing");
    sim.trace().digest()
}

/// Check `reply` against the model; a directory walk not finished yet returns its next request.
fn check(
    seed: u64,
    step: usize,
    files: &BTreeMap<String, Bytes>,
    inos: &mut HashMap<String, u64>,
    kernel: &mut Kernel,
    expect: Expect,
    reply: Reply,
) -> Option<(Request, Expect)> {
    let ctx = format!("seed {seed} step {step}");
    match (expect, reply) {
        (Expect::Walk { dir, ino, plus, budget, mut names }, Reply::Dir { entries, eof, .. }) => {
            kernel.saw_entries(&ctx, &dir, &entries);
            names.extend(entries.iter().map(|e| e.name.clone()));
            if !eof {
                let last = entries.last().unwrap_or_else(|| panic!("{ctx}: an empty page of {dir:?} before its end"));
                let req = Request::ReadDir { ino, offset: last.next_offset, plus, budget };
                return Some((req, Expect::Walk { dir, ino, plus, budget, names }));
            }
            let mut want: Vec<String> = vec![".".into(), "..".into()];
            want.extend(children(files, &dir).into_iter().map(|(n, _)| n));
            if let Some(i) = (0..names.len().max(want.len())).find(|i| names.get(*i) != want.get(*i)) {
                panic!("{ctx}: a walk of {dir:?} page by page: entry {i} is {:?}, not {:?}", names.get(i), want.get(i));
            }
        }
        (Expect::Entry { path } | Expect::Attr { path }, reply @ (Reply::Entry { .. } | Reply::Attr { .. })) => {
            let is_entry = matches!(reply, Reply::Entry { .. });
            let (Reply::Entry { attr, .. } | Reply::Attr { attr, .. }) = reply else { unreachable!() };
            let size = files.get(&path).map_or(0, |c| c.len() as u64);
            assert_eq!(attr.size, size, "{ctx}: size of {path}");
            assert_eq!(attr.perm, if files.contains_key(&path) { 0o444 } else { 0o555 }, "{ctx}: mode of {path}");
            if let Some(&known) = inos.get(&path) {
                assert_eq!(known, attr.ino, "{ctx}: inode of {path} changed");
            }
            kernel.saw(&ctx, &path, attr.ino, is_entry);
            inos.insert(path, attr.ino);
        }
        (Expect::Data { path, offset, size }, Reply::Data { data, eof }) => {
            let c = &files[&path];
            let start = (offset as usize).min(c.len());
            let end = (offset as usize).saturating_add(size as usize).min(c.len());
            assert!(data == c.slice(start..end), "{ctx}: read {path} @{offset}+{size} returned wrong bytes");
            assert_eq!(eof, end == c.len(), "{ctx}: eof of {path} @{offset}+{size}");
        }
        (Expect::Dir { dir, offset }, Reply::Dir { entries, eof, .. }) => {
            kernel.saw_entries(&ctx, &dir, &entries);
            let mut want: Vec<(String, bool)> = vec![(".".into(), true), ("..".into(), true)];
            want.extend(children(files, &dir));
            let got: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
            let expected: Vec<String> =
                want.iter().skip(offset as usize).take(got.len()).map(|(n, _)| n.clone()).collect();
            assert_eq!(got, expected, "{ctx}: readdir {dir:?} from {offset}");
            assert_eq!(eof, offset as usize + got.len() >= want.len(), "{ctx}: eof of readdir {dir:?}");
            assert!(!got.is_empty() || eof, "{ctx}: an empty page that is not the end");
            for (e, (_, is_dir)) in entries.iter().zip(want.iter().skip(offset as usize)) {
                let kind = if *is_dir { FileKind::Directory } else { FileKind::RegularFile };
                assert_eq!(e.kind, kind, "{ctx}: kind of {}", e.name);
                assert_eq!(
                    e.lookup,
                    e.attr.is_some() && e.name != "." && e.name != "..",
                    "{ctx}: lookup of {}",
                    e.name
                );
            }
        }
        (Expect::Ok, Reply::StatFs(_) | Reply::Empty) => {}
        (_, reply) => panic!("{ctx}: unexpected reply {reply:?}"),
    }
    None
}

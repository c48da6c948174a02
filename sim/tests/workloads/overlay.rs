//! Deterministic simulation of an `--overlay` mount of a repo: the simulated Hub and CAS
//! answer in random order with random delays and transient failures, the local layer is the
//! world's in-memory directory, and each step sends one change (create, write, truncate,
//! unlink, rename, mkdir, rmdir, chmod) together with reads of other paths, all in flight at
//! once. Every reply is checked against a model of the merged view (layer over remote), and at
//! the end the world's layer is exactly the model's. Replay one seed: `SIM_SEED=<n> cargo
//! test --release -p hfm-sim --test overlay`.

use std::collections::BTreeMap;

use bytes::Bytes;
use hfm_core::config::Source;
use hfm_core::hub::{RepoKind, RepoRef};
use hfm_core::rng::Rng;
use hfm_core::{Caller, CreateHow, DirBudget, Errno, MountConfig, Reply, Request, SetAttr, Stability, ROOT_INO};
use hfm_sim::{Sim, SimRepo, World};

const NAMES: [&str; 5] = ["a", "b", "c.txt", "d", "e.bin"];
const DIRS: [&str; 6] = ["", "r", "r/s", "l", "l/m", "n"];

/// The merged view as the model sees it.
struct Model {
    remote: BTreeMap<String, Bytes>,
    /// Layer entries: content, `None` for a directory.
    layer: BTreeMap<String, Option<Vec<u8>>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File(Vec<u8>),
    Dir,
}

impl Model {
    fn remote_dir(&self, path: &str) -> bool {
        path.is_empty() || self.remote.keys().any(|k| k.starts_with(&format!("{path}/")))
    }

    fn in_layer(&self, path: &str) -> bool {
        self.layer.contains_key(path)
    }

    fn get(&self, path: &str) -> Option<Node> {
        match self.layer.get(path) {
            Some(Some(c)) => return Some(Node::File(c.clone())),
            Some(None) => return Some(Node::Dir),
            None => {}
        }
        if let Some(c) = self.remote.get(path) {
            return Some(Node::File(c.to_vec()));
        }
        self.remote_dir(path).then_some(Node::Dir)
    }

    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut names: Vec<String> = self
            .remote
            .keys()
            .map(|k| k.as_str())
            .chain(self.layer.keys().map(|k| k.as_str()))
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Make `dir` and its ancestors layer directories (as the mount does before a create).
    fn layer_parents(&mut self, dir: &str) {
        let mut at = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            at = if at.is_empty() { part.to_string() } else { format!("{at}/{part}") };
            self.layer.entry(at.clone()).or_insert(None);
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn errno(reply: &Reply) -> Option<Errno> {
    match reply {
        Reply::Error(e) => Some(e.errno),
        _ => None,
    }
}

/// The inode of `path` by lookups from the root, as the kernel finds it.
fn ino_of(sim: &mut Sim, path: &str) -> Option<u64> {
    let mut ino = ROOT_INO;
    for name in path.split('/').filter(|p| !p.is_empty()) {
        match sim.call(Request::Lookup { parent: ino, name: name.to_string() }) {
            Reply::Entry { attr, .. } => ino = attr.ino,
            _ => return None,
        }
    }
    Some(ino)
}

fn read_all(sim: &mut Sim, ino: u64) -> Vec<u8> {
    match sim.call(Request::Read { ino, fh: None, offset: 0, size: 1 << 24 }) {
        Reply::Data { data, .. } => data.to_vec(),
        other => panic!("seed {}: read: {other:?}", sim.seed),
    }
}

fn random_content(rng: &mut Rng) -> Vec<u8> {
    let n = [0, 1, 100, 5000, 70_000][rng.below(5) as usize];
    (0..n).map(|i| (i as u64 * 13 + rng.below(7)) as u8).collect()
}

fn initial(rng: &mut Rng) -> Model {
    let mut remote = BTreeMap::new();
    for (i, dir) in ["", "r", "r/s", "n"].iter().enumerate() {
        for name in &NAMES[..3] {
            let content: Vec<u8> = (0..(i * 1000 + 10)).map(|j| (j * 7 + i) as u8).collect();
            remote.insert(join(dir, name), Bytes::from(content));
        }
    }
    let mut model = Model { remote, layer: BTreeMap::new() };
    // The layer as the user left it: over remote names, in remote and in layer-only directories.
    for (path, dir) in [("r", true), ("r/a", false), ("l", true), ("l/d", false), ("e.bin", false), ("b", false)] {
        model.layer.insert(path.to_string(), if dir { None } else { Some(random_content(rng)) });
    }
    model
}

pub fn run(seed: u64) {
    let mut rng = Rng::new(seed ^ 0x0ae7);
    let mut model = initial(&mut rng);
    let repo = RepoRef { kind: RepoKind::Model, id: "sim/ov".into() };
    let mut world = World::with_repo(SimRepo::new(repo.clone(), model.remote.clone()));
    world.layer = model.layer.clone();
    let mut cfg = MountConfig::new(World::urls(), Source::Repo { repo, revision: "main".into() });
    cfg.overlay = true;
    let mut sim = Sim::start(seed, cfg, world);
    sim.faults_on = true;
    let info = sim.wait_mounted().unwrap_or_else(|e| panic!("seed {seed}: mount failed: {e}"));
    assert!(info.writable, "seed {seed}: an overlay mount takes writes");
    let caller = Caller::new(0, 0);

    for step in 0..150 {
        let ctx = format!("seed {seed} step {step}");
        let dir = DIRS[rng.below(DIRS.len() as u64) as usize];
        let path = join(dir, NAMES[rng.below(NAMES.len() as u64) as usize]);
        let (parent_path, name) = split(&path);
        let Some(parent) = ino_of(&mut sim, parent_path) else {
            assert!(model.get(parent_path).is_none(), "{ctx}: {parent_path} is in the model but not found");
            continue;
        };
        // Reads of other files, in flight with the change.
        let mut reads = Vec::new();
        for _ in 0..rng.below(3) {
            let other =
                join(DIRS[rng.below(DIRS.len() as u64) as usize], NAMES[rng.below(NAMES.len() as u64) as usize]);
            if other == path || path.starts_with(&format!("{other}/")) || other.starts_with(&format!("{path}/")) {
                continue;
            }
            if let (Some(Node::File(content)), Some(ino)) = (model.get(&other), ino_of(&mut sim, &other)) {
                let t = sim.submit(caller.clone(), Request::Read { ino, fh: None, offset: 0, size: 1 << 24 });
                reads.push((t, other, content));
            }
        }
        let existing = model.get(&path);
        let layer_entry = model.in_layer(&path);
        let (req, expect): (Request, Result<(), Errno>) = match rng.below(9) {
            0 | 1 => {
                let req =
                    Request::Create { parent, name: name.into(), mode: 0o644, how: CreateHow::Guarded, open: false };
                (req, if existing.is_some() { Err(Errno::Exist) } else { Ok(()) })
            }
            2 => (
                Request::Mkdir { parent, name: name.into(), mode: 0o755 },
                if existing.is_some() { Err(Errno::Exist) } else { Ok(()) },
            ),
            3 | 4 => {
                let Some(ino) = existing.as_ref().and_then(|_| ino_of(&mut sim, &path)) else { continue };
                let data = Bytes::from(random_content(&mut rng));
                let offset = rng.below(3) * 50;
                let req = Request::Write { ino, fh: None, offset, data, stable: Stability::Unstable };
                let expect = match (&existing, layer_entry) {
                    (Some(Node::Dir), _) => Err(Errno::IsDir),
                    (_, false) => Err(Errno::Acces),
                    _ => Ok(()),
                };
                (req, expect)
            }
            5 => {
                let req = Request::Unlink { parent, name: name.into() };
                let expect = match (&existing, layer_entry) {
                    (None, _) => Err(Errno::NoEnt),
                    (Some(Node::Dir), _) => Err(Errno::IsDir),
                    (_, false) => Err(Errno::Acces),
                    _ => Ok(()),
                };
                (req, expect)
            }
            6 => {
                let req = Request::Rmdir { parent, name: name.into() };
                let expect = match (&existing, layer_entry) {
                    (None, _) => Err(Errno::NoEnt),
                    (Some(Node::File(_)), _) => Err(Errno::NotDir),
                    (_, false) => Err(Errno::Acces),
                    _ if !model.children(&path).is_empty() => Err(Errno::NotEmpty),
                    _ => Ok(()),
                };
                (req, expect)
            }
            7 => {
                let Some(ino) = existing.as_ref().and_then(|_| ino_of(&mut sim, &path)) else { continue };
                let set = SetAttr { size: Some(rng.below(200)), ..SetAttr::default() };
                let expect = match (&existing, layer_entry) {
                    (_, false) => Err(Errno::Acces),
                    (Some(Node::Dir), _) => Err(Errno::IsDir),
                    _ => Ok(()),
                };
                (Request::SetAttr { ino, set, guard_ctime: None }, expect)
            }
            _ => {
                let to_dir = DIRS[rng.below(DIRS.len() as u64) as usize];
                let to = join(to_dir, NAMES[rng.below(NAMES.len() as u64) as usize]);
                let Some(new_parent) = ino_of(&mut sim, to_dir) else { continue };
                let target = model.get(&to);
                let src_dir = existing == Some(Node::Dir);
                let expect = match (&existing, &target) {
                    (None, _) => Err(Errno::NoEnt),
                    _ if !layer_entry || (src_dir && model.remote_dir(&path)) => Err(Errno::Acces),
                    _ if to == path => Ok(()),
                    _ if src_dir && (to_dir == path || to_dir.starts_with(&format!("{path}/"))) => Err(Errno::Inval),
                    (_, Some(_)) if !model.in_layer(&to) => Err(Errno::Acces),
                    (Some(Node::Dir), Some(Node::File(_))) => Err(Errno::NotDir),
                    (Some(Node::File(_)), Some(Node::Dir)) => Err(Errno::IsDir),
                    (_, Some(Node::Dir)) if !model.children(&to).is_empty() => Err(Errno::NotEmpty),
                    _ => Ok(()),
                };
                let req = Request::Rename {
                    parent,
                    name: name.into(),
                    new_parent,
                    new_name: split(&to).1.into(),
                    no_replace: false,
                };
                let got = sim.call_as(caller.clone(), req);
                assert_eq!(errno(&got), expect.err(), "{ctx}: rename {path} -> {to}: {got:?}");
                if expect.is_ok() && to != path {
                    model.layer_parents(to_dir);
                    let moved: Vec<String> = model
                        .layer
                        .keys()
                        .filter(|k| **k == path || k.starts_with(&format!("{path}/")))
                        .cloned()
                        .collect();
                    model.layer.retain(|k, _| *k != to && !k.starts_with(&format!("{to}/")));
                    for old in moved {
                        let entry = model.layer.remove(&old).flatten();
                        model.layer.insert(format!("{to}{}", &old[path.len()..]), entry);
                    }
                }
                check_reads(&mut sim, &ctx, reads);
                continue;
            }
        };
        let shown = format!("{req:?}").chars().take(120).collect::<String>();
        let got = sim.call_as(caller.clone(), req.clone());
        assert_eq!(errno(&got), expect.err(), "{ctx}: {shown}: {got:?}");
        if expect.is_ok() {
            match req {
                Request::Create { .. } => {
                    model.layer_parents(parent_path);
                    model.layer.insert(path.clone(), Some(Vec::new()));
                }
                Request::Mkdir { .. } => {
                    model.layer_parents(parent_path);
                    model.layer.insert(path.clone(), None);
                }
                Request::Write { offset, data, .. } => {
                    let Some(Some(c)) = model.layer.get_mut(&path) else { unreachable!() };
                    let end = offset as usize + data.len();
                    if c.len() < end {
                        c.resize(end, 0);
                    }
                    c[offset as usize..end].copy_from_slice(&data);
                }
                Request::SetAttr { set, .. } => {
                    let Some(Some(c)) = model.layer.get_mut(&path) else { unreachable!() };
                    c.resize(set.size.unwrap_or(0) as usize, 0);
                }
                Request::Unlink { .. } | Request::Rmdir { .. } => {
                    model.layer.remove(&path);
                }
                _ => {}
            }
        }
        check_reads(&mut sim, &ctx, reads);
        // Now and then the merged view of a directory, and a file's bytes, from the mount.
        if rng.below(4) == 0 {
            check_dir(&mut sim, &ctx, &model, DIRS[rng.below(DIRS.len() as u64) as usize]);
        }
        if let (Some(Node::File(content)), Some(ino)) = (model.get(&path), ino_of(&mut sim, &path)) {
            assert_eq!(read_all(&mut sim, ino), content, "{ctx}: {path} reads back");
        }
    }
    for dir in DIRS {
        check_dir(&mut sim, &format!("seed {seed} at the end"), &model, dir);
    }
    sim.settle();
    let layer = sim.world().layer.clone();
    let hidden = ".hf-mount-deleted";
    let layer: BTreeMap<_, _> = layer.into_iter().filter(|(k, _)| !k.starts_with(hidden)).collect();
    assert_eq!(layer, model.layer, "seed {seed}: the layer on disk is the model's");
    assert!(
        sim.world().repo.as_ref().is_some_and(|r| r.commits.len() == 1),
        "seed {seed}: the remote was never written"
    );
}

fn check_reads(sim: &mut Sim, ctx: &str, reads: Vec<(u64, String, Vec<u8>)>) {
    for (tag, path, content) in reads {
        let reply = sim.wait_for(tag).unwrap_or_else(|| panic!("{ctx}: a read of {path} never answered"));
        match reply {
            Reply::Data { data, .. } => assert_eq!(data.to_vec(), content, "{ctx}: concurrent read of {path}"),
            other => panic!("{ctx}: concurrent read of {path}: {other:?}"),
        }
    }
}

fn check_dir(sim: &mut Sim, ctx: &str, model: &Model, dir: &str) {
    let Some(ino) = ino_of(sim, dir) else {
        assert!(model.get(dir).is_none(), "{ctx}: {dir} missing from the mount");
        return;
    };
    let budget = DirBudget { bytes: 1 << 16, entry_fixed: 24, name_align: 8 };
    match sim.call(Request::ReadDir { ino, offset: 0, plus: false, budget }) {
        Reply::Dir { entries, .. } => {
            let mut names: Vec<String> =
                entries.into_iter().map(|e| e.name).filter(|n| n != "." && n != "..").collect();
            names.sort();
            assert_eq!(names, model.children(dir), "{ctx}: listing of {dir:?}");
        }
        other => panic!("{ctx}: readdir {dir:?}: {other:?}"),
    }
}

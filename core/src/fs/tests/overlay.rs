//! Overlay mode, driven through core with an in-memory layer standing in for the local
//! directory: the walk before the mount goes live, merged listings, what is refused on remote
//! entries, parents created in the layer, namespace changes run alone, a remote file shown
//! again, files removed while open.

use std::collections::BTreeMap;

use super::*;
use crate::effect::{LayerEntry, LayerOp};

/// The local layer: path -> file content (`None` for a directory).
#[derive(Default)]
struct FakeLayer {
    entries: BTreeMap<String, Option<Vec<u8>>>,
}

impl FakeLayer {
    fn with(files: &[(&str, Option<&str>)]) -> Self {
        let entries = files.iter().map(|(p, c)| (p.to_string(), c.map(|c| c.as_bytes().to_vec()))).collect();
        FakeLayer { entries }
    }

    fn stat(&self, path: &str) -> LayerEntry {
        let content = self.entries.get(path).cloned().flatten();
        LayerEntry {
            path: path.into(),
            dir: content.is_none(),
            size: content.map_or(0, |c| c.len() as u64),
            mode: 0o640,
            uid: 7,
            gid: 8,
            atime_ns: 1,
            mtime_ns: 2,
            ctime_ns: 3,
        }
    }

    fn execute(&mut self, op: &LayerOp) -> Completion {
        let missing = || Completion::Failed(EffectFailure::local(LocalError::Refused(Errno::NoEnt), "missing"));
        match op {
            LayerOp::Walk => Completion::Listed(self.entries.keys().map(|p| self.stat(p)).collect()),
            LayerOp::Read { path, range } => match self.entries.get(path) {
                Some(Some(c)) => {
                    let end = (range.end as usize).min(c.len());
                    Completion::Bytes(vec![Bytes::copy_from_slice(&c[range.start as usize..end])])
                }
                _ => missing(),
            },
            LayerOp::Write { path, offset, data, .. } => match self.entries.get_mut(path) {
                Some(Some(c)) => {
                    let end = *offset as usize + data.len();
                    if c.len() < end {
                        c.resize(end, 0);
                    }
                    c[*offset as usize..end].copy_from_slice(data);
                    Completion::Done
                }
                _ => missing(),
            },
            LayerOp::Create { path, dir, make_parents, .. } => {
                for (p, _) in make_parents {
                    self.entries.entry(p.clone()).or_insert(None);
                }
                self.entries.insert(path.clone(), if *dir { None } else { Some(Vec::new()) });
                Completion::Listed(vec![self.stat(path)])
            }
            LayerOp::SetAttr { path, change } => {
                if let (Some(size), Some(Some(c))) = (change.size, self.entries.get_mut(path)) {
                    c.resize(size as usize, 0);
                }
                Completion::Listed(vec![self.stat(path)])
            }
            LayerOp::Unlink { path } | LayerOp::Rmdir { path } => match self.entries.remove(path) {
                Some(_) => Completion::Done,
                None => missing(),
            },
            LayerOp::Rename { from, to, make_parents, .. } => {
                for (p, _) in make_parents {
                    self.entries.entry(p.clone()).or_insert(None);
                }
                let moved: Vec<String> =
                    self.entries.keys().filter(|k| *k == from || k.starts_with(&format!("{from}/"))).cloned().collect();
                for k in moved {
                    let v = self.entries.remove(&k).unwrap();
                    self.entries.insert(format!("{to}{}", &k[from.len()..]), v);
                }
                Completion::Done
            }
            LayerOp::Sync { .. } => Completion::Done,
        }
    }
}

/// The remote tree of the repo: its root and `sub/`.
const ROOT_TREE: &str = r#"[{"type":"file","oid":"r","size":6,"path":"README.md"},
    {"type":"file","oid":"a","size":8,"path":"remote.txt"},
    {"type":"directory","oid":"d","size":0,"path":"sub"}]"#;
const SUB_TREE: &str = r#"[{"type":"file","oid":"s","size":5,"path":"sub/a.txt"}]"#;

struct World {
    fs: Filesystem,
    layer: FakeLayer,
    /// Layer ops seen, in the order core started them.
    ops: Vec<LayerOp>,
    hub_gets: Vec<String>,
    now: Instant,
}

impl World {
    fn mount(layer: FakeLayer) -> World {
        let mut cfg = repo_cfg("main");
        cfg.overlay = true;
        let mut w =
            World { fs: Filesystem::new(cfg), layer, ops: Vec::new(), hub_gets: Vec::new(), now: Instant::ZERO };
        let id = expect_get(&mut w.fs, "http://hub/api/models/a/b/revision/main");
        let info = format!(r#"{{"id":"a/b","sha":"{SHA}","lastModified":"2026-01-02T03:04:05.000Z"}}"#);
        w.fs.handle_completion(id, http(200, &info), w.now);
        assert!(w.fs.poll_mounted().is_none(), "live before the layer was read");
        w.settle();
        assert!(matches!(w.fs.poll_mounted(), Some(Ok(info)) if info.writable));
        w
    }

    /// Run every effect until none is left (layer ops and Hub listings).
    fn settle(&mut self) {
        while let Some((id, effect)) = self.fs.poll_effect() {
            let done = self.complete(effect);
            self.fs.handle_completion(id, done, self.now);
        }
    }

    fn complete(&mut self, effect: Effect) -> Completion {
        match effect {
            Effect::Layer(op) => {
                let done = self.layer.execute(&op);
                self.ops.push(op);
                done
            }
            Effect::HubGet { url } => {
                self.hub_gets.push(url.clone());
                let root = format!("http://hub/api/models/a/b/tree/{SHA}?limit=1000");
                let sub = format!("http://hub/api/models/a/b/tree/{SHA}/sub?limit=1000");
                match url {
                    u if u == root => http(200, ROOT_TREE),
                    u if u == sub => http(200, SUB_TREE),
                    _ => http(404, r#"{"error":"not found"}"#),
                }
            }
            other => panic!("unexpected effect {other:?}"),
        }
    }

    fn ask(&mut self, req: Request) -> Reply {
        self.fs.handle_request(RequestId(1), Caller::new(7, 8), req, self.now);
        self.settle();
        let (id, reply) = self.fs.poll_reply().expect("answered");
        assert_eq!(id, RequestId(1));
        reply
    }

    fn lookup(&mut self, parent: Ino, name: &str) -> Reply {
        self.ask(Request::Lookup { parent, name: name.into() })
    }

    fn ino(&mut self, parent: Ino, name: &str) -> Ino {
        entry(self.lookup(parent, name)).ino
    }

    fn names(&mut self, dir: Ino) -> Vec<String> {
        match self.ask(Request::ReadDir { ino: dir, offset: 0, plus: false, budget: fuse_budget(false) }) {
            Reply::Dir { entries, .. } => {
                entries.into_iter().map(|e| e.name).filter(|n| n != "." && n != "..").collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn read(&mut self, ino: Ino) -> Vec<u8> {
        match self.ask(Request::Read { ino, fh: None, offset: 0, size: 1 << 20 }) {
            Reply::Data { data, .. } => data.to_vec(),
            other => panic!("{other:?}"),
        }
    }
}

fn layer_with_local_files() -> FakeLayer {
    FakeLayer::with(&[
        ("README.md", Some("local readme")),
        ("notes.txt", Some("mine")),
        ("sub", None),
        ("sub/x.txt", Some("x")),
    ])
}

#[test]
fn the_layer_is_read_before_the_mount_goes_live_and_wins_on_a_clash() {
    let mut w = World::mount(layer_with_local_files());
    assert_eq!(w.ops, vec![LayerOp::Walk]);
    let mut names = w.names(ROOT_INO);
    names.sort();
    assert_eq!(names, ["README.md", "notes.txt", "remote.txt", "sub"]);
    let readme = w.ino(ROOT_INO, "README.md");
    assert_eq!(w.read(readme), b"local readme");
    let sub = w.ino(ROOT_INO, "sub");
    let mut names = w.names(sub);
    names.sort();
    assert_eq!(names, ["a.txt", "x.txt"]);
    let attr = entry(w.lookup(sub, "x.txt"));
    assert_eq!((attr.perm, attr.size), (0o640, 1), "layer attributes");
    assert_eq!(entry(w.lookup(sub, "a.txt")).perm, 0o444, "remote files stay read-only");
}

#[test]
fn changing_a_remote_only_entry_is_refused() {
    let mut w = World::mount(layer_with_local_files());
    let remote = w.ino(ROOT_INO, "remote.txt");
    let sub = w.ino(ROOT_INO, "sub");
    assert_eq!(errno(w.ask(Request::Open { ino: remote, write: true, truncate: false })), Errno::Acces);
    assert_eq!(errno(w.ask(Request::Open { ino: remote, write: false, truncate: true })), Errno::Acces);
    let chmod = SetAttr { mode: Some(0o600), ..SetAttr::default() };
    assert_eq!(errno(w.ask(Request::SetAttr { ino: remote, set: chmod, guard_ctime: None })), Errno::Perm);
    let truncate = SetAttr { size: Some(0), ..SetAttr::default() };
    assert_eq!(errno(w.ask(Request::SetAttr { ino: remote, set: truncate, guard_ctime: None })), Errno::Acces);
    let write = Request::Write {
        ino: remote,
        fh: None,
        offset: 0,
        data: Bytes::from_static(b"x"),
        stable: Stability::Unstable,
    };
    assert_eq!(errno(w.ask(write)), Errno::Acces);
    assert_eq!(errno(w.ask(Request::Unlink { parent: ROOT_INO, name: "remote.txt".into() })), Errno::Acces);
    let rename = Request::Rename {
        parent: ROOT_INO,
        name: "remote.txt".into(),
        new_parent: ROOT_INO,
        new_name: "r2".into(),
        no_replace: false,
    };
    assert_eq!(errno(w.ask(rename)), Errno::Acces);
    // A layer file may not replace a remote-only one either.
    let over = Request::Rename {
        parent: sub,
        name: "x.txt".into(),
        new_parent: sub,
        new_name: "a.txt".into(),
        no_replace: false,
    };
    assert_eq!(errno(w.ask(over)), Errno::Acces);
    assert_eq!(
        errno(w.ask(Request::Symlink { parent: ROOT_INO, name: "l".into(), target: "/etc".into() })),
        Errno::Perm
    );
    assert_eq!(w.ops, vec![LayerOp::Walk], "nothing reached the layer");
}

#[test]
fn a_file_in_a_remote_only_directory_creates_the_directory_in_the_layer() {
    let layer = FakeLayer::with(&[("notes.txt", Some("mine"))]);
    let mut w = World::mount(layer);
    let sub = w.ino(ROOT_INO, "sub");
    let how = CreateHow::Guarded;
    let created = w.ask(Request::Create { parent: sub, name: "new.txt".into(), mode: 0o644, how, open: true });
    let ino = entry(created).ino;
    assert!(matches!(
        w.ops.last(),
        Some(LayerOp::Create { path, make_parents, .. }) if path == "sub/new.txt" && make_parents == &[("sub".to_string(), 0o755)]
    ));
    let write =
        Request::Write { ino, fh: Some(1), offset: 0, data: Bytes::from_static(b"hello"), stable: Stability::Unstable };
    assert!(matches!(w.ask(write), Reply::Written { size: 5, .. }));
    assert_eq!(w.read(ino), b"hello");
    assert_eq!(w.layer.entries.get("sub/new.txt"), Some(&Some(b"hello".to_vec())));
    // The directory is the layer's now: a second file needs no parent.
    w.ask(Request::Create { parent: sub, name: "b.txt".into(), mode: 0o644, how, open: false });
    assert!(matches!(w.ops.last(), Some(LayerOp::Create { make_parents, .. }) if make_parents.is_empty()));
}

#[test]
fn a_layer_directory_the_remote_lacks_lists_its_layer_entries() {
    let layer = FakeLayer::with(&[("runs", None), ("runs/log.txt", Some("l"))]);
    let mut w = World::mount(layer);
    let runs = w.ino(ROOT_INO, "runs");
    assert_eq!(w.names(runs), ["log.txt"], "the remote's 404 is an empty listing");
}

#[test]
fn name_changes_wait_for_reads_in_flight_and_run_alone() {
    let mut w = World::mount(layer_with_local_files());
    let notes = w.ino(ROOT_INO, "notes.txt");
    let readme = w.ino(ROOT_INO, "README.md");
    w.ops.clear();
    let t = Instant::ZERO;
    w.fs.handle_request(
        RequestId(10),
        Caller::new(7, 8),
        Request::Read { ino: notes, fh: None, offset: 0, size: 9 },
        t,
    );
    w.fs.handle_request(
        RequestId(11),
        Caller::new(7, 8),
        Request::Read { ino: readme, fh: None, offset: 0, size: 9 },
        t,
    );
    let unlink = Request::Unlink { parent: ROOT_INO, name: "notes.txt".into() };
    w.fs.handle_request(RequestId(12), Caller::new(7, 8), unlink, t);
    let (a, _) = w.fs.poll_effect().expect("first read");
    let (b, _) = w.fs.poll_effect().expect("second read, beside the first");
    assert!(w.fs.poll_effect().is_none(), "the unlink waits for both reads");
    w.fs.handle_completion(a, Completion::Bytes(vec![Bytes::from_static(b"mine")]), t);
    assert!(w.fs.poll_effect().is_none(), "one read still in flight");
    w.fs.handle_completion(b, Completion::Bytes(vec![Bytes::from_static(b"local")]), t);
    assert!(matches!(w.fs.poll_effect(), Some((_, Effect::Layer(LayerOp::Unlink { path }))) if path == "notes.txt"));
}

#[test]
fn removing_the_local_file_that_hid_a_remote_one_shows_the_remote_one() {
    let mut w = World::mount(layer_with_local_files());
    w.names(ROOT_INO);
    let before = w.hub_gets.len();
    assert!(matches!(w.ask(Request::Unlink { parent: ROOT_INO, name: "README.md".into() }), Reply::Removed { .. }));
    assert_eq!(w.hub_gets.len(), before + 1, "the directory is listed again");
    let readme = entry(w.lookup(ROOT_INO, "README.md"));
    assert_eq!((readme.size, readme.perm), (6, 0o444), "the remote file is back");
    assert!(w
        .fs
        .out
        .notifies
        .iter()
        .any(|n| matches!(n, KernelNotify::InvalidateEntry { name, .. } if name == "README.md")));
}

#[test]
fn a_file_removed_while_open_lives_until_its_last_close() {
    let mut w = World::mount(layer_with_local_files());
    let notes = w.ino(ROOT_INO, "notes.txt");
    let Reply::Open { fh, .. } = w.ask(Request::Open { ino: notes, write: true, truncate: false }) else { panic!() };
    w.ask(Request::Unlink { parent: ROOT_INO, name: "notes.txt".into() });
    let hidden = format!("{}/{notes:016x}", super::super::overlay::DELETED_DIR);
    assert!(matches!(w.ops.last(), Some(LayerOp::Rename { to, .. }) if *to == hidden));
    assert_eq!(errno(w.lookup(ROOT_INO, "notes.txt")), Errno::NoEnt);
    assert_eq!(w.read(notes), b"mine", "still readable through the open handle");
    assert!(!w.names(ROOT_INO).contains(&".hf-mount-deleted".to_string()));
    w.ask(Request::Release { fh });
    assert_eq!(w.ops.last(), Some(&LayerOp::Unlink { path: hidden.clone() }));
    assert!(!w.layer.entries.contains_key(&hidden));
}

#[test]
fn what_an_earlier_mount_left_removed_while_open_is_cleared_at_the_walk() {
    let layer = FakeLayer::with(&[(".hf-mount-deleted", None), (".hf-mount-deleted/00000000000000aa", Some("old"))]);
    let mut w = World::mount(layer);
    assert!(w.ops.contains(&LayerOp::Unlink { path: ".hf-mount-deleted/00000000000000aa".into() }));
    assert!(!w.names(ROOT_INO).contains(&".hf-mount-deleted".to_string()));
    let reserved = Request::Mkdir { parent: ROOT_INO, name: ".hf-mount-deleted".into(), mode: 0o755 };
    assert_eq!(errno(w.ask(reserved)), Errno::Acces);
}

#[test]
fn renaming_moves_a_layer_directory_and_creates_the_target_parent() {
    let mut w = World::mount(FakeLayer::with(&[("runs", None), ("runs/a.txt", Some("a"))]));
    let sub = w.ino(ROOT_INO, "sub");
    let rename = Request::Rename {
        parent: ROOT_INO,
        name: "runs".into(),
        new_parent: sub,
        new_name: "runs2".into(),
        no_replace: false,
    };
    assert!(matches!(w.ask(rename), Reply::Renamed { .. }));
    assert!(matches!(w.ops.last(), Some(LayerOp::Rename { from, to, make_parents, .. })
        if from == "runs" && to == "sub/runs2" && make_parents == &[("sub".to_string(), 0o755)]));
    let runs2 = w.ino(sub, "runs2");
    let a = w.ino(runs2, "a.txt");
    assert_eq!(w.read(a), b"a");
    assert_eq!(w.layer.entries.get("sub/runs2/a.txt"), Some(&Some(b"a".to_vec())));
}

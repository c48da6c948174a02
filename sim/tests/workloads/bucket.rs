//! Deterministic simulation of a writable bucket mount, in three flavours: streaming and
//! advanced writes as FUSE sends them (handles, closes), and NFS-style (no handles, creates
//! without open, stable writes, COMMIT, permission checks in core). A simulated kernel
//! creates, writes, edits, truncates, renames files and directories, links, unlinks, makes
//! directories and symlinks, changes modes and times, lists, reads and fsyncs, while a
//! simulated Hub, CAS and disk complete effects in random order with transient faults, final
//! stream failures and clock jumps, and a remote client changes the bucket (also under files
//! being written: local changes must win). Checked against a reference model: every read
//! returns the newest content, every fsync'd file is in the bucket when fsync returns, and
//! after the unmount drain the bucket equals the model. Replay one seed with
//! `SIM_SEED=<n> cargo test --release -p hfm-sim --test bucket`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use hfm_core::config::{AccessPolicy, Source, WriteMode, WritePolicy};
use hfm_core::{
    Caller, CreateHow, DirBudget, DrainOutcome, FallocMode, FileKind, MountConfig, Reply, Request, SetAttr, Stability,
    TimeSet, ROOT_INO,
};
use hfm_sim::{content_hash, Sim, World};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Streaming,
    Advanced,
    Nfs,
}

const OWNER: u32 = 1000;

struct Run {
    sim: Sim,
    flavour: Flavour,
    files: BTreeMap<String, Vec<u8>>,
    /// Directories that exist in the mount (besides those files imply).
    dirs: BTreeSet<String>,
    /// Files a remote client wrote under `remote/` (the mount never changes them).
    remote: BTreeMap<String, Vec<u8>>,
    /// Files (also in `files`) at paths the Hub refuses: left alone by the other ops.
    refused: BTreeSet<String>,
    /// A file at a refused path is being written: stable writes may report the refusal.
    writing_refused: bool,
    caller: Caller,
    ctx: String,
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn ok(ctx: &str, what: &str, reply: &Reply) {
    assert!(!matches!(reply, Reply::Error(_)), "{ctx}: {what} failed: {reply:?}");
}

/// Failures that only say the Hub or CAS did not answer (in time).
fn is_transient(e: &hfm_core::FsError) -> bool {
    matches!(e.label, "hub_unavailable" | "hub_rate_limited" | "read_timeout")
}

/// A request that waits for background work (an upload, a commit) may report that work's
/// failure; the change itself is done and stays queued. Anything else is a bug.
fn ok_or_outage(ctx: &str, what: &str, reply: &Reply) -> bool {
    match reply {
        Reply::Error(e) if is_transient(e) => false,
        other => {
            ok(ctx, what, other);
            true
        }
    }
}

fn ino_of(ctx: &str, reply: &Reply) -> u64 {
    match reply {
        Reply::Entry { attr, .. } | Reply::Created { attr, .. } => attr.ino,
        other => panic!("{ctx}: expected an entry, got {other:?}"),
    }
}

impl Run {
    fn lookup(&mut self, path: &str) -> Option<u64> {
        let mut ino = ROOT_INO;
        if path.is_empty() {
            return Some(ino);
        }
        for name in path.split('/') {
            match self.call(Request::Lookup { parent: ino, name: name.into() }) {
                Reply::Entry { attr, .. } => ino = attr.ino,
                Reply::Error(e) if e.errno == hfm_core::Errno::NoEnt => return None,
                other => panic!("{}: lookup {path}: {other:?}", self.ctx),
            }
        }
        Some(ino)
    }

    fn must(&mut self, path: &str) -> u64 {
        self.lookup(path).unwrap_or_else(|| panic!("{}: {path} is missing", self.ctx))
    }

    /// Send `req`, again while it fails because the simulated Hub or CAS did not answer in
    /// time (clock jumps pass deadlines): a request that fails that way changed nothing, except
    /// those that wait for background work after their change (directory renames, stable
    /// writes), which are sent once and checked with `ok_or_outage`.
    fn call(&mut self, req: Request) -> Reply {
        let once = matches!(req, Request::Rename { .. })
            || matches!(req, Request::Write { stable, .. } if stable != Stability::Unstable);
        let mut reply = self.sim.call_as(self.caller.clone(), req.clone());
        for _ in 0..20 {
            match &reply {
                Reply::Error(e) if !once && is_transient(e) => {
                    reply = self.sim.call_as(self.caller.clone(), req.clone());
                }
                _ => break,
            }
        }
        reply
    }

    fn random_bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.sim.rng.below(max) + 1;
        (0..n).map(|_| self.sim.rng.next_u64() as u8).collect()
    }

    fn pick_file(&mut self) -> Option<String> {
        let names: Vec<&String> = self.files.keys().filter(|p| !self.refused.contains(*p)).collect();
        (!names.is_empty()).then(|| names[self.sim.rng.below(names.len() as u64) as usize].clone())
    }

    fn pick_dir(&mut self) -> String {
        let mut all: Vec<String> = vec![String::new()];
        all.extend(self.dirs.iter().cloned());
        all[self.sim.rng.below(all.len() as u64) as usize].clone()
    }

    fn join(dir: &str, name: &str) -> String {
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    }

    fn write_at(&mut self, ino: u64, fh: Option<u64>, offset: u64, data: Vec<u8>) {
        let stable = match self.flavour {
            Flavour::Nfs if self.sim.rng.below(10) == 0 => Stability::FileSync,
            _ => Stability::Unstable,
        };
        self.write_with(ino, fh, offset, data, stable);
    }

    fn write_with(&mut self, ino: u64, fh: Option<u64>, offset: u64, data: Vec<u8>, stable: Stability) {
        let r = self.call(Request::Write { ino, fh, offset, data: Bytes::from(data), stable });
        let ctx = self.ctx.clone();
        let refusal = matches!(&r, Reply::Error(e) if e.detail.contains("the Hub refuses"));
        if stable == Stability::Unstable {
            ok(&ctx, "write", &r);
        } else if !(self.writing_refused && refusal) {
            ok_or_outage(&ctx, "stable write", &r);
        }
        if let Reply::Written { committed, .. } = r {
            assert_eq!(committed, stable, "{ctx}: write stability");
        }
    }

    /// Create `path` and write it sequentially (close included, as the flavour does it).
    fn create(&mut self, path: &str) {
        let closed = self.create_unchecked(path);
        ok_or_outage(&self.ctx.clone(), "close", &closed);
    }

    /// `create` without judging what close answered; returns that answer.
    fn create_unchecked(&mut self, path: &str) -> Reply {
        let (dir, name) = split(path);
        let parent = self.must(dir);
        let mut data = Vec::new();
        let chunks = self.sim.rng.below(4);
        match self.flavour {
            Flavour::Nfs => {
                let how = if self.sim.rng.below(2) == 0 {
                    CreateHow::Guarded
                } else {
                    CreateHow::Exclusive { verifier: self.sim.rng.next_u64() }
                };
                let r = self.call(Request::Create { parent, name: name.into(), mode: 0o644, how, open: false });
                let ino = ino_of(&self.ctx, &r);
                if let CreateHow::Exclusive { .. } = how {
                    // A retransmitted exclusive create finds its own file.
                    let again = self.call(Request::Create { parent, name: name.into(), mode: 0o644, how, open: false });
                    assert_eq!(ino_of(&self.ctx, &again), ino, "{}: exclusive create retransmitted", self.ctx);
                }
                // NFS clients write out of order: the chunks go out shuffled.
                let mut pieces = Vec::new();
                for _ in 0..chunks {
                    let chunk = self.random_bytes(3000);
                    pieces.push((data.len() as u64, chunk.clone()));
                    data.extend(chunk);
                }
                while !pieces.is_empty() {
                    let (offset, chunk) = pieces.swap_remove(self.sim.rng.below(pieces.len() as u64) as usize);
                    self.write_at(ino, None, offset, chunk);
                }
            }
            _ => {
                let r = self.call(Request::Create {
                    parent,
                    name: name.into(),
                    mode: 0o644,
                    how: CreateHow::Guarded,
                    open: true,
                });
                let Reply::Created { attr, fh: Some(fh), .. } = r else { panic!("{}: create: {r:?}", self.ctx) };
                for _ in 0..chunks {
                    let chunk = self.random_bytes(3000);
                    self.write_at(attr.ino, Some(fh), data.len() as u64, chunk.clone());
                    data.extend(chunk);
                }
                let closed = self.call(Request::Flush { ino: attr.ino, fh });
                self.call(Request::Release { fh });
                self.files.insert(path.to_string(), data);
                return closed;
            }
        }
        self.files.insert(path.to_string(), data);
        Reply::Empty
    }

    /// A file at a path the Hub refuses: close (streaming) or fsync says so and names it, the
    /// file stays in the mount as written, and every other file still commits. Half the time
    /// the Hub is made to accept it at once and an fsync commits it; otherwise it stays
    /// refused until the end of the run.
    fn refused_path(&mut self, step: usize) {
        let path = Run::join(&self.pick_dir(), &format!("refused{step}"));
        self.sim.world().bucket.as_mut().expect("a bucket").refused.push(path.clone());
        self.writing_refused = true;
        let closed = self.create_unchecked(&path);
        self.writing_refused = false;
        let is_refusal =
            |r: &Reply| matches!(r, Reply::Error(e) if e.errno == hfm_core::Errno::Io && e.detail.contains(&path));
        if self.flavour == Flavour::Streaming {
            assert!(
                is_refusal(&closed) || ok_or_outage(&self.ctx, "close", &closed),
                "{}: close: {closed:?}",
                self.ctx
            );
        } else {
            ok(&self.ctx, "close", &closed);
        }
        let ino = self.must(&path);
        let req = match self.flavour {
            Flavour::Nfs => Request::Commit { ino, range: 0..0 },
            _ => Request::Fsync { ino },
        };
        let mut answer = self.call(req.clone());
        for _ in 0..20 {
            if is_refusal(&answer) {
                break;
            }
            assert!(!ok_or_outage(&self.ctx.clone(), "fsync", &answer), "{}: fsync of {path} succeeded", self.ctx);
            answer = self.call(req.clone());
        }
        assert!(is_refusal(&answer), "{}: fsync of refused {path}: {answer:?}", self.ctx);
        self.read_back(&path);
        self.refused.insert(path.clone());
        if let Some(other) = self.pick_file() {
            self.sync(&other);
        }
        if self.sim.rng.below(2) == 0 {
            self.sim.world().bucket.as_mut().expect("a bucket").refused.retain(|p| *p != path);
            self.refused.remove(&path);
            self.sync(&path);
        }
    }

    /// Edit an existing file the ways programs do, in every flavour: rewritten from scratch or
    /// in place, appended to, written past its end (a hole), at random offsets, grown or shrunk
    /// with truncate, grown or zeroed with fallocate.
    fn edit(&mut self, path: &str) {
        let ino = self.must(path);
        let truncate = self.flavour != Flavour::Nfs && self.sim.rng.below(3) == 0;
        let fh = match self.flavour {
            Flavour::Nfs => None,
            _ => {
                let r = self.call(Request::Open { ino, write: true, truncate });
                let Reply::Open { fh, .. } = r else { panic!("{}: open {path}: {r:?}", self.ctx) };
                Some(fh)
            }
        };
        let mut data = self.files.get(path).cloned().unwrap_or_default();
        if truncate {
            data.clear();
        }
        for _ in 0..self.sim.rng.below(3) + 1 {
            let offset = match self.sim.rng.below(3) {
                0 => data.len(),
                1 => data.len() + self.sim.rng.below(3000) as usize,
                _ => self.sim.rng.below(data.len() as u64 + 1) as usize,
            };
            let chunk = self.random_bytes(2000);
            if std::env::var("SIM_DEBUG").is_ok() {
                eprintln!(
                    "{}: edit {path} (truncate {truncate}) write {offset}+{} (size {})",
                    self.ctx,
                    chunk.len(),
                    data.len()
                );
            }
            self.write_at(ino, fh, offset as u64, chunk.clone());
            if data.len() < offset + chunk.len() {
                data.resize(offset + chunk.len(), 0);
            }
            data[offset..offset + chunk.len()].copy_from_slice(&chunk);
        }
        match self.sim.rng.below(6) {
            0 | 1 => {
                let size = self.sim.rng.below(data.len() as u64 + 3000);
                if std::env::var("SIM_DEBUG").is_ok() {
                    eprintln!("{}: truncate to {size} (size {})", self.ctx, data.len());
                }
                let set = SetAttr { size: Some(size), ..Default::default() };
                let r = self.call(Request::SetAttr { ino, set, guard_ctime: None });
                ok(&self.ctx.clone(), "truncate", &r);
                data.resize(size as usize, 0);
            }
            2 => {
                let (offset, length) = (self.sim.rng.below(data.len() as u64 + 100), self.sim.rng.below(4000));
                let (end, keep_size) = ((offset + length) as usize, self.sim.rng.below(2) == 0);
                let mode = match self.sim.rng.below(3) {
                    0 => FallocMode::Allocate { keep_size },
                    1 => FallocMode::PunchHole,
                    _ => FallocMode::ZeroRange { keep_size },
                };
                if std::env::var("SIM_DEBUG").is_ok() {
                    eprintln!("{}: fallocate {offset}+{length} {mode:?} (size {})", self.ctx, data.len());
                }
                let r = self.call(Request::Fallocate { ino, offset, length, mode });
                ok(&self.ctx.clone(), "fallocate", &r);
                let zero_end = match mode {
                    FallocMode::Allocate { .. } => 0,
                    FallocMode::PunchHole | FallocMode::ZeroRange { keep_size: true } => end.min(data.len()),
                    FallocMode::ZeroRange { keep_size: false } => end,
                };
                let grows = !matches!(
                    mode,
                    FallocMode::PunchHole
                        | FallocMode::Allocate { keep_size: true }
                        | FallocMode::ZeroRange { keep_size: true }
                );
                if grows && end > data.len() {
                    data.resize(end, 0);
                }
                for b in data.iter_mut().take(zero_end).skip(offset as usize) {
                    *b = 0;
                }
            }
            _ => {}
        }
        if let Some(fh) = fh {
            let r = self.call(Request::Flush { ino, fh });
            ok_or_outage(&self.ctx.clone(), "close", &r);
            self.call(Request::Release { fh });
        }
        self.files.insert(path.to_string(), data);
    }

    /// A checkpoint the way ML libraries write one: a temporary file given its final size in
    /// advance, written sequentially, closed, then renamed over the target.
    fn checkpoint(&mut self, target: &str, step: usize) {
        let (dir, _) = split(target);
        let tmp = Run::join(dir, &format!(".tmp-{step}"));
        let (parent, name) = (self.must(dir), split(&tmp).1.to_string());
        let create =
            Request::Create { parent, name, mode: 0o644, how: CreateHow::Guarded, open: self.flavour != Flavour::Nfs };
        let r = self.call(create);
        let ino = ino_of(&self.ctx, &r);
        let fh = match r {
            Reply::Created { fh, .. } => fh,
            _ => None,
        };
        let size = 1000 + self.sim.rng.below(6000);
        let set = SetAttr { size: Some(size), ..Default::default() };
        ok(&self.ctx.clone(), "ftruncate", &self.call(Request::SetAttr { ino, set, guard_ctime: None }));
        let mut data = Vec::new();
        while (data.len() as u64) < size {
            let n = (size - data.len() as u64).min(1 + self.sim.rng.below(1500));
            let chunk: Vec<u8> = (0..n).map(|_| self.sim.rng.next_u64() as u8).collect();
            self.write_at(ino, fh, data.len() as u64, chunk.clone());
            data.extend(chunk);
        }
        if let Some(fh) = fh {
            ok_or_outage(&self.ctx.clone(), "close", &self.call(Request::Flush { ino, fh }));
            self.call(Request::Release { fh });
        }
        self.files.insert(tmp.clone(), data);
        self.rename(&tmp, target);
    }

    fn read_back(&mut self, path: &str) {
        let ino = self.must(path);
        let want = self.files.get(path).or(self.remote.get(path)).cloned().unwrap_or_default();
        match self.call(Request::GetAttr { ino }) {
            Reply::Attr { attr, .. } => assert_eq!(attr.size, want.len() as u64, "{}: size of {path}", self.ctx),
            other => panic!("{}: getattr {path}: {other:?}", self.ctx),
        }
        let r = self.call(Request::Read { ino, fh: None, offset: 0, size: 1 << 20 });
        let Reply::Data { data, eof } = r else { panic!("{}: read {path}: {r:?}", self.ctx) };
        if std::env::var("SIM_DEBUG").is_ok() && data[..] != want[..] {
            eprintln!(
                "{}: {path} got {:?} want {:?} ino {ino}",
                self.ctx,
                String::from_utf8_lossy(&data),
                String::from_utf8_lossy(&want)
            );
        }
        assert!(data[..] == want[..], "{}: {path} read back different bytes", self.ctx);
        assert!(eof, "{}: a whole read of {path} ends at eof", self.ctx);
    }

    /// fsync (or NFS COMMIT): once it answers, the bucket holds the file as the model has it.
    fn sync(&mut self, path: &str) {
        let ino = self.must(path);
        let req = match self.flavour {
            Flavour::Nfs => Request::Commit { ino, range: 0..0 },
            _ => Request::Fsync { ino },
        };
        // An outage reported by fsync keeps the change queued: the next fsync retries it.
        let mut synced = false;
        for _ in 0..20 {
            let r = self.call(req.clone());
            if ok_or_outage(&self.ctx.clone(), "fsync", &r) {
                synced = true;
                break;
            }
        }
        assert!(synced, "{}: fsync of {path} kept failing", self.ctx);
        let world = self.sim.world();
        let (hash, _) = world
            .bucket
            .as_ref()
            .and_then(|b| b.files.get(path))
            .cloned()
            .unwrap_or_else(|| panic!("{}: fsync'd {path} not in the bucket", self.ctx));
        let want = &self.files[path];
        if std::env::var("SIM_DEBUG").is_ok() && hash != content_hash(want) {
            let got = world.content(&hash).map(|c| c.to_vec()).unwrap_or_default();
            let diff = got.iter().zip(want.iter()).position(|(a, b)| a != b);
            eprintln!(
                "{}: bucket {} bytes, model {} bytes, first difference at {diff:?}; bucket starts {:?}",
                self.ctx,
                got.len(),
                want.len(),
                &got[..got.len().min(20)]
            );
        }
        assert_eq!(hash, content_hash(want), "{}: fsync'd {path} has other content in the bucket", self.ctx);
    }

    fn rename(&mut self, from: &str, to: &str) {
        let ((d1, n1), (d2, n2)) = (split(from), split(to));
        let (p1, p2) = (self.must(d1), self.must(d2));
        let r = self.call(Request::Rename {
            parent: p1,
            name: n1.into(),
            new_parent: p2,
            new_name: n2.into(),
            no_replace: false,
        });
        // A directory rename waits for its commit; an outage there leaves it done in the mount.
        ok_or_outage(&self.ctx.clone(), "rename", &r);
        let moved: Vec<(String, Vec<u8>)> = self
            .files
            .iter()
            .filter(|(p, _)| *p == from || p.starts_with(&format!("{from}/")))
            .map(|(p, d)| (p.clone(), d.clone()))
            .collect();
        for (p, d) in moved {
            self.files.remove(&p);
            self.files.insert(format!("{to}{}", &p[from.len()..]), d);
        }
        let dirs: Vec<String> =
            self.dirs.iter().filter(|d| *d == from || d.starts_with(&format!("{from}/"))).cloned().collect();
        for d in dirs {
            self.dirs.remove(&d);
            self.dirs.insert(format!("{to}{}", &d[from.len()..]));
        }
    }

    /// A remote client changes `remote/…` while the mount runs; within the poll interval plus
    /// the listing TTL (plus the latency of the calls involved) the mount shows it.
    fn remote_change(&mut self, step: usize) {
        let path = format!("remote/r{}", self.sim.rng.below(4));
        if self.remote.contains_key(&path) && self.sim.rng.below(3) == 0 {
            self.sim.world().remote_delete(&path);
            self.remote.remove(&path);
        } else {
            let data = format!("remote {step}").into_bytes();
            self.sim.world().remote_put(&path, &data);
            self.remote.insert(path.clone(), data);
        }
        let want = self.remote.get(&path).cloned();
        for _ in 0..60 {
            let until = self.sim.now.saturating_add(Duration::from_secs(1));
            while self.sim.now < until {
                if !self.sim.tick() {
                    self.sim.jump_to_timer();
                }
            }
            let seen = match self.lookup(&path) {
                None => None,
                Some(ino) => match self.call(Request::Read { ino, fh: None, offset: 0, size: 1 << 20 }) {
                    Reply::Data { data, .. } => Some(data.to_vec()),
                    other => panic!("{}: read {path}: {other:?}", self.ctx),
                },
            };
            if seen == want {
                return;
            }
        }
        panic!("{}: the mount never showed the remote change of {path}", self.ctx);
    }

    /// A remote client writes a file the mount is writing: the local change wins.
    fn conflict(&mut self, path: &str) {
        let ino = self.must(path);
        let fh = match self.flavour {
            Flavour::Nfs => None,
            f => match self.call(Request::Open { ino, write: true, truncate: f == Flavour::Streaming }) {
                Reply::Open { fh, .. } => Some(fh),
                other => panic!("{}: open {path}: {other:?}", self.ctx),
            },
        };
        let data = self.random_bytes(1000);
        // Unstable: the local change is not committed before the remote one lands.
        self.write_with(ino, fh, 0, data.clone(), Stability::Unstable);
        let mut local = if self.flavour == Flavour::Streaming { Vec::new() } else { self.files[path].clone() };
        if local.len() < data.len() {
            local.resize(data.len(), 0);
        }
        local[..data.len()].copy_from_slice(&data);
        self.sim.world().remote_put(path, b"the remote version");
        for _ in 0..20 {
            self.sim.tick();
        }
        if let Some(fh) = fh {
            ok_or_outage(&self.ctx.clone(), "close", &self.call(Request::Flush { ino, fh }));
            self.call(Request::Release { fh });
        }
        self.files.insert(path.to_string(), local);
        self.sync(path);
        self.read_back(path);
    }

    /// The names a readdir of `dir` shows, page by page.
    fn list(&mut self, dir: &str) -> BTreeSet<String> {
        let ino = self.must(dir);
        let mut got = BTreeSet::new();
        let mut offset = 0;
        loop {
            let budget = DirBudget { bytes: 4096, entry_fixed: 152, name_align: 8 };
            let r = self.call(Request::ReadDir { ino, offset, plus: true, budget });
            let Reply::Dir { entries, eof, .. } = r else { panic!("{}: readdir {dir}: {r:?}", self.ctx) };
            for e in &entries {
                if e.name != "." && e.name != ".." {
                    assert!(got.insert(e.name.clone()), "{}: {} listed twice in {dir:?}", self.ctx, e.name);
                }
                offset = e.next_offset;
            }
            if eof {
                break;
            }
        }
        // Symlinks and specials live in the mount only; the model has none in listed dirs.
        got.retain(|n| !n.starts_with("sym") && !n.starts_with("fifo"));
        got
    }

    /// A readdir of `dir` shows the model. Local changes show at once; a remote one may take a
    /// while longer when a re-listing failed (the last listing is served meanwhile).
    fn readdir_matches(&mut self, dir: &str) {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut want = BTreeSet::new();
        for p in self.files.keys().chain(self.remote.keys()).chain(self.dirs.iter()) {
            if let Some(rest) = p.strip_prefix(&prefix) {
                if !rest.is_empty() {
                    want.insert(rest.split('/').next().unwrap_or_default().to_string());
                }
            }
        }
        let remote_only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
            a.symmetric_difference(b).all(|n| prefix == "remote/" || (prefix.is_empty() && n == "remote"))
        };
        let mut got = self.list(dir);
        for _ in 0..60 {
            if got == want || !remote_only(&got, &want) {
                break;
            }
            let until = self.sim.now.saturating_add(Duration::from_secs(1));
            while self.sim.now < until {
                if !self.sim.tick() {
                    self.sim.jump_to_timer();
                }
            }
            got = self.list(dir);
        }
        if std::env::var("SIM_DEBUG").is_ok() && got != want {
            let keys: Vec<String> = self.sim.world().bucket_contents().keys().cloned().collect();
            eprintln!("{}: bucket has {keys:?}", self.ctx);
        }
        assert_eq!(got, want, "{}: readdir {dir:?}", self.ctx);
    }
}

/// One seed of the bucket workload in one flavour; returns the run's trace digest.
pub fn run(seed: u64, flavour: Flavour) -> u64 {
    let mut world = World::with_bucket("sim/b");
    // Every third seed talks to a hostile Hub: listings carry entries that must be left out,
    // and some arrive cut short.
    world.hostile = seed.is_multiple_of(3);
    let mut files = BTreeMap::new();
    for i in 0..4 {
        let data: Vec<u8> = (0..(seed * 37 + i * 500) % 3000).map(|j| (j * 7 + i) as u8).collect();
        let path = if i % 2 == 0 { format!("seed{i}") } else { format!("d/seed{i}") };
        world.remote_put(&path, &data);
        files.insert(path, data);
    }
    let mut cfg = MountConfig::new(World::urls(), Source::Bucket { id: "sim/b".into() });
    cfg.uid = OWNER;
    cfg.gid = OWNER;
    // Short, so re-listings race with commits.
    cfg.metadata_ttl = Duration::from_millis(1500);
    cfg.poll_interval = Some(Duration::from_secs(3));
    cfg.verifier = 42;
    cfg.writes = WritePolicy {
        mode: if flavour == Flavour::Streaming { WriteMode::Streaming } else { WriteMode::Advanced },
        staging_dir: "/stage/".into(),
        memory_limit: 4096,
        stream_threshold: 1500,
        ..WritePolicy::default()
    };
    if flavour == Flavour::Nfs {
        cfg.access = AccessPolicy { check: true, owner_from_caller: false };
    } else {
        cfg.access = AccessPolicy { check: false, owner_from_caller: true };
    }
    // Every fourth seed keeps a tiny inode table: idle listings are evicted and listed again.
    // (Not for NFS here: its handles to evicted entries are found again by the NFS session's
    // `Resolve`, which this workload does not run; tests/e2e/nfs_mount.sh covers that.)
    if seed % 4 == 1 && flavour != Flavour::Nfs {
        cfg.inode_soft_limit = Some(6);
        cfg.lru_sweep_interval = Duration::from_millis(700);
    }
    let mut sim = Sim::start(seed, cfg, world);
    sim.faults_on = true;
    sim.jump_percent = 2;
    sim.wait_mounted().unwrap_or_else(|e| panic!("seed {seed}: mount: {e}"));
    let mut run = Run {
        sim,
        flavour,
        files,
        dirs: BTreeSet::from(["d".to_string()]),
        remote: BTreeMap::new(),
        refused: BTreeSet::new(),
        writing_refused: false,
        caller: Caller::new(OWNER, OWNER),
        ctx: String::new(),
    };
    for step in 0..300 {
        run.ctx = format!("seed {seed} step {step} ({flavour:?})");
        let op = run.sim.rng.below(18);
        run.sim.verbose = std::env::var("SIM_VERBOSE_STEP").is_ok_and(|v| v == step.to_string());
        if std::env::var("SIM_DEBUG").is_ok() {
            eprintln!(
                "{} op {op} files {:?}",
                run.ctx,
                run.files.iter().map(|(p, d)| (p.clone(), d.len())).collect::<Vec<_>>()
            );
        }
        match op {
            0 | 1 => {
                let dir = run.pick_dir();
                run.create(&Run::join(&dir, &format!("f{step}")));
            }
            2 => {
                if let Some(path) = run.pick_file() {
                    run.edit(&path);
                }
            }
            3 => {
                let Some(from) = run.pick_file() else { continue };
                let to = if run.sim.rng.below(100) < 30 {
                    run.pick_file().unwrap_or_default()
                } else {
                    Run::join(&run.pick_dir(), &format!("r{step}"))
                };
                if from != to {
                    run.rename(&from, &to);
                }
            }
            // Unlink, sometimes while a reader (or a writer) holds the file open: it keeps
            // reading it (and writing to it).
            4 => {
                let Some(path) = run.pick_file() else { continue };
                let (dir, name) = split(&path);
                let parent = run.must(dir);
                let ino = run.must(&path);
                let writer = run.sim.rng.below(2) == 0;
                let held = (flavour != Flavour::Nfs && run.sim.rng.below(2) == 0).then(|| {
                    match run.call(Request::Open { ino, write: writer, truncate: false }) {
                        Reply::Open { fh, .. } => fh,
                        other => panic!("{}: open {path}: {other:?}", run.ctx),
                    }
                });
                ok(&run.ctx.clone(), "unlink", &run.call(Request::Unlink { parent, name: name.into() }));
                let mut old = run.files.remove(&path).unwrap_or_default();
                if let Some(fh) = held {
                    for _ in 0..run.sim.rng.below(30) {
                        run.sim.tick();
                    }
                    if writer {
                        let data = Bytes::from_static(b"written after unlink");
                        let write = Request::Write {
                            ino,
                            fh: Some(fh),
                            offset: 0,
                            data: data.clone(),
                            stable: Stability::Unstable,
                        };
                        let r = run.call(write);
                        assert!(matches!(r, Reply::Written { .. }), "{}: write to unlinked {path}: {r:?}", run.ctx);
                        if old.len() < data.len() {
                            old.resize(data.len(), 0);
                        }
                        old[..data.len()].copy_from_slice(&data);
                    }
                    let r = run.call(Request::Read { ino, fh: Some(fh), offset: 0, size: 1 << 20 });
                    let Reply::Data { data, .. } = r else { panic!("{}: read of unlinked {path}: {r:?}", run.ctx) };
                    assert!(data[..] == old[..], "{}: an open file lost its content when unlinked", run.ctx);
                    run.call(Request::Release { fh });
                }
            }
            5 => {
                let Some(path) = run.pick_file() else { continue };
                let ino = run.must(&path);
                let to = format!("l{step}");
                let r = run.call(Request::Link { ino, new_parent: ROOT_INO, new_name: to.clone() });
                // Linking a file with unsaved changes saves it first, which an outage fails.
                if ok_or_outage(&run.ctx.clone(), "link", &r) {
                    ino_of(&run.ctx, &r);
                    let data = run.files[&path].clone();
                    run.files.insert(to, data);
                }
            }
            6 => {
                if let Some(path) = run.pick_file() {
                    run.read_back(&path);
                }
            }
            7 => {
                if let Some(path) = run.pick_file() {
                    run.sync(&path);
                }
            }
            // A directory with files in it, then renamed (a directory move in the bucket).
            8 => {
                let dir = Run::join(&run.pick_dir(), &format!("m{step}"));
                let (parent_path, name) = split(&dir);
                let parent = run.must(parent_path);
                let r = run.call(Request::Mkdir { parent, name: name.into(), mode: 0o755 });
                ino_of(&run.ctx, &r);
                run.dirs.insert(dir.clone());
                for i in 0..run.sim.rng.below(3) {
                    run.create(&format!("{dir}/x{i}"));
                }
                if run.sim.rng.below(2) == 0 {
                    run.rename(&dir, &format!("moved{step}"));
                }
            }
            9 => {
                // rmdir of an empty directory, ENOTEMPTY otherwise.
                let dir = run.pick_dir();
                if dir.is_empty() || dir == "d" {
                    continue;
                }
                let (parent_path, name) = split(&dir);
                let parent = run.must(parent_path);
                let empty = !run.files.keys().chain(run.dirs.iter()).any(|p| p.starts_with(&format!("{dir}/")));
                let r = run.call(Request::Rmdir { parent, name: name.into() });
                if empty {
                    ok(&run.ctx.clone(), "rmdir", &r);
                    run.dirs.remove(&dir);
                } else {
                    assert!(
                        matches!(r, Reply::Error(ref e) if e.errno == hfm_core::Errno::NotEmpty),
                        "{}: rmdir of non-empty {dir}: {r:?}",
                        run.ctx
                    );
                }
            }
            10 => run.remote_change(step),
            17 => run.refused_path(step),
            16 => {
                let target = match run.pick_file() {
                    Some(existing) if run.sim.rng.below(2) == 0 => existing,
                    _ => Run::join(&run.pick_dir(), &format!("ckpt{step}")),
                };
                run.checkpoint(&target, step);
            }
            11 => {
                if let Some(path) = run.pick_file() {
                    run.conflict(&path);
                }
            }
            // Modes and times: kept in the mount, an explicit mtime also in the bucket.
            12 => {
                let Some(path) = run.pick_file() else { continue };
                let ino = run.must(&path);
                let mtime =
                    if run.sim.rng.below(2) == 0 { TimeSet::Now } else { TimeSet::At(1_600_000_000_000_000_000) };
                let set = SetAttr { mode: Some(0o640), mtime: Some(mtime), ..Default::default() };
                let r = run.call(Request::SetAttr { ino, set, guard_ctime: None });
                let Reply::Attr { attr, before: Some(_), .. } = r else { panic!("{}: setattr: {r:?}", run.ctx) };
                assert_eq!(attr.perm, 0o640, "{}: chmod of {path}", run.ctx);
                if mtime == TimeSet::At(1_600_000_000_000_000_000) {
                    assert_eq!(attr.mtime_ns, 1_600_000_000_000_000_000, "{}: utimes of {path}", run.ctx);
                }
                // A stale guard is refused.
                let set = SetAttr { mode: Some(0o600), ..Default::default() };
                let r = run.call(Request::SetAttr { ino, set, guard_ctime: Some(attr.ctime_ns - 1) });
                assert!(
                    matches!(r, Reply::Error(ref e) if e.errno == hfm_core::Errno::NotSync),
                    "{}: guard: {r:?}",
                    run.ctx
                );
            }
            13 => {
                let dir = run.pick_dir();
                run.readdir_matches(&dir);
            }
            // Permissions as another user (NFS: core checks them).
            14 if flavour == Flavour::Nfs => {
                let Some(path) = run.pick_file() else { continue };
                let ino = run.must(&path);
                let stranger = Caller::new(2000, 2000);
                let r = run.sim.call_as(
                    stranger.clone(),
                    Request::Write {
                        ino,
                        fh: None,
                        offset: 0,
                        data: Bytes::from_static(b"x"),
                        stable: Stability::Unstable,
                    },
                );
                assert!(
                    matches!(r, Reply::Error(ref e) if e.errno == hfm_core::Errno::Acces),
                    "{}: a stranger wrote {path}: {r:?}",
                    run.ctx
                );
                let r = run.sim.call_as(stranger, Request::Access { ino, mask: 7 });
                let Reply::Access { allowed } = r else { panic!("{}: access: {r:?}", run.ctx) };
                assert_eq!(allowed & 2, 0, "{}: a stranger may write {path}", run.ctx);
            }
            _ => {
                // Mount-only nodes and small requests.
                let ctx = run.ctx.clone();
                let r =
                    run.call(Request::Symlink { parent: ROOT_INO, name: format!("sym{step}"), target: "seed0".into() });
                let link = ino_of(&ctx, &r);
                let r = run.call(Request::ReadLink { ino: link });
                assert!(matches!(r, Reply::Data { ref data, .. } if &data[..] == b"seed0"), "{ctx}: readlink: {r:?}");
                let r = run.call(Request::Mknod {
                    parent: ROOT_INO,
                    name: format!("fifo{step}"),
                    kind: FileKind::Fifo,
                    mode: 0o644,
                    rdev: 0,
                });
                let fifo = ino_of(&ctx, &r);
                assert!(matches!(run.call(Request::Resolve { ino: fifo }), Reply::Entry { .. }), "{ctx}: resolve");
                assert!(matches!(run.call(Request::StatFs), Reply::StatFs(_)), "{ctx}: statfs");
                ok(&ctx, "forget", &run.call(Request::Forget { ino: fifo, nlookup: 1 }));
            }
        }
    }
    // Unmount: drain everything, without faults, then the bucket is the model.
    run.sim.faults_on = false;
    run.sim.jump_percent = 0;
    if !run.refused.is_empty() {
        // Paths still refused: the drain tries each once more and gives up on them at once,
        // without waiting out its deadline; the rest is in the bucket.
        let started = run.sim.now;
        let outcome = run.sim.drain(Duration::from_secs(3600));
        assert_eq!(outcome, DrainOutcome::GaveUp, "seed {seed} ({flavour:?}): drain with refused paths");
        let waited = run.sim.now.saturating_duration_since(started);
        assert!(waited < Duration::from_secs(600), "seed {seed}: the drain waited {waited:?} for refused paths");
        let got = run.sim.world().bucket_contents();
        for path in &run.refused {
            assert!(!got.contains_key(path), "seed {seed}: refused {path} is in the bucket");
        }
        run.sim.world().bucket.as_mut().expect("a bucket").refused.clear();
    }
    let outcome = run.sim.drain(Duration::from_secs(3600));
    assert_eq!(outcome, DrainOutcome::Drained, "seed {seed} ({flavour:?}): drain");
    assert!(!run.sim.filesystem().has_unsaved(), "seed {seed}: unsaved changes after the drain");
    run.sim.settle();
    let records: Vec<String> = run.sim.world().disk.keys().filter(|k| k.ends_with(".record")).cloned().collect();
    assert!(
        records.is_empty(),
        "seed {seed} ({flavour:?}): journal records left once everything is committed: {records:?}"
    );
    let got = run.sim.world().bucket_contents();
    let mut want = run.files.clone();
    want.extend(run.remote.clone());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "seed {seed} ({flavour:?}): bucket paths"
    );
    for (p, data) in &want {
        if got[p] != *data && std::env::var("SIM_DEBUG").is_ok() {
            let diff = got[p].iter().zip(data.iter()).position(|(a, b)| a != b);
            eprintln!("{p}: bucket {} bytes, model {} bytes, first difference {diff:?}", got[p].len(), data.len());
        }
        assert!(got[p] == *data, "seed {seed} ({flavour:?}): {p} differs in the bucket");
    }
    run.sim.trace().digest()
}

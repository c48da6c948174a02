//! Overlay mode (`--overlay`): the mount point's own directory, opened before mounting, is a
//! writable local layer over a remote that is never written.
//!
//! The rules live here: the layer's tree (not its bytes) is read whole before the mount is
//! reported live; a layer entry wins over a remote one of the same name; creating, writing,
//! renaming, deleting and changing attributes happen in the layer, whose missing parent
//! directories are created on demand with the remote directory's mode; the same done to a
//! remote-only entry is refused (`EACCES`, `EPERM` for attributes); symlinks, hard links and
//! special files are not created (symlinks in the layer stay hidden). Removing a layer entry
//! that hid a remote one shows the remote one again: the change is answered once the
//! directory is listed anew.
//!
//! A layer file removed (or replaced by a rename) while open is moved to `DELETED_DIR` in the
//! layer and removed at its last close, so open descriptors keep reading and writing it, as on
//! a local disk; the walk removes what an earlier mount left there.
//!
//! Layer effects run concurrently, except that an effect changing names or attributes runs
//! alone (`LayerQueue`): no path is renamed or removed under a read or write in flight. This
//! module never touches the disk: `effects` resolves every path beneath the layer.

use std::collections::VecDeque;

use crate::collections::Map;

use bytes::Bytes;

use crate::effect::{Completion, Effect, LayerChange, LayerEntry, LayerOp};
use crate::error::{Errno, FsError};
use crate::hub::ContentSource;
use crate::inode::{Ino, NodeKind, ROOT_INO};
use crate::request::{Caller, CreateHow, FileKind, Reply, Request, RequestId, SetAttr, Stability, TimeSet, WccAttr};
use crate::time::Instant;

use super::attrs::check_name;
use super::flights::Purpose;
use super::parked::{Then, Wait};
use super::Filesystem;

/// Where files removed while open wait for their last close (hidden from the mount).
pub(crate) const DELETED_DIR: &str = ".hf-mount-deleted";

/// Layer effects waiting for their turn, and what runs now.
#[derive(Default)]
pub(crate) struct LayerQueue {
    /// Files removed while open: their path in `DELETED_DIR`.
    deleted_open: Map<Ino, String>,
    waiting: VecDeque<(LayerStep, LayerOp)>,
    /// Reads, writes and syncs in flight.
    data_in_flight: usize,
    /// A name or attribute change (or the walk) is in flight: nothing else starts.
    exclusive: bool,
    /// The layer was read at mount.
    pub walked: bool,
}

/// What a layer effect's completion does.
#[derive(Debug)]
pub(crate) enum LayerStep {
    Walk,
    /// Housekeeping nobody waits for (a file removed while open, leftovers of an earlier mount).
    Discard,
    Read {
        req: RequestId,
        eof: bool,
    },
    Write {
        req: RequestId,
        ino: Ino,
        end: u64,
        len: u32,
        stable: Stability,
        before: WccAttr,
    },
    Sync {
        req: RequestId,
        reply: Reply,
    },
    /// An open that truncates.
    Open {
        req: RequestId,
        ino: Ino,
        write: bool,
    },
    Create {
        req: RequestId,
        parent: Ino,
        name: String,
        made: Vec<Ino>,
        open: Option<CreateOpen>,
        before: WccAttr,
    },
    SetAttr {
        req: RequestId,
        ino: Ino,
        before: WccAttr,
    },
    Remove {
        req: RequestId,
        parent: Ino,
        ino: Ino,
        before: WccAttr,
    },
    Rename {
        req: RequestId,
        src: Ino,
        from: Ino,
        to: (Ino, String),
        replaced: Option<Ino>,
        made: Vec<Ino>,
        before: (WccAttr, WccAttr),
    },
}

/// A file create's open handle and NFS exclusive-create verifier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CreateOpen {
    pub handle: bool,
    pub verifier: Option<u64>,
}

impl LayerStep {
    /// May run beside other reads and writes.
    fn is_data(&self) -> bool {
        matches!(self, LayerStep::Read { .. } | LayerStep::Write { .. } | LayerStep::Sync { .. })
    }

    fn request(&self) -> Option<RequestId> {
        match self {
            LayerStep::Walk | LayerStep::Discard => None,
            LayerStep::Read { req, .. }
            | LayerStep::Write { req, .. }
            | LayerStep::Sync { req, .. }
            | LayerStep::Open { req, .. }
            | LayerStep::Create { req, .. }
            | LayerStep::SetAttr { req, .. }
            | LayerStep::Remove { req, .. }
            | LayerStep::Rename { req, .. } => Some(*req),
        }
    }
}

fn remote_only(path: &str) -> FsError {
    FsError::new(
        Errno::Acces,
        "overlay_remote_entry",
        format!("{path} is remote, and the remote is read-only with --overlay (copy it under a new name to change it)"),
    )
}

fn unsupported(what: &str) -> FsError {
    FsError::new(Errno::Perm, "overlay_unsupported", format!("{what} cannot be created in the overlay's local layer"))
}

impl Filesystem {
    fn is_layer(&self, ino: Ino) -> bool {
        self.inodes.get(ino).is_some_and(|n| n.layer)
    }

    /// `ino`'s path relative to the layer (the mount's root is the layer's root).
    fn layer_path(&self, ino: Ino) -> String {
        if let Some(path) = self.overlay.deleted_open.get(&ino) {
            return path.clone();
        }
        let full = self.inodes.path(ino);
        match self.cfg.subfolder.as_str() {
            "" => full,
            sub => full.strip_prefix(sub).map(|p| p.trim_start_matches('/').to_string()).unwrap_or(full),
        }
    }

    fn layer_child_path(&self, parent: Ino, name: &str) -> String {
        match self.layer_path(parent) {
            p if p.is_empty() => name.to_string(),
            p => format!("{p}/{name}"),
        }
    }

    /// Directories from the outermost one not in the layer down to `dir`: created (with the
    /// modes the mount shows) before something is put in `dir`.
    fn missing_layer_dirs(&self, dir: Ino) -> (Vec<Ino>, Vec<(String, u16)>) {
        let mut chain = Vec::new();
        let mut cur = dir;
        while cur != ROOT_INO && !self.is_layer(cur) {
            chain.push(cur);
            cur = self.inodes.get(cur).map_or(ROOT_INO, |n| n.parent);
        }
        chain.reverse();
        let dirs = chain.iter().map(|d| (self.layer_path(*d), self.attr(*d).map_or(0o755, |a| a.perm))).collect();
        (chain, dirs)
    }

    // ---- the queue -----------------------------------------------------------------------

    fn layer_effect(&mut self, step: LayerStep, op: LayerOp) {
        self.overlay.waiting.push_back((step, op));
        self.pump_layer();
    }

    fn pump_layer(&mut self) {
        while let Some((step, _)) = self.overlay.waiting.front() {
            let data = step.is_data();
            if self.overlay.exclusive || (!data && self.overlay.data_in_flight > 0) {
                return;
            }
            let Some((step, op)) = self.overlay.waiting.pop_front() else { return };
            if data {
                self.overlay.data_in_flight += 1;
            } else {
                self.overlay.exclusive = true;
            }
            self.start_effect(Purpose::Layer(step), Effect::Layer(op));
        }
    }

    /// The mount resolved: read the layer's tree before reporting it live.
    pub(crate) fn walk_layer(&mut self) {
        self.layer_effect(LayerStep::Walk, LayerOp::Walk);
    }

    // ---- requests ------------------------------------------------------------------------

    /// Handle `req` if overlay mode decides it; otherwise hand it back for the read-only paths.
    pub(crate) fn overlay_dispatch(
        &mut self,
        id: RequestId,
        caller: &Caller,
        req: Request,
        now: Instant,
    ) -> Option<Request> {
        match req {
            Request::Open { ino, write, truncate } if self.is_layer(ino) => {
                if !matches!(self.inodes.get(ino).map(|n| &n.kind), Some(NodeKind::File { .. })) {
                    return Some(Request::Open { ino, write, truncate });
                }
                if truncate {
                    let op = LayerOp::SetAttr {
                        path: self.layer_path(ino),
                        change: LayerChange { size: Some(0), ..Default::default() },
                    };
                    self.layer_effect(LayerStep::Open { req: id, ino, write }, op);
                } else {
                    self.open_layer_file(id, ino, write);
                }
            }
            Request::Open { ino, write: true, .. } | Request::Open { ino, truncate: true, .. } => {
                self.fail(id, remote_only(&self.inodes.path(ino)))
            }
            Request::Read { ino, offset, size, .. } if self.is_layer(ino) => self.read_layer(id, ino, offset, size),
            Request::Write { ino, offset, data, stable, .. } => self.write_layer(id, ino, offset, data, stable),
            Request::Release { fh } if self.handles.get(fh).is_some_and(|f| self.is_layer(f.ino)) => {
                if let Some(file) = self.handles.close(fh) {
                    self.closed_layer_file(file.ino);
                }
                self.reply(id, Reply::Empty);
            }
            Request::Fsync { ino } if self.is_layer(ino) => self.sync_layer(id, ino, Reply::Empty),
            Request::Commit { ino, .. } if self.is_layer(ino) => {
                let reply = Reply::Committed { verifier: self.cfg.verifier };
                self.sync_layer(id, ino, reply)
            }
            Request::Fallocate { ino, .. } if self.is_layer(ino) => {
                self.fail(id, FsError::new(Errno::NotSup, "unsupported", "fallocate in the overlay's local layer"))
            }
            Request::Fallocate { ino, .. } => self.fail(id, remote_only(&self.inodes.path(ino))),
            Request::Create { parent, name, mode, how, open } => {
                let req = Request::Create { parent, name: name.clone(), mode, how, open };
                self.create_in_layer(id, caller, parent, name, (false, mode), Some((how, open)), &req, now)
            }
            Request::Mkdir { parent, name, mode } => {
                let req = Request::Mkdir { parent, name: name.clone(), mode };
                self.create_in_layer(id, caller, parent, name, (true, mode), None, &req, now)
            }
            Request::Mknod { parent, name, kind: FileKind::RegularFile, mode, rdev } => {
                let req = Request::Mknod { parent, name: name.clone(), kind: FileKind::RegularFile, mode, rdev };
                let how = Some((CreateHow::Guarded, false));
                self.create_in_layer(id, caller, parent, name, (false, mode), how, &req, now)
            }
            Request::Mknod { .. } => self.fail(id, unsupported("a special file")),
            Request::Symlink { .. } => self.fail(id, unsupported("a symlink")),
            Request::Link { .. } => self.fail(id, unsupported("a hard link")),
            Request::Unlink { parent, name } => {
                let req = Request::Unlink { parent, name: name.clone() };
                self.remove_from_layer(id, caller, parent, name, false, &req, now)
            }
            Request::Rmdir { parent, name } => {
                let req = Request::Rmdir { parent, name: name.clone() };
                self.remove_from_layer(id, caller, parent, name, true, &req, now)
            }
            Request::Rename { parent, name, new_parent, new_name, no_replace } => {
                self.rename_in_layer(id, caller, (parent, name), (new_parent, new_name), no_replace, now)
            }
            Request::SetAttr { ino, set, guard_ctime } => self.setattr_layer(id, ino, set, guard_ctime, now),
            other => return Some(other),
        }
        None
    }

    /// A name a new layer entry may take: a valid one, and not the layer's own `DELETED_DIR`.
    fn check_layer_name(&self, parent: Ino, name: &str) -> Result<(), FsError> {
        check_name(name)?;
        if parent == ROOT_INO && name == DELETED_DIR {
            return Err(FsError::new(Errno::Acces, "overlay_reserved", format!("{name} is the overlay's own")));
        }
        Ok(())
    }

    fn open_layer_file(&mut self, id: RequestId, ino: Ino, write: bool) {
        let fh = self.handles.open(ino, write);
        let keep_cache = self.keep_pages(ino);
        self.reply(id, Reply::Open { fh, keep_cache, backing: None });
    }

    fn read_layer(&mut self, id: RequestId, ino: Ino, offset: u64, size: u32) {
        let file_size = match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, .. }) => *size,
            _ => return self.fail(id, FsError::is_a_directory()),
        };
        let end = offset.saturating_add(u64::from(size)).min(file_size);
        if offset >= end {
            return self.reply(id, Reply::Data { data: Bytes::new(), eof: true });
        }
        let op = LayerOp::Read { path: self.layer_path(ino), range: offset..end };
        self.layer_effect(LayerStep::Read { req: id, eof: end == file_size }, op);
    }

    fn write_layer(&mut self, id: RequestId, ino: Ino, offset: u64, data: Bytes, stable: Stability) {
        if !self.is_layer(ino) {
            return self.fail(id, remote_only(&self.inodes.path(ino)));
        }
        if !matches!(self.inodes.get(ino).map(|n| &n.kind), Some(NodeKind::File { .. })) {
            return self.fail(id, FsError::is_a_directory());
        }
        let len = data.len() as u32;
        let end = offset.saturating_add(data.len() as u64);
        let before = self.wcc(ino);
        let sync = stable != Stability::Unstable;
        let op = LayerOp::Write { path: self.layer_path(ino), offset, data, sync };
        self.layer_effect(LayerStep::Write { req: id, ino, end, len, stable, before }, op);
    }

    fn sync_layer(&mut self, id: RequestId, ino: Ino, reply: Reply) {
        if self.is_dir(ino) {
            return self.reply(id, reply);
        }
        let op = LayerOp::Sync { path: self.layer_path(ino) };
        self.layer_effect(LayerStep::Sync { req: id, reply }, op);
    }

    #[allow(clippy::too_many_arguments)]
    fn create_in_layer(
        &mut self,
        id: RequestId,
        caller: &Caller,
        parent: Ino,
        name: String,
        (dir, mode): (bool, u16),
        file: Option<(CreateHow, bool)>,
        req: &Request,
        now: Instant,
    ) {
        if let Err(e) = self.check_layer_name(parent, &name) {
            return self.fail(id, e);
        }
        if !self.ready_dir(id, caller, parent, req, now) {
            return;
        }
        if let Some(existing) = self.inodes.child(parent, &name) {
            let Some(node) = self.inodes.get(existing) else { return self.fail(id, FsError::not_found()) };
            let is_file = matches!(node.kind, NodeKind::File { .. });
            let reuse = match file {
                Some((CreateHow::Unchecked, _)) => is_file,
                Some((CreateHow::Exclusive { verifier }, _)) => node.meta.create_verifier == Some(verifier),
                _ => false,
            };
            if !reuse {
                return self.fail(id, FsError::exists());
            }
            if !node.layer {
                return self.fail(id, remote_only(&self.inodes.path(existing)));
            }
            let before = self.wcc(parent);
            return self.answer_created(id, existing, parent, file.is_some_and(|(_, open)| open), before);
        }
        let (made, make_parents) = self.missing_layer_dirs(parent);
        let before = self.wcc(parent);
        let path = self.layer_child_path(parent, &name);
        let owner = self.cfg.access.owner_from_caller.then_some((caller.uid, caller.gid));
        let op = LayerOp::Create { path, dir, mode: mode & 0o7777, owner, make_parents };
        let open = file.map(|(how, open)| CreateOpen {
            handle: open,
            verifier: match how {
                CreateHow::Exclusive { verifier } => Some(verifier),
                _ => None,
            },
        });
        self.layer_effect(LayerStep::Create { req: id, parent, name, made, open, before }, op);
    }

    fn answer_created(&mut self, id: RequestId, ino: Ino, parent: Ino, handle: bool, before: WccAttr) {
        let fh = handle.then(|| self.handles.open(ino, true));
        match self.attr(ino) {
            Some(attr) => {
                self.inodes.add_lookup(ino);
                let dir = self.change(parent, before);
                self.reply(id, Reply::Created { attr, ttl: self.cfg.metadata_ttl, fh, dir });
            }
            None => self.fail(id, FsError::not_found()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn remove_from_layer(
        &mut self,
        id: RequestId,
        caller: &Caller,
        parent: Ino,
        name: String,
        dir: bool,
        req: &Request,
        now: Instant,
    ) {
        if !self.ready_dir(id, caller, parent, req, now) {
            return;
        }
        let Some(ino) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        match (dir, self.is_dir(ino)) {
            (false, true) => return self.fail(id, FsError::is_a_directory()),
            (true, false) => return self.fail(id, FsError::not_a_directory()),
            _ => {}
        }
        if !self.is_layer(ino) {
            return self.fail(id, remote_only(&self.inodes.path(ino)));
        }
        if dir {
            if !self.ready_dir(id, caller, ino, req, now) {
                return;
            }
            if self.listings.child_count(ino) > 0 {
                return self.fail(id, FsError::new(Errno::NotEmpty, "not_empty", ""));
            }
        }
        let before = self.wcc(parent);
        let path = self.layer_path(ino);
        let op = match (dir, self.handles.is_open(ino)) {
            (true, _) => LayerOp::Rmdir { path },
            (false, false) => LayerOp::Unlink { path },
            (false, true) => self.move_away(ino, path),
        };
        self.layer_effect(LayerStep::Remove { req: id, parent, ino, before }, op);
    }

    /// Remove open file `ino` by moving it to `DELETED_DIR` (done at its last close).
    fn move_away(&mut self, ino: Ino, path: String) -> LayerOp {
        let to = format!("{DELETED_DIR}/{ino:016x}");
        self.overlay.deleted_open.insert(ino, to.clone());
        LayerOp::Rename { from: path, to, no_replace: false, make_parents: vec![(DELETED_DIR.to_string(), 0o700)] }
    }

    /// The last handle of a layer file closed: a file removed while open goes for good.
    fn closed_layer_file(&mut self, ino: Ino) {
        if self.handles.is_open(ino) {
            return;
        }
        if let Some(path) = self.overlay.deleted_open.remove(&ino) {
            self.layer_effect(LayerStep::Discard, LayerOp::Unlink { path });
        }
    }

    fn rename_in_layer(
        &mut self,
        id: RequestId,
        caller: &Caller,
        (parent, name): (Ino, String),
        (new_parent, new_name): (Ino, String),
        no_replace: bool,
        now: Instant,
    ) {
        let req = Request::Rename { parent, name: name.clone(), new_parent, new_name: new_name.clone(), no_replace };
        if let Err(e) = self.check_layer_name(new_parent, &new_name) {
            return self.fail(id, e);
        }
        if !self.ready_dir(id, caller, parent, &req, now) || !self.ready_dir(id, caller, new_parent, &req, now) {
            return;
        }
        let Some(src) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        let src_is_dir = self.is_dir(src);
        let Some(node) = self.inodes.get(src) else { return self.fail(id, FsError::not_found()) };
        if !node.layer || (src_is_dir && node.shadows_remote) {
            return self.fail(id, remote_only(&self.inodes.path(src)));
        }
        if src_is_dir && self.inodes.is_within(new_parent, src) {
            return self.fail(id, FsError::new(Errno::Inval, "rename_into_itself", ""));
        }
        let dst = self.inodes.child(new_parent, &new_name);
        if dst == Some(src) {
            let (from, to) = (self.change(parent, self.wcc(parent)), self.change(new_parent, self.wcc(new_parent)));
            return self.reply(id, Reply::Renamed { from, to });
        }
        if let Some(dst) = dst {
            if no_replace {
                return self.fail(id, FsError::exists());
            }
            if !self.is_layer(dst) {
                return self.fail(id, remote_only(&self.inodes.path(dst)));
            }
            if !self.may_replace(id, caller, src_is_dir, dst, &req, now) {
                return;
            }
        }
        if let Some(dst) = dst.filter(|d| !self.is_dir(*d) && self.handles.is_open(*d)) {
            // The replaced file stays readable by whoever has it open.
            let path = self.layer_path(dst);
            let op = self.move_away(dst, path);
            self.layer_effect(LayerStep::Discard, op);
        }
        let (made, make_parents) = self.missing_layer_dirs(new_parent);
        let before = (self.wcc(parent), self.wcc(new_parent));
        let op = LayerOp::Rename {
            from: self.layer_path(src),
            to: self.layer_child_path(new_parent, &new_name),
            no_replace,
            make_parents,
        };
        let step =
            LayerStep::Rename { req: id, src, from: parent, to: (new_parent, new_name), replaced: dst, made, before };
        self.layer_effect(step, op);
    }

    fn setattr_layer(&mut self, id: RequestId, ino: Ino, set: SetAttr, guard_ctime: Option<i64>, now: Instant) {
        let Some(attr) = self.attr(ino) else { return self.fail(id, FsError::not_found()) };
        if guard_ctime.is_some_and(|ctime| ctime != attr.ctime_ns) {
            return self.fail(id, FsError::new(Errno::NotSync, "guard_mismatch", "the file changed since"));
        }
        if !self.is_layer(ino) {
            // Truncating writes the file (EACCES); other attributes are the owner's (EPERM).
            let err = remote_only(&self.inodes.path(ino));
            let errno = if set.size.is_some() { Errno::Acces } else { Errno::Perm };
            return self.fail(id, FsError { errno, ..err });
        }
        if set.size.is_some() && attr.kind != FileKind::RegularFile {
            return self.fail(id, FsError::is_a_directory());
        }
        let wall = self.wall_ns(now);
        let at = |t: TimeSet| match t {
            TimeSet::Now => wall,
            TimeSet::At(ns) => ns,
        };
        let change = LayerChange {
            size: set.size,
            mode: set.mode.map(|m| m & 0o7777),
            uid: set.uid,
            gid: set.gid,
            atime_ns: set.atime.map(at),
            mtime_ns: set.mtime.map(at),
        };
        let op = LayerOp::SetAttr { path: self.layer_path(ino), change };
        self.layer_effect(LayerStep::SetAttr { req: id, ino, before: attr.wcc() }, op);
    }

    // ---- completions ---------------------------------------------------------------------

    pub(crate) fn on_layer(&mut self, step: LayerStep, result: Result<Completion, FsError>, now: Instant) {
        if step.is_data() {
            self.overlay.data_in_flight = self.overlay.data_in_flight.saturating_sub(1);
        } else {
            self.overlay.exclusive = false;
        }
        match (step, result) {
            (LayerStep::Walk, Ok(Completion::Listed(entries))) => self.on_walked(entries, now),
            (LayerStep::Walk, Ok(other)) => self.layer_unreadable(super::unexpected(&other)),
            (LayerStep::Walk, Err(e)) => self.layer_unreadable(e),
            (step, Err(e)) => {
                if let LayerStep::Remove { ino, .. } = step {
                    // Not moved away after all: the file is where it was.
                    self.overlay.deleted_open.remove(&ino);
                }
                match step.request() {
                    Some(req) => self.fail(req, e),
                    None => self.log(crate::error::LogLevel::Warn, format!("overlay: {}", e.detail)),
                }
            }
            (step, Ok(completion)) => self.on_layer_done(step, completion, now),
        }
        self.pump_layer();
    }

    fn layer_unreadable(&mut self, e: FsError) {
        self.mount_failed(format!("reading the overlay's local layer (the mount point's own files): {}", e.detail));
    }

    fn on_walked(&mut self, mut entries: Vec<LayerEntry>, now: Instant) {
        self.overlay.walked = true;
        // Parents before children, whatever order the walk found them in.
        entries.sort_by(|a, b| (a.path.matches('/').count(), &a.path).cmp(&(b.path.matches('/').count(), &b.path)));
        let root = ROOT_INO;
        let leftovers = format!("{DELETED_DIR}/");
        for entry in entries {
            if entry.path == DELETED_DIR {
                continue;
            }
            if let Some(rest) = entry.path.strip_prefix(&leftovers) {
                // Removed while open by an earlier mount that ended first.
                if !entry.dir && !rest.contains('/') {
                    self.layer_effect(LayerStep::Discard, LayerOp::Unlink { path: entry.path.clone() });
                }
                continue;
            }
            let (parent_path, name) = entry.path.rsplit_once('/').unwrap_or(("", entry.path.as_str()));
            let parent =
                parent_path.split('/').filter(|p| !p.is_empty()).try_fold(root, |dir, n| self.inodes.child(dir, n));
            let Some(parent) = parent.filter(|p| self.is_layer(*p) || *p == root) else { continue };
            if check_name(name).is_err() {
                continue;
            }
            let name = name.to_string();
            self.add_layer_node(parent, &name, &entry);
        }
        self.mounted(now);
    }

    /// Put layer entry `entry` into the tree as `parent`'s child `name` (it hides any remote
    /// entry of that name).
    fn add_layer_node(&mut self, parent: Ino, name: &str, entry: &LayerEntry) -> Ino {
        let kind = layer_kind(entry);
        let existing = self.inodes.child(parent, name);
        let ino = self.inodes.insert_child(parent, name, kind.clone());
        if let Some(n) = self.inodes.get_mut(ino) {
            n.shadows_remote = existing.is_some() && !n.layer;
            n.kind = kind;
            n.local = true;
            n.layer = true;
        }
        self.apply_layer_stat(ino, entry);
        self.listings.seed_child(parent, ino);
        ino
    }

    fn apply_layer_stat(&mut self, ino: Ino, entry: &LayerEntry) {
        if let Some(n) = self.inodes.get_mut(ino) {
            if let NodeKind::File { size, .. } = &mut n.kind {
                *size = entry.size;
            }
            n.meta.perm = Some(entry.mode);
            n.meta.uid = Some(entry.uid);
            n.meta.gid = Some(entry.gid);
            n.meta.atime_ns = Some(entry.atime_ns);
            n.meta.mtime_ns = Some(entry.mtime_ns);
            n.meta.ctime_ns = Some(entry.ctime_ns);
        }
    }

    fn mark_layer_dirs(&mut self, dirs: &[Ino]) {
        for d in dirs {
            if let Some(n) = self.inodes.get_mut(*d).filter(|n| !n.layer) {
                // It was the remote's: the layer's directory now stands over it.
                n.shadows_remote = true;
                n.layer = true;
                n.local = true;
            }
        }
    }

    /// Answer `reply` to a change that took a layer entry out of `dir`; if the entry hid a
    /// remote one, only once `dir` is listed again and shows it.
    fn answer_revealing(&mut self, req: RequestId, dir: Ino, shadowed: bool, reply: Reply) {
        if !shadowed {
            return self.reply(req, reply);
        }
        if self.listings.start_refresh(dir) {
            self.start_listing(dir);
        }
        self.park(req, Wait::Listing(dir), Then::Answer(reply));
    }

    fn on_layer_done(&mut self, step: LayerStep, completion: Completion, now: Instant) {
        let first = |c: Completion| match c {
            Completion::Listed(mut e) if e.len() == 1 => e.pop(),
            _ => None,
        };
        match step {
            LayerStep::Walk | LayerStep::Discard => {}
            LayerStep::Read { req, eof } => match completion {
                Completion::Bytes(pieces) => {
                    let data = match pieces.len() {
                        1 => pieces.into_iter().next().unwrap_or_default(),
                        _ => Bytes::from(pieces.concat()),
                    };
                    self.reply_data(req, data, eof)
                }
                other => self.fail(req, super::unexpected(&other)),
            },
            LayerStep::Write { req, ino, end, len, stable, before } => {
                if self.file_size(ino) < end {
                    self.set_size(ino, end);
                }
                self.touch(ino, true, now);
                self.stats.bytes_written += u64::from(len);
                let reply = Reply::Written {
                    size: len,
                    committed: stable,
                    verifier: self.cfg.verifier,
                    file: self.change(ino, before),
                };
                self.reply(req, reply);
            }
            LayerStep::Sync { req, reply } => self.reply(req, reply),
            LayerStep::Open { req, ino, write } => {
                self.set_size(ino, 0);
                self.touch(ino, true, now);
                self.open_layer_file(req, ino, write);
            }
            LayerStep::Create { req, parent, name, made, open, before } => {
                let Some(entry) = first(completion) else { return self.fail(req, FsError::not_found()) };
                self.mark_layer_dirs(&made);
                let ino = self.add_layer_node(parent, &name, &entry);
                self.touch(parent, true, now);
                match open {
                    Some(open) => {
                        if let Some(n) = self.inodes.get_mut(ino) {
                            n.meta.create_verifier = open.verifier;
                        }
                        self.answer_created(req, ino, parent, open.handle, before)
                    }
                    None => {
                        self.listings.set_empty(ino, now);
                        self.entry_reply(req, ino, Some((parent, before)))
                    }
                }
            }
            LayerStep::SetAttr { req, ino, before } => {
                let Some(entry) = first(completion) else { return self.fail(req, FsError::not_found()) };
                self.apply_layer_stat(ino, &entry);
                match self.attr(ino) {
                    Some(attr) => {
                        self.reply(req, Reply::Attr { attr, ttl: self.cfg.metadata_ttl, before: Some(before) })
                    }
                    None => self.fail(req, FsError::not_found()),
                }
            }
            LayerStep::Remove { req, parent, ino, before } => {
                let shadowed = self.inodes.get(ino).is_some_and(|n| n.shadows_remote);
                self.listings.remove_child(parent, ino);
                self.inodes.detach(ino);
                self.listings.drop_dir(ino);
                self.touch(parent, true, now);
                let dir = self.change(parent, before);
                self.answer_revealing(req, parent, shadowed, Reply::Removed { dir });
            }
            LayerStep::Rename { req, src, from, to: (new_parent, new_name), replaced, made, before } => {
                self.mark_layer_dirs(&made);
                let src_shadowed = self.inodes.get(src).is_some_and(|n| n.shadows_remote);
                let dst_shadowed = replaced.and_then(|d| self.inodes.get(d)).is_some_and(|n| n.shadows_remote);
                if let Some(dst) = replaced {
                    self.listings.remove_child(new_parent, dst);
                    self.inodes.detach(dst);
                    self.listings.drop_dir(dst);
                }
                self.listings.remove_child(from, src);
                self.inodes.move_to(src, new_parent, &new_name);
                self.listings.add_child(new_parent, src);
                if let Some(n) = self.inodes.get_mut(src) {
                    n.shadows_remote = dst_shadowed;
                }
                self.touch(from, true, now);
                self.touch(new_parent, true, now);
                self.touch(src, false, now);
                let (from_change, to_change) = (self.change(from, before.0), self.change(new_parent, before.1));
                self.answer_revealing(req, from, src_shadowed, Reply::Renamed { from: from_change, to: to_change });
            }
        }
    }

    /// A remote listing of a directory of the layer found nothing there: the remote has no
    /// such directory, which is an empty remote listing.
    pub(crate) fn layer_dir_not_remote(&self, dir: Ino) -> bool {
        self.cfg.overlay && self.is_layer(dir)
    }
}

fn layer_kind(entry: &LayerEntry) -> NodeKind {
    match entry.dir {
        true => NodeKind::Dir,
        false => NodeKind::File { size: entry.size, source: ContentSource::Layer },
    }
}

//! Changing the tree: create, mkdir, mknod, symlink, unlink, rmdir, rename, link and setattr.
//!
//! The bucket only stores files, so a change persists as commit ops: a removed file is a
//! `deleteFile`, a renamed file an `addFile` of the same hash at the new path plus a
//! `deleteFile` of the old one (no bytes move), a link an `addFile` of the same hash, an
//! explicit mtime a re-`addFile` carrying it. Directories, symlinks, modes and owners live in
//! the mount only. Every operation first makes sure the directories it touches are listed.

use crate::collections::Map;
use crate::commits::Op;
use crate::error::{Errno, FsError};
use crate::hub::{self, ContentSource, TreeEntry};
use crate::inode::{Ino, LocalMeta, NodeKind};
use crate::request::{Caller, CreateHow, FileKind, Reply, Request, RequestId, SetAttr, TimeSet};
use crate::time::Instant;

use super::attrs::check_name;
use super::flights::Purpose;
use super::parked::{Then, Wait};
use super::{Filesystem, Remote};

/// Recursive listings of directories about to be renamed.
#[derive(Default)]
pub(crate) struct Scans {
    /// Entries so far, and what was left out, by directory.
    running: Map<Ino, (Vec<TreeEntry>, Vec<String>)>,
    /// Complete, consumed by the rename that asked for them.
    done: Map<Ino, Vec<TreeEntry>>,
}

impl Filesystem {
    /// Who owns what `caller` creates.
    fn owner(&self, caller: &Caller) -> (u32, u32) {
        if self.cfg.access.owner_from_caller {
            (caller.uid, caller.gid)
        } else {
            (self.cfg.uid, self.cfg.gid)
        }
    }

    /// A name a request may give a new entry: a valid one, and no OS metadata file when they
    /// are filtered (`EACCES`, as a folder that refuses them).
    fn check_new_name(&self, name: &str) -> Result<(), FsError> {
        check_name(name)?;
        if self.hides_os_junk() && crate::osjunk::is_os_junk(name) {
            return Err(FsError::new(
                Errno::Acces,
                "os_metadata_file",
                format!("{name}: OS metadata files are not stored (--no-filter-os-files keeps them)"),
            ));
        }
        Ok(())
    }

    /// Bucket mounts filter OS metadata files unless told not to (repos are never written).
    pub(crate) fn hides_os_junk(&self) -> bool {
        self.cfg.filter_os_files && matches!(self.remote, Remote::Bucket { .. })
    }

    /// Checks shared by every request that adds `name` to `parent`.
    fn ready_new_name(
        &mut self,
        id: RequestId,
        caller: &Caller,
        parent: Ino,
        name: &str,
        req: &Request,
        now: Instant,
    ) -> bool {
        if let Err(e) = self.check_new_name(name) {
            self.fail(id, e);
            return false;
        }
        if !self.ready_dir(id, caller, parent, req, now) {
            return false;
        }
        if self.inodes.child(parent, name).is_some() {
            self.fail(id, FsError::exists());
            return false;
        }
        true
    }

    /// A new node created in the mount; its directory changed too.
    fn add_local(&mut self, parent: Ino, name: &str, kind: NodeKind, mode: u16, caller: &Caller, now: Instant) -> Ino {
        let (uid, gid) = self.owner(caller);
        let ino = self.inodes.insert_child(parent, name, kind);
        let t = self.wall_ns(now);
        if let Some(n) = self.inodes.get_mut(ino) {
            n.local = true;
            n.meta = LocalMeta {
                perm: Some(mode & 0o7777),
                uid: Some(uid),
                gid: Some(gid),
                atime_ns: Some(t),
                mtime_ns: Some(t),
                ctime_ns: Some(t),
                create_verifier: None,
            };
        }
        self.listings.add_child(parent, ino);
        self.touch(parent, true, now);
        ino
    }

    /// A new, empty regular file; dirty from the start, since it exists even if nothing is
    /// ever written to it.
    fn new_file(&mut self, parent: Ino, name: &str, mode: u16, caller: &Caller, now: Instant) -> Result<Ino, FsError> {
        let empty = ContentSource::Xet { hash: hub::EMPTY_FILE_HASH.to_string() };
        let ino = self.add_local(parent, name, NodeKind::File { size: 0, source: empty }, mode, caller, now);
        self.ensure_write_state(ino, true, now)?;
        self.writes.touch(ino, now);
        Ok(ino)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create(
        &mut self,
        id: RequestId,
        caller: &Caller,
        parent: Ino,
        name: String,
        mode: u16,
        how: CreateHow,
        open: bool,
        now: Instant,
    ) {
        let req = Request::Create { parent, name: name.clone(), mode, how, open };
        if let Err(e) = self.check_new_name(&name) {
            return self.fail(id, e);
        }
        if !self.ready_dir(id, caller, parent, &req, now) {
            return;
        }
        let before = self.wcc(parent);
        let ino = match self.inodes.child(parent, &name) {
            Some(existing) => {
                let node = self.inodes.get(existing);
                let is_file = node.is_some_and(|n| matches!(n.kind, NodeKind::File { .. }));
                let same_create = node.and_then(|n| n.meta.create_verifier);
                match how {
                    CreateHow::Unchecked if is_file => existing,
                    CreateHow::Exclusive { verifier } if same_create == Some(verifier) => existing,
                    _ => return self.fail(id, FsError::exists()),
                }
            }
            None => {
                let ino = match self.new_file(parent, &name, mode, caller, now) {
                    Ok(ino) => ino,
                    Err(e) => return self.fail(id, e),
                };
                if let CreateHow::Exclusive { verifier } = how {
                    if let Some(n) = self.inodes.get_mut(ino) {
                        n.meta.create_verifier = Some(verifier);
                    }
                }
                if !open {
                    // Nobody has it open: it is saved like a closed file.
                    let due = self.debounced_due(ino, now);
                    self.upload_due(ino, due);
                }
                ino
            }
        };
        let fh = if open {
            if let Err(e) = self.open_for_write(ino, false, now) {
                return self.fail(id, e);
            }
            Some(self.handles.open(ino, true))
        } else {
            None
        };
        match self.attr(ino) {
            Some(attr) => {
                self.inodes.add_lookup(ino);
                let dir = self.change(parent, before);
                self.reply(id, Reply::Created { attr, ttl: self.cfg.metadata_ttl, fh, dir });
            }
            None => self.fail(id, FsError::not_found()),
        }
    }

    pub(crate) fn mkdir(&mut self, id: RequestId, caller: &Caller, parent: Ino, name: String, mode: u16, now: Instant) {
        let req = Request::Mkdir { parent, name: name.clone(), mode };
        if !self.ready_new_name(id, caller, parent, &name, &req, now) {
            return;
        }
        let before = self.wcc(parent);
        let ino = self.add_local(parent, &name, NodeKind::Dir, mode, caller, now);
        self.listings.set_empty(ino, now);
        self.entry_reply(id, ino, Some((parent, before)));
    }

    pub(crate) fn mknod(
        &mut self,
        id: RequestId,
        caller: &Caller,
        parent: Ino,
        name: String,
        (kind, mode, rdev): (FileKind, u16, u32),
        now: Instant,
    ) {
        let req = Request::Mknod { parent, name: name.clone(), kind, mode, rdev };
        if !self.ready_new_name(id, caller, parent, &name, &req, now) {
            return;
        }
        let before = self.wcc(parent);
        let ino = match kind {
            FileKind::RegularFile => match self.new_file(parent, &name, mode, caller, now) {
                Ok(ino) => {
                    // Nobody has it open: it is saved like a closed file.
                    self.upload_due(ino, now);
                    ino
                }
                Err(e) => return self.fail(id, e),
            },
            FileKind::Directory | FileKind::Symlink => {
                return self.fail(id, FsError::new(Errno::Inval, "mknod_kind", "use mkdir or symlink"))
            }
            special => self.add_local(parent, &name, NodeKind::Special { kind: special, rdev }, mode, caller, now),
        };
        self.entry_reply(id, ino, Some((parent, before)));
    }

    pub(crate) fn symlink(
        &mut self,
        id: RequestId,
        caller: &Caller,
        parent: Ino,
        name: String,
        target: String,
        now: Instant,
    ) {
        let req = Request::Symlink { parent, name: name.clone(), target: target.clone() };
        if !self.ready_new_name(id, caller, parent, &name, &req, now) {
            return;
        }
        let before = self.wcc(parent);
        let ino = self.add_local(parent, &name, NodeKind::Symlink { target }, 0o777, caller, now);
        self.entry_reply(id, ino, Some((parent, before)));
    }

    pub(crate) fn unlink(&mut self, id: RequestId, caller: &Caller, parent: Ino, name: String, now: Instant) {
        let req = Request::Unlink { parent, name: name.clone() };
        if !self.ready_dir(id, caller, parent, &req, now) {
            return;
        }
        let Some(ino) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        if self.is_dir(ino) {
            return self.fail(id, FsError::is_a_directory());
        }
        let before = self.wcc(parent);
        self.remove_file(parent, ino, now);
        self.touch(parent, true, now);
        self.touch(ino, false, now);
        let dir = self.change(parent, before);
        self.reply(id, Reply::Removed { dir });
    }

    /// Take a file or symlink out of `parent`; a file the bucket may hold gets a delete op.
    fn remove_file(&mut self, parent: Ino, ino: Ino, now: Instant) {
        let path = self.inodes.path(ino);
        let (is_file, local) = match self.inodes.get(ino) {
            Some(n) => (matches!(n.kind, NodeKind::File { .. }), n.local),
            None => return,
        };
        if is_file && (!local || self.commits.queue.latest(&path).is_some()) {
            self.commits.queue.push(path, Op::Delete, None, now);
        }
        self.listings.remove_child(parent, ino);
        self.inodes.detach(ino);
        self.keep_dir(parent);
        self.forget_changes(ino, now);
    }

    /// A directory an entry left: it stays in the mount even when no file path in the bucket
    /// has it as a prefix any more (until rmdir; a remount no longer shows an empty one).
    fn keep_dir(&mut self, dir: Ino) {
        if let Some(n) = self.inodes.get_mut(dir) {
            n.local = true;
        }
    }

    /// Take directory `dir` out of `parent`; whatever waits for its listing finds it gone.
    fn remove_dir(&mut self, parent: Ino, dir: Ino) {
        self.listings.remove_child(parent, dir);
        self.inodes.detach(dir);
        self.listings.drop_dir(dir);
        self.fail_waiting(Wait::Listing(dir), &FsError::not_found());
    }

    pub(crate) fn rmdir(&mut self, id: RequestId, caller: &Caller, parent: Ino, name: String, now: Instant) {
        let req = Request::Rmdir { parent, name: name.clone() };
        if !self.ready_dir(id, caller, parent, &req, now) {
            return;
        }
        let Some(ino) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        if !self.ready_dir(id, caller, ino, &req, now) {
            return;
        }
        if self.listings.child_count(ino) > 0 {
            return self.fail(id, FsError::new(Errno::NotEmpty, "not_empty", ""));
        }
        let before = self.wcc(parent);
        self.remove_dir(parent, ino);
        self.touch(parent, true, now);
        let dir = self.change(parent, before);
        self.reply(id, Reply::Removed { dir });
    }

    /// May a rename put a node (a directory if `src_is_dir`) in place of `dst`? A directory
    /// replaces only an empty directory (listed first: `req` may wait for it), a file only a
    /// file; otherwise the error is answered.
    pub(crate) fn may_replace(
        &mut self,
        id: RequestId,
        caller: &Caller,
        src_is_dir: bool,
        dst: Ino,
        req: &Request,
        now: Instant,
    ) -> bool {
        match (src_is_dir, self.is_dir(dst)) {
            (true, false) => self.fail(id, FsError::not_a_directory()),
            (false, true) => self.fail(id, FsError::is_a_directory()),
            (true, true) => {
                if !self.ready_dir(id, caller, dst, req, now) {
                    return false;
                }
                if self.listings.child_count(dst) == 0 {
                    return true;
                }
                self.fail(id, FsError::new(Errno::NotEmpty, "not_empty", ""))
            }
            (false, false) => return true,
        }
        false
    }

    pub(crate) fn rename(
        &mut self,
        id: RequestId,
        caller: &Caller,
        (parent, name): (Ino, String),
        (new_parent, new_name): (Ino, String),
        no_replace: bool,
        now: Instant,
    ) {
        let req = Request::Rename { parent, name: name.clone(), new_parent, new_name: new_name.clone(), no_replace };
        if let Err(e) = self.check_new_name(&new_name) {
            return self.fail(id, e);
        }
        if !self.ready_dir(id, caller, parent, &req, now) || !self.ready_dir(id, caller, new_parent, &req, now) {
            return;
        }
        let Some(src) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        let src_is_dir = self.is_dir(src);
        let dst = self.inodes.child(new_parent, &new_name);
        let (before_from, before_to) = (self.wcc(parent), self.wcc(new_parent));
        if dst == Some(src) {
            let (from, to) = (self.change(parent, before_from), self.change(new_parent, before_to));
            return self.reply(id, Reply::Renamed { from, to });
        }
        if src_is_dir && self.inodes.is_within(new_parent, src) {
            return self.fail(id, FsError::new(Errno::Inval, "into_itself", "cannot move a directory into itself"));
        }
        if let Some(dst) = dst {
            if no_replace {
                return self.fail(id, FsError::exists());
            }
            if !self.may_replace(id, caller, src_is_dir, dst, &req, now) {
                return;
            }
        }
        if src_is_dir && !self.inodes.get(src).is_some_and(|n| n.local) && !self.scans.done.contains_key(&src) {
            // Every file below the directory must be known before it can be moved.
            self.park(id, Wait::Scan(src), Then::Redispatch(caller.clone(), req));
            return self.start_scan(src);
        }
        if let Some(dst) = dst {
            if self.is_dir(dst) {
                self.remove_dir(new_parent, dst);
            } else {
                // Deleted unless the moved file's add at the same path replaces it.
                self.remove_file(new_parent, dst, now);
            }
        }
        let old_path = self.inodes.path(src);
        let moves = if src_is_dir { self.dir_moves(src, now) } else { self.file_moves(src, &old_path, now) };
        self.listings.remove_child(parent, src);
        self.keep_dir(parent);
        self.inodes.move_to(src, new_parent, &new_name);
        self.journal_moved(src);
        self.listings.add_child(new_parent, src);
        self.touch(parent, true, now);
        self.touch(new_parent, true, now);
        self.touch(src, false, now);
        let new_path = self.inodes.path(src);
        let mut touched = Vec::new();
        for (old, op) in moves {
            let new = format!("{new_path}{}", &old[old_path.len()..]);
            self.commits.queue.push(old.clone(), Op::Delete, None, now);
            self.commits.queue.push(new.clone(), op, None, now);
            touched.push(old);
            touched.push(new);
        }
        let reply = Reply::Renamed { from: self.change(parent, before_from), to: self.change(new_parent, before_to) };
        // A directory move answers once the bucket has it, so listings of its (renamed)
        // subdirectories never see a half-moved tree.
        match self.commits.queue.wait(&touched).filter(|_| src_is_dir) {
            Some(group) => self.park(id, Wait::Committed(group), Then::Answer(reply)),
            None => self.reply(id, reply),
        }
    }

    /// The add op that re-creates file `ino`'s committed content elsewhere, if the bucket has
    /// (or will have) it.
    fn content_op(&self, ino: Ino, now: Instant) -> Option<Op> {
        let node = self.inodes.get(ino)?;
        if node.local {
            return None;
        }
        match &node.kind {
            NodeKind::File { size, source: ContentSource::Xet { hash } } => {
                Some(Op::Add { xet_hash: hash.clone(), size: *size, mtime_ms: self.commit_mtime_ms(ino, now) })
            }
            _ => None,
        }
    }

    /// (old path, add op for the new path) for moving one file.
    fn file_moves(&self, ino: Ino, old_path: &str, now: Instant) -> Vec<(String, Op)> {
        self.content_op(ino, now).map(|op| vec![(old_path.to_string(), op)]).unwrap_or_default()
    }

    /// (old path, add op) for every file below directory `dir`: the scanned remote files
    /// (minus those deleted or replaced here) and the loaded nodes the bucket knows, in path
    /// order.
    fn dir_moves(&mut self, dir: Ino, now: Instant) -> Vec<(String, Op)> {
        let mut moves: std::collections::BTreeMap<String, Op> = std::collections::BTreeMap::new();
        for entry in self.scans.done.remove(&dir).unwrap_or_default() {
            if let hub::TreeEntryKind::File { size, source: ContentSource::Xet { hash } } = entry.kind {
                if self.commits.queue.latest(&entry.path).is_none() {
                    let mtime_ms = entry.mtime_secs.unwrap_or(self.mtime_secs) * 1000;
                    moves.insert(entry.path, Op::Add { xet_hash: hash, size, mtime_ms });
                }
            }
        }
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for (_, child) in self.listings.children(d) {
                match self.inodes.get(child).map(|n| &n.kind) {
                    Some(NodeKind::Dir) => stack.push(child),
                    Some(NodeKind::File { .. }) => {
                        let path = self.inodes.path(child);
                        match self.content_op(child, now) {
                            Some(op) => {
                                moves.insert(path, op);
                            }
                            None => {
                                moves.remove(&path);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        moves.into_iter().collect()
    }

    /// Recursive listing of `dir` before it is renamed (the rename waits on `Wait::Scan`).
    fn start_scan(&mut self, dir: Ino) {
        if self.scans.running.contains_key(&dir) {
            return;
        }
        let Remote::Bucket { id } = &self.remote else { return };
        let url = self.cfg.urls.bucket_tree(id, &self.inodes.path(dir), true, self.cfg.policy.tree_page_limit);
        self.scans.running.insert(dir, (Vec::new(), Vec::new()));
        self.hub_get(Purpose::Scan { dir }, url);
    }

    pub(crate) fn on_scan_page(&mut self, dir: Ino, page: hub::TreePage, next: Option<String>, now: Instant) {
        let prefix = format!("{}/", self.inodes.path(dir));
        if let Some((entries, skipped)) = self.scans.running.get_mut(&dir) {
            skipped.extend(page.skipped);
            for e in page.entries {
                if e.path.strip_prefix(&prefix).is_some_and(hub::is_clean_path) {
                    entries.push(e);
                } else {
                    skipped.push(format!("{:?}: not below {prefix}", e.path));
                }
            }
        }
        match next {
            Some(url) if self.cfg.urls.is_same_origin(&url) => {
                self.hub_get(Purpose::Scan { dir }, url);
            }
            Some(url) => {
                let err = FsError::new(Errno::Io, "bad_hub_response", format!("pagination link leaves the Hub: {url}"));
                self.fail_scan(dir, err);
            }
            None => {
                let (entries, mut skipped) = self.scans.running.remove(&dir).unwrap_or_default();
                let entries = hub::coherent_tree(entries, &mut skipped);
                self.log_skipped(&format!("listing {prefix} to move it"), &skipped);
                self.scans.done.insert(dir, entries);
                self.wake(Wait::Scan(dir), now);
                self.scans.done.remove(&dir);
            }
        }
    }

    pub(crate) fn fail_scan(&mut self, dir: Ino, err: FsError) {
        self.scans.running.remove(&dir);
        self.fail_waiting(Wait::Scan(dir), &err);
    }

    pub(crate) fn link(
        &mut self,
        id: RequestId,
        caller: &Caller,
        ino: Ino,
        new_parent: Ino,
        new_name: String,
        now: Instant,
    ) {
        let req = Request::Link { ino, new_parent, new_name: new_name.clone() };
        let kind = self.inodes.get(ino).map(|n| n.kind.clone());
        let Some(NodeKind::File { size, source }) = kind else {
            let errno = if kind.is_some() { Errno::Perm } else { Errno::NoEnt };
            return self.fail(id, FsError::new(errno, "link_not_a_file", "only regular files can be linked"));
        };
        if !self.ready_new_name(id, caller, new_parent, &new_name, &req, now) {
            return;
        }
        // A copy is made of saved content: a file being written is saved first.
        if self.writes.get(ino).is_some_and(|ws| ws.is_dirty()) {
            self.upload_due(ino, now);
            return self.park(id, Wait::Saved(ino), Then::Redispatch(caller.clone(), req));
        }
        let before = self.wcc(new_parent);
        self.touch(ino, false, now);
        self.touch(new_parent, true, now);
        let meta = self.inodes.get(ino).map(|n| n.meta.clone()).unwrap_or_default();
        let op = self.content_op(ino, now);
        let copy = self.inodes.insert_child(new_parent, &new_name, NodeKind::File { size, source });
        if let Some(n) = self.inodes.get_mut(copy) {
            n.meta = LocalMeta { create_verifier: None, ..meta };
        }
        self.listings.add_child(new_parent, copy);
        match op {
            Some(op) => self.commits.queue.push(self.inodes.path(copy), op, Some(copy), now),
            None => {
                // The source was never committed (an empty new file): the copy is local too.
                if let Some(n) = self.inodes.get_mut(copy) {
                    n.local = true;
                }
            }
        }
        self.entry_reply(id, copy, Some((new_parent, before)));
    }

    pub(crate) fn setattr(&mut self, id: RequestId, ino: Ino, set: SetAttr, guard_ctime: Option<i64>, now: Instant) {
        let Some(attr) = self.attr(ino) else { return self.fail(id, FsError::not_found()) };
        if guard_ctime.is_some_and(|ctime| ctime != attr.ctime_ns) {
            return self.fail(id, FsError::new(Errno::NotSync, "guard_mismatch", "the file changed since"));
        }
        let is_file = attr.kind == FileKind::RegularFile;
        if set.size.is_some() && !is_file {
            return self.fail(id, FsError::is_a_directory());
        }
        let before = attr.wcc();
        let wall = self.wall_ns(now);
        let at = |t: TimeSet| match t {
            TimeSet::Now => wall,
            TimeSet::At(ns) => ns,
        };
        let dirty = self.writes.get(ino).is_some_and(|ws| ws.is_dirty());
        let Some(node) = self.inodes.get_mut(ino) else { return self.fail(id, FsError::not_found()) };
        if let Some(mode) = set.mode {
            node.meta.perm = Some(mode & 0o7777);
        }
        if let Some(uid) = set.uid {
            node.meta.uid = Some(uid);
        }
        if let Some(gid) = set.gid {
            node.meta.gid = Some(gid);
        }
        if let Some(atime) = set.atime {
            node.meta.atime_ns = Some(at(atime));
        }
        let explicit_mtime = set.mtime.is_some();
        if let Some(mtime) = set.mtime {
            node.meta.mtime_ns = Some(at(mtime));
            // A saved file carries its mtime to the bucket in a re-add of the same content;
            // a dirty one carries it in its next commit.
            if is_file && !dirty {
                if let Some(op) = self.content_op(ino, now) {
                    let path = self.inodes.path(ino);
                    self.commits.queue.push(path, op, Some(ino), now);
                }
            }
        }
        if set != SetAttr::default() {
            self.touch(ino, false, now);
        }
        let Some(size) = set.size else { return self.answer_attr(Some((id, before)), ino) };
        if !explicit_mtime {
            self.touch(ino, true, now);
        }
        if !self.writes.has(ino) && size == attr.size {
            return self.answer_attr(Some((id, before)), ino);
        }
        if let Err(e) = self.ensure_write_state(ino, size == 0, now) {
            return self.fail(id, e);
        }
        self.resize(ino, size, now);
        self.answer_attr(Some((id, before)), ino);
    }
}

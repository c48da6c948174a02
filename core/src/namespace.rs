//! Changing the tree: create, mkdir, unlink, rmdir, rename, link, symlink and setattr.
//!
//! The bucket only stores files, so a change persists as commit ops: a removed file is a
//! `deleteFile`, a renamed file an `addFile` of the same hash at the new path plus a
//! `deleteFile` of the old one (no bytes move), a link an `addFile` of the same hash, an
//! explicit mtime a re-`addFile` carrying it. Directories, symlinks, modes and owners live in
//! the mount only. Every operation first makes sure the directories it touches are listed.

use crate::commits::Op;
use crate::error::{Errno, FsError};
use crate::fs::{Filesystem, Purpose, NAME_MAX};
use crate::hub::{self, ContentSource, TreeEntry};
use crate::inode::LocalMeta;
use crate::inode::{Ino, NodeKind};
use crate::listing::Waiter;
use crate::request::{FileKind, Owner, Reply, Request, RequestId, SetAttr};
use crate::time::Instant;

fn check_name(name: &str) -> Result<(), FsError> {
    if name.len() > NAME_MAX {
        return Err(FsError::new(Errno::NameTooLong, "name_too_long", ""));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(FsError::new(Errno::Inval, "invalid_name", format!("{name:?}")));
    }
    Ok(())
}

impl Filesystem {
    /// Is `dir` a listed directory? If it is not listed yet, `req` is parked and re-run once
    /// it is; an error is answered here.
    fn ready_dir(&mut self, id: RequestId, dir: Ino, req: &Request, now: Instant) -> bool {
        if let Err(e) = self.check_dir(dir) {
            self.fail(id, e);
            return false;
        }
        if self.listed(dir, Waiter::Retry { req: id }, now) {
            return true;
        }
        self.retry_requests.insert(id, req.clone());
        false
    }

    /// Checks shared by every request that adds `name` to `parent`.
    fn ready_new_name(&mut self, id: RequestId, parent: Ino, name: &str, req: &Request, now: Instant) -> bool {
        if let Err(e) = check_name(name) {
            self.fail(id, e);
            return false;
        }
        if !self.ready_dir(id, parent, req, now) {
            return false;
        }
        if self.inodes.child(parent, name).is_some() {
            self.fail(id, FsError::new(Errno::Exist, "exists", ""));
            return false;
        }
        true
    }

    fn entry_reply(&mut self, id: RequestId, ino: Ino) {
        match self.attr(ino) {
            Some(attr) => {
                self.inodes.add_lookup(ino);
                self.reply(id, Reply::Entry { attr, ttl: self.cfg.metadata_ttl });
            }
            None => self.fail(id, FsError::not_found()),
        }
    }

    /// A new node created in the mount, owned by the caller; its directory changed too.
    fn add_local(&mut self, parent: Ino, name: &str, kind: NodeKind, mode: u16, owner: Owner, now: Instant) -> Ino {
        let ino = self.inodes.insert_child(parent, name, kind);
        let t = self.wall_ns(now);
        if let Some(n) = self.inodes.get_mut(ino) {
            n.local = true;
            n.meta = LocalMeta {
                perm: Some(mode & 0o7777),
                uid: Some(owner.uid),
                gid: Some(owner.gid),
                atime_ns: Some(t),
                mtime_ns: Some(t),
                ctime_ns: Some(t),
            };
        }
        self.listings.add_child(parent, ino);
        self.touch(parent, true, now);
        ino
    }

    /// A new, empty regular file; dirty from the start, since it exists even if nothing is
    /// ever written to it.
    fn new_file(&mut self, parent: Ino, name: &str, mode: u16, owner: Owner, now: Instant) -> Result<Ino, FsError> {
        let empty = ContentSource::Xet { hash: hub::EMPTY_FILE_HASH.to_string() };
        let ino = self.add_local(parent, name, NodeKind::File { size: 0, source: empty }, mode, owner, now);
        self.ensure_write_state(ino, true, now)?;
        if let Some(ws) = self.writes.get_mut(&ino) {
            ws.generation += 1;
            ws.dirty_since = Some(now);
        }
        Ok(ino)
    }

    pub(crate) fn create(&mut self, id: RequestId, parent: Ino, name: String, mode: u16, owner: Owner, now: Instant) {
        let req = Request::Create { parent, name: name.clone(), mode, owner };
        if !self.ready_new_name(id, parent, &name, &req, now) {
            return;
        }
        let ino = match self.new_file(parent, &name, mode, owner, now) {
            Ok(ino) => ino,
            Err(e) => return self.fail(id, e),
        };
        if let Some(ws) = self.writes.get_mut(&ino) {
            ws.writers += 1;
        }
        let fh = self.new_handle(ino);
        match self.attr(ino) {
            Some(attr) => {
                self.inodes.add_lookup(ino);
                self.reply(id, Reply::Created { attr, ttl: self.cfg.metadata_ttl, fh });
            }
            None => self.fail(id, FsError::not_found()),
        }
    }

    pub(crate) fn mkdir(&mut self, id: RequestId, parent: Ino, name: String, mode: u16, owner: Owner, now: Instant) {
        let req = Request::Mkdir { parent, name: name.clone(), mode, owner };
        if !self.ready_new_name(id, parent, &name, &req, now) {
            return;
        }
        let ino = self.add_local(parent, &name, NodeKind::Dir, mode, owner, now);
        self.listings.set_empty(ino, now);
        self.entry_reply(id, ino);
    }

    pub(crate) fn mknod(
        &mut self,
        id: RequestId,
        parent: Ino,
        name: String,
        (kind, mode, rdev): (FileKind, u16, u32),
        owner: Owner,
        now: Instant,
    ) {
        let req = Request::Mknod { parent, name: name.clone(), kind, mode, rdev, owner };
        if !self.ready_new_name(id, parent, &name, &req, now) {
            return;
        }
        let ino = match kind {
            FileKind::RegularFile => match self.new_file(parent, &name, mode, owner, now) {
                Ok(ino) => {
                    // Nobody has it open: it is saved like a closed file.
                    if let Some(ws) = self.writes.get_mut(&ino) {
                        ws.due = Some(now);
                    }
                    ino
                }
                Err(e) => return self.fail(id, e),
            },
            FileKind::Directory | FileKind::Symlink => {
                return self.fail(id, FsError::new(Errno::Inval, "mknod_kind", "use mkdir or symlink"))
            }
            special => self.add_local(parent, &name, NodeKind::Special { kind: special, rdev }, mode, owner, now),
        };
        self.entry_reply(id, ino);
    }

    pub(crate) fn symlink(
        &mut self,
        id: RequestId,
        parent: Ino,
        name: String,
        target: String,
        owner: Owner,
        now: Instant,
    ) {
        let req = Request::Symlink { parent, name: name.clone(), target: target.clone(), owner };
        if !self.ready_new_name(id, parent, &name, &req, now) {
            return;
        }
        let ino = self.add_local(parent, &name, NodeKind::Symlink { target }, 0o777, owner, now);
        self.entry_reply(id, ino);
    }

    pub(crate) fn unlink(&mut self, id: RequestId, parent: Ino, name: String, now: Instant) {
        let req = Request::Unlink { parent, name: name.clone() };
        if !self.ready_dir(id, parent, &req, now) {
            return;
        }
        let Some(ino) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        if matches!(self.inodes.get(ino).map(|n| &n.kind), Some(NodeKind::Dir)) {
            return self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", ""));
        }
        self.remove_file(parent, ino, now);
        self.touch(parent, true, now);
        self.touch(ino, false, now);
        self.reply(id, Reply::Empty);
    }

    /// Take a file or symlink out of `parent`; a file the bucket may hold gets a delete op.
    fn remove_file(&mut self, parent: Ino, ino: Ino, now: Instant) {
        let path = self.inodes.path(ino);
        let (is_file, local) = match self.inodes.get(ino) {
            Some(n) => (matches!(n.kind, NodeKind::File { .. }), n.local),
            None => return,
        };
        if is_file && (!local || self.commits.latest(&path).is_some()) {
            self.commits.push(path, Op::Delete, None, now);
        }
        self.listings.remove_child(parent, ino);
        self.inodes.detach(ino);
        self.forget_changes(ino, now);
    }

    pub(crate) fn rmdir(&mut self, id: RequestId, parent: Ino, name: String, now: Instant) {
        let req = Request::Rmdir { parent, name: name.clone() };
        if !self.ready_dir(id, parent, &req, now) {
            return;
        }
        let Some(ino) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        if !self.ready_dir(id, ino, &req, now) {
            return;
        }
        if self.listings.child_count(ino) > 0 {
            return self.fail(id, FsError::new(Errno::NotEmpty, "not_empty", ""));
        }
        self.listings.remove_child(parent, ino);
        self.inodes.detach(ino);
        for w in self.listings.drop_dir(ino) {
            self.fail_waiter(w);
        }
        self.touch(parent, true, now);
        self.reply(id, Reply::Empty);
    }

    fn fail_waiter(&mut self, w: Waiter) {
        let req = match w {
            Waiter::Lookup { req, .. } | Waiter::ReadDir { req, .. } => req,
            Waiter::Retry { req } => {
                self.retry_requests.remove(&req);
                req
            }
        };
        self.fail(req, FsError::not_found());
    }

    pub(crate) fn rename(
        &mut self,
        id: RequestId,
        (parent, name): (Ino, String),
        (new_parent, new_name): (Ino, String),
        no_replace: bool,
        now: Instant,
    ) {
        let req = Request::Rename { parent, name: name.clone(), new_parent, new_name: new_name.clone(), no_replace };
        if let Err(e) = check_name(&new_name) {
            return self.fail(id, e);
        }
        if !self.ready_dir(id, parent, &req, now) || !self.ready_dir(id, new_parent, &req, now) {
            return;
        }
        let Some(src) = self.inodes.child(parent, &name) else { return self.fail(id, FsError::not_found()) };
        let src_is_dir = matches!(self.inodes.get(src).map(|n| &n.kind), Some(NodeKind::Dir));
        let dst = self.inodes.child(new_parent, &new_name);
        if dst == Some(src) {
            return self.reply(id, Reply::Empty);
        }
        if src_is_dir && self.inodes.is_within(new_parent, src) {
            return self.fail(id, FsError::new(Errno::Inval, "into_itself", "cannot move a directory into itself"));
        }
        if let Some(dst) = dst {
            if no_replace {
                return self.fail(id, FsError::new(Errno::Exist, "exists", ""));
            }
            let dst_is_dir = matches!(self.inodes.get(dst).map(|n| &n.kind), Some(NodeKind::Dir));
            match (src_is_dir, dst_is_dir) {
                (true, false) => return self.fail(id, FsError::new(Errno::NotDir, "not_a_directory", "")),
                (false, true) => return self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", "")),
                (true, true) => {
                    if !self.ready_dir(id, dst, &req, now) {
                        return;
                    }
                    if self.listings.child_count(dst) > 0 {
                        return self.fail(id, FsError::new(Errno::NotEmpty, "not_empty", ""));
                    }
                }
                (false, false) => {}
            }
        }
        if src_is_dir && !self.inodes.get(src).is_some_and(|n| n.local) && !self.scanned.contains_key(&src) {
            // Every file below the directory must be known before it can be moved.
            self.retry_requests.insert(id, req);
            return self.start_scan(src, id);
        }
        if let Some(dst) = dst {
            if matches!(self.inodes.get(dst).map(|n| &n.kind), Some(NodeKind::Dir)) {
                self.listings.remove_child(new_parent, dst);
                self.inodes.detach(dst);
                self.listings.drop_dir(dst);
            } else {
                // Deleted unless the moved file's add at the same path replaces it.
                self.remove_file(new_parent, dst, now);
            }
        }
        let old_path = self.inodes.path(src);
        let moves = if src_is_dir { self.dir_moves(src, now) } else { self.file_moves(src, &old_path, now) };
        self.listings.remove_child(parent, src);
        self.inodes.move_to(src, new_parent, &new_name);
        self.listings.add_child(new_parent, src);
        self.touch(parent, true, now);
        self.touch(new_parent, true, now);
        self.touch(src, false, now);
        let new_path = self.inodes.path(src);
        let mut touched = Vec::new();
        for (old, op) in moves {
            let new = format!("{new_path}{}", &old[old_path.len()..]);
            self.commits.push(old.clone(), Op::Delete, None, now);
            self.commits.push(new.clone(), op, None, now);
            touched.push(old);
            touched.push(new);
        }
        // A directory move answers once the bucket has it, so listings of its (renamed)
        // subdirectories never see a half-moved tree.
        if !src_is_dir || self.commits.wait(id, &touched).is_none() {
            self.reply(id, Reply::Empty);
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
    /// (minus those deleted or replaced here) and the loaded nodes the bucket knows.
    fn dir_moves(&mut self, dir: Ino, now: Instant) -> Vec<(String, Op)> {
        let mut moves: hashbrown::HashMap<String, Op> = hashbrown::HashMap::new();
        for entry in self.scanned.remove(&dir).unwrap_or_default() {
            if let hub::TreeEntryKind::File { size, source: ContentSource::Xet { hash } } = entry.kind {
                if self.commits.latest(&entry.path).is_none() {
                    let mtime_ms = entry.mtime_secs.unwrap_or(self.cfg.mtime_secs) * 1000;
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

    /// Recursive listing of `dir` before it is renamed; `id` re-runs when it is complete.
    fn start_scan(&mut self, dir: Ino, id: RequestId) {
        let waiting = self.scans.entry(dir).or_default();
        waiting.1.push(id);
        if waiting.1.len() > 1 {
            return;
        }
        let crate::config::Source::Bucket { id: bucket } = &self.cfg.source else { return };
        let url = self.cfg.urls.bucket_tree(bucket, &self.inodes.path(dir), true, self.cfg.policy.tree_page_limit);
        self.start_effect(Purpose::Scan { dir }, crate::effect::Effect::HubGet { url });
    }

    pub(crate) fn on_scan_page(&mut self, dir: Ino, entries: Vec<TreeEntry>, next: Option<String>, now: Instant) {
        let prefix = format!("{}/", self.inodes.path(dir));
        if let Some(scan) = self.scans.get_mut(&dir) {
            scan.0.extend(entries.into_iter().filter(|e| e.path.starts_with(&prefix)));
        }
        match next {
            Some(url) if self.cfg.urls.is_same_origin(&url) => {
                self.start_effect(Purpose::Scan { dir }, crate::effect::Effect::HubGet { url });
            }
            Some(url) => {
                let err = FsError::new(Errno::Io, "bad_hub_response", format!("pagination link leaves the Hub: {url}"));
                self.fail_scan(dir, err);
            }
            None => {
                let (entries, waiting) = self.scans.remove(&dir).unwrap_or_default();
                self.scanned.insert(dir, entries);
                for id in waiting {
                    if let Some(req) = self.retry_requests.remove(&id) {
                        self.dispatch(id, req, now);
                    }
                }
                self.scanned.remove(&dir);
            }
        }
    }

    pub(crate) fn fail_scan(&mut self, dir: Ino, err: FsError) {
        let (_, waiting) = self.scans.remove(&dir).unwrap_or_default();
        for id in waiting {
            self.retry_requests.remove(&id);
            self.fail(id, err.clone());
        }
    }

    pub(crate) fn link(&mut self, id: RequestId, ino: Ino, new_parent: Ino, new_name: String, now: Instant) {
        let req = Request::Link { ino, new_parent, new_name: new_name.clone() };
        let kind = self.inodes.get(ino).map(|n| n.kind.clone());
        let Some(NodeKind::File { size, source }) = kind else {
            let errno = if kind.is_some() { Errno::Perm } else { Errno::NoEnt };
            return self.fail(id, FsError::new(errno, "link_not_a_file", "only regular files can be linked"));
        };
        if !self.ready_new_name(id, new_parent, &new_name, &req, now) {
            return;
        }
        // A copy is made of saved content: a file being written is saved first.
        if let Some(ws) = self.writes.get_mut(&ino).filter(|ws| ws.is_dirty()) {
            ws.after_save.push((id, req));
            ws.due = Some(now);
            return;
        }
        self.touch(ino, false, now);
        self.touch(new_parent, true, now);
        let meta = self.inodes.get(ino).map(|n| n.meta.clone()).unwrap_or_default();
        let op = self.content_op(ino, now);
        let copy = self.inodes.insert_child(new_parent, &new_name, NodeKind::File { size, source });
        if let Some(n) = self.inodes.get_mut(copy) {
            n.meta = meta;
        }
        self.listings.add_child(new_parent, copy);
        match op {
            Some(op) => self.commits.push(self.inodes.path(copy), op, Some(copy), now),
            None => {
                // The source was never committed (an empty new file): the copy is local too.
                if let Some(n) = self.inodes.get_mut(copy) {
                    n.local = true;
                }
            }
        }
        self.entry_reply(id, copy);
    }

    pub(crate) fn setattr(&mut self, id: RequestId, ino: Ino, set: SetAttr, now: Instant) {
        let Some(node) = self.inodes.get(ino) else { return self.fail(id, FsError::not_found()) };
        let is_file = matches!(node.kind, NodeKind::File { .. });
        if set.size.is_some() && !is_file {
            return self.fail(id, FsError::new(Errno::IsDir, "is_a_directory", ""));
        }
        let node = self.inodes.get_mut(ino).expect("checked above");
        if let Some(mode) = set.mode {
            node.meta.perm = Some(mode & 0o7777);
        }
        if let Some(uid) = set.uid {
            node.meta.uid = Some(uid);
        }
        if let Some(gid) = set.gid {
            node.meta.gid = Some(gid);
        }
        if let Some(atime) = set.atime_ns {
            node.meta.atime_ns = Some(atime);
        }
        let explicit_mtime = set.mtime_ns.is_some();
        if let Some(mtime) = set.mtime_ns {
            node.meta.mtime_ns = Some(mtime);
            // A saved file carries its mtime to the bucket in a re-add of the same content;
            // a dirty one carries it in its next commit.
            let dirty = self.writes.get(&ino).is_some_and(|ws| ws.is_dirty());
            if is_file && !dirty {
                if let Some(op) = self.content_op(ino, now) {
                    let path = self.inodes.path(ino);
                    self.commits.push(path, op, Some(ino), now);
                }
            }
        }
        if set != SetAttr::default() {
            self.touch(ino, false, now);
        }
        match set.size {
            Some(size) => {
                if !explicit_mtime {
                    self.touch(ino, true, now);
                }
                let current = match self.inodes.get(ino).map(|n| &n.kind) {
                    Some(NodeKind::File { size, .. }) => *size,
                    _ => 0,
                };
                if !self.writes.contains_key(&ino) && size == current {
                    return self.answer_setattr(id, ino);
                }
                if let Err(e) = self.ensure_write_state(ino, size == 0, now) {
                    return self.fail(id, e);
                }
                if size == 0 {
                    // Already empty in the mount; writes wait for the staging file to follow.
                    return self.answer_setattr(id, ino);
                }
                self.truncate_written(Some(id), ino, size, now);
            }
            None => self.answer_setattr(id, ino),
        }
    }

    fn answer_setattr(&mut self, id: RequestId, ino: Ino) {
        match self.attr(ino) {
            Some(attr) => self.reply(id, Reply::Attr { attr, ttl: self.cfg.metadata_ttl }),
            None => self.fail(id, FsError::not_found()),
        }
    }
}

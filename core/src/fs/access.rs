//! Permission checks for frontends without kernel-side checking (NFS): POSIX mode bits against
//! the caller's uid, gid and groups, the sticky bit on removals, and who may change owners,
//! modes and times. FUSE mounts leave this to the kernel (`default_permissions`) and never call
//! it. As NFS servers do, the owner of a file may read and write it whatever its mode (a file
//! created `0200` must still accept the writes of its creator).

use crate::error::{Errno, FsError};
use crate::inode::Ino;
use crate::request::access::{EXECUTE, READ, WRITE};
use crate::request::{Attr, Caller, FileKind, Request, SetAttr, TimeSet};

use super::Filesystem;

fn denied(what: &str) -> FsError {
    FsError::new(Errno::Acces, "permission_denied", what.to_string())
}

fn not_permitted(what: &str) -> FsError {
    FsError::new(Errno::Perm, "not_permitted", what.to_string())
}

impl Filesystem {
    /// The `access` bits `caller` has on a node with `attr`. Root reads and writes anything and
    /// executes directories and files with any execute bit.
    pub(crate) fn allowed(&self, caller: &Caller, attr: &Attr) -> u32 {
        if caller.uid == 0 {
            let x = attr.kind == FileKind::Directory || attr.perm & 0o111 != 0;
            return READ | WRITE | if x { EXECUTE } else { 0 };
        }
        let bits = if caller.uid == attr.uid {
            attr.perm >> 6
        } else if caller.in_group(attr.gid) {
            attr.perm >> 3
        } else {
            attr.perm
        };
        u32::from(bits & 7)
    }

    /// Does `caller` have every bit of `mask` on `ino`? A missing node passes: the handler
    /// reports it.
    fn require(&self, caller: &Caller, ino: Ino, mask: u32, owner_override: bool) -> Result<(), FsError> {
        let Some(attr) = self.attr(ino) else { return Ok(()) };
        if owner_override && caller.uid == attr.uid {
            return Ok(());
        }
        if self.allowed(caller, &attr) & mask == mask {
            Ok(())
        } else {
            Err(denied(&self.inodes.path(ino)))
        }
    }

    /// `require` on a node a request uses as a directory: one that is not a directory passes,
    /// so its handler answers `ENOTDIR` (as Linux does) rather than `EACCES`.
    fn require_dir(&self, caller: &Caller, dir: Ino, mask: u32) -> Result<(), FsError> {
        match self.attr(dir) {
            Some(attr) if attr.kind != FileKind::Directory => Ok(()),
            _ => self.require(caller, dir, mask, false),
        }
    }

    /// Removing `name` from sticky directory `parent` needs the file or the directory.
    fn sticky(&self, caller: &Caller, parent: Ino, name: &str) -> Result<(), FsError> {
        let Some(dir) = self.attr(parent) else { return Ok(()) };
        let Some(child) = self.inodes.child(parent, name).and_then(|c| self.attr(c)) else { return Ok(()) };
        if dir.perm & 0o1000 == 0 || caller.uid == 0 || caller.uid == dir.uid || caller.uid == child.uid {
            Ok(())
        } else {
            Err(denied(name))
        }
    }

    fn check_setattr(&self, caller: &Caller, ino: Ino, set: &SetAttr) -> Result<(), FsError> {
        let Some(attr) = self.attr(ino) else { return Ok(()) };
        let (root, owner) = (caller.uid == 0, caller.uid == attr.uid);
        if set.mode.is_some() && !root && !owner {
            return Err(not_permitted("chmod: not the owner"));
        }
        if set.uid.is_some_and(|u| u != attr.uid) && !root {
            return Err(not_permitted("chown: only root changes owners"));
        }
        if set.gid.is_some_and(|g| g != attr.gid) && !root && !(owner && caller.in_group(set.gid.unwrap_or(0))) {
            return Err(not_permitted("chgrp: not the owner or not in the group"));
        }
        if set.size.is_some() {
            self.require(caller, ino, WRITE, true)?;
        }
        for t in [set.atime, set.mtime].into_iter().flatten() {
            match t {
                TimeSet::At(_) if !root && !owner => return Err(not_permitted("utimes: not the owner")),
                TimeSet::Now if !root && !owner => self.require(caller, ino, WRITE, false)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// May `caller` send `req`?
    pub(crate) fn check_access(&self, caller: &Caller, req: &Request) -> Result<(), FsError> {
        let dir_write = WRITE | EXECUTE;
        match req {
            Request::Lookup { parent, .. } => self.require_dir(caller, *parent, EXECUTE),
            Request::ReadDir { ino, .. } => self.require_dir(caller, *ino, READ),
            Request::Open { ino, write, truncate } => {
                let mask = if *write || *truncate { WRITE } else { READ };
                self.require(caller, *ino, mask, false)
            }
            Request::Read { ino, .. } => self.require(caller, *ino, READ, true),
            Request::Write { ino, .. } | Request::Fallocate { ino, .. } => self.require(caller, *ino, WRITE, true),
            Request::Create { parent, .. }
            | Request::Mkdir { parent, .. }
            | Request::Mknod { parent, .. }
            | Request::Symlink { parent, .. } => self.require_dir(caller, *parent, dir_write),
            Request::Unlink { parent, name } | Request::Rmdir { parent, name } => {
                self.require_dir(caller, *parent, dir_write)?;
                self.sticky(caller, *parent, name)
            }
            Request::Rename { parent, name, new_parent, new_name, .. } => {
                self.require_dir(caller, *parent, dir_write)?;
                self.require_dir(caller, *new_parent, dir_write)?;
                self.sticky(caller, *parent, name)?;
                self.sticky(caller, *new_parent, new_name)
            }
            Request::Link { new_parent, .. } => self.require_dir(caller, *new_parent, dir_write),
            Request::SetAttr { ino, set, .. } => self.check_setattr(caller, *ino, set),
            _ => Ok(()),
        }
    }
}

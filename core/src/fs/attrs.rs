//! Attributes: what `stat` shows for a node (modes, owners, times, sizes, link counts), the
//! before/after pairs of changed objects, and the wall clock core was given.

use crate::config::WriteMode;
use crate::error::{Errno, FsError};
use crate::hub::{self, TreeEntryKind};
use crate::inode::{Ino, NodeKind};
use crate::request::{Attr, Change, FileKind, WccAttr};
use crate::time::Instant;

use super::Filesystem;

const NANOS: i64 = 1_000_000_000;

impl Filesystem {
    pub(crate) fn attr(&self, ino: Ino) -> Option<Attr> {
        let node = self.inodes.get(ino)?;
        let writable = self.cfg.writes.mode != WriteMode::ReadOnly;
        // Overlay: every directory takes new entries (in the layer); remote files stay read-only.
        let dir_writable = writable || self.cfg.overlay;
        let (kind, size, perm, rdev) = match &node.kind {
            NodeKind::Dir => (FileKind::Directory, 0, if dir_writable { 0o755 } else { 0o555 }, 0),
            NodeKind::File { size, .. } => (FileKind::RegularFile, *size, if writable { 0o644 } else { 0o444 }, 0),
            NodeKind::Symlink { target } => (FileKind::Symlink, target.len() as u64, 0o777, 0),
            NodeKind::Special { kind, rdev } => (*kind, 0, 0o644, *rdev),
        };
        let nlink = match node.kind {
            // `.` and the parent's entry, plus each subdirectory's `..` (as far as listed).
            NodeKind::Dir => {
                let subdirs = self.listings.children(ino).iter().filter(|(_, c)| self.is_dir(*c)).count();
                2 + subdirs as u32
            }
            _ if node.detached => 0,
            _ => 1,
        };
        let mtime_ns = node.meta.mtime_ns.unwrap_or(self.mtime_secs.saturating_mul(NANOS));
        Some(Attr {
            ino,
            size,
            kind,
            perm: node.meta.perm.unwrap_or(perm),
            nlink,
            uid: node.meta.uid.unwrap_or(self.cfg.uid),
            gid: node.meta.gid.unwrap_or(self.cfg.gid),
            atime_ns: node.meta.atime_ns.unwrap_or(mtime_ns),
            mtime_ns,
            ctime_ns: node.meta.ctime_ns.unwrap_or(mtime_ns),
            rdev,
        })
    }

    /// `ino`'s attributes before a change (zeros for a node that does not exist).
    pub(crate) fn wcc(&self, ino: Ino) -> WccAttr {
        self.attr(ino).map_or(WccAttr { size: 0, mtime_ns: 0, ctime_ns: 0 }, |a| a.wcc())
    }

    /// `ino` changed from `before`: the pair a reply carries.
    pub(crate) fn change(&self, ino: Ino, before: WccAttr) -> Change {
        let after = self.attr(ino).unwrap_or_else(|| self.gone_attr(ino));
        Change { before, after }
    }

    /// Attributes of a node that no longer exists (a directory removed while a reply was owed).
    fn gone_attr(&self, ino: Ino) -> Attr {
        Attr {
            ino,
            size: 0,
            kind: FileKind::Directory,
            perm: 0,
            nlink: 0,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            rdev: 0,
        }
    }

    pub(crate) fn file_size(&self, ino: Ino) -> u64 {
        match self.inodes.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, .. }) => *size,
            _ => 0,
        }
    }

    pub(crate) fn check_dir(&self, ino: Ino) -> Result<(), FsError> {
        match self.inodes.get(ino).map(|n| &n.kind) {
            None => Err(FsError::not_found()),
            Some(NodeKind::Dir) => Ok(()),
            Some(_) => Err(FsError::not_a_directory()),
        }
    }

    pub(crate) fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.inodes.get(ino).map(|n| &n.kind), Some(NodeKind::Dir))
    }

    /// Wall-clock nanoseconds since the epoch at `now` (the runtime's origin is
    /// `cfg.wall_ms_at_zero`).
    pub(crate) fn wall_ns(&self, now: Instant) -> i64 {
        self.cfg.wall_ms_at_zero.saturating_mul(1_000_000).saturating_add(now.as_nanos() as i64)
    }

    /// Set `ino`'s ctime (and with `modified`, its mtime) to `now`.
    pub(crate) fn touch(&mut self, ino: Ino, modified: bool, now: Instant) {
        let t = self.wall_ns(now);
        if let Some(n) = self.inodes.get_mut(ino) {
            n.meta.ctime_ns = Some(t);
            if modified {
                n.meta.mtime_ns = Some(t);
            }
        }
    }

    /// The mtime a commit of `ino` carries, in milliseconds.
    pub(crate) fn commit_mtime_ms(&self, ino: Ino, now: Instant) -> i64 {
        let ns = self.inodes.get(ino).and_then(|n| n.meta.mtime_ns).unwrap_or_else(|| self.wall_ns(now));
        ns.div_euclid(1_000_000)
    }

    pub(crate) fn set_size(&mut self, ino: Ino, new_size: u64) {
        if let Some(NodeKind::File { size, .. }) = self.inodes.get_mut(ino).map(|n| &mut n.kind) {
            *size = new_size;
        }
    }
}

/// Which tree-entry kinds become which node kinds.
pub(crate) fn node_kind(entry: &hub::TreeEntry) -> NodeKind {
    match &entry.kind {
        TreeEntryKind::Directory => NodeKind::Dir,
        TreeEntryKind::File { size, source } => NodeKind::File { size: *size, source: source.clone() },
    }
}

/// A name a request may create.
pub(crate) fn check_name(name: &str) -> Result<(), FsError> {
    if name.len() > super::NAME_MAX {
        return Err(FsError::new(Errno::NameTooLong, "name_too_long", ""));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(FsError::new(Errno::Inval, "invalid_name", format!("{name:?}")));
    }
    Ok(())
}

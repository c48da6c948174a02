//! The one request type both frontends speak, and the replies core gives.
//!
//! Requests address files by inode; NFS is stateless, so reads without an open handle
//! (`fh: None`) are first-class.

use std::time::Duration;

use bytes::Bytes;

use crate::error::FsError;
use crate::inode::Ino;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Lookup {
        parent: Ino,
        name: String,
    },
    Forget {
        ino: Ino,
        nlookup: u64,
    },
    GetAttr {
        ino: Ino,
    },
    /// Entries from `offset` on (0 = start); with `plus`, each entry carries its attributes and
    /// counts as a lookup.
    ReadDir {
        ino: Ino,
        offset: u64,
        plus: bool,
    },
    /// `write` is true when the open asks for write access or truncation.
    Open {
        ino: Ino,
        write: bool,
    },
    Read {
        ino: Ino,
        fh: Option<u64>,
        offset: u64,
        size: u32,
    },
    Release {
        fh: u64,
    },
    /// `flush` on close and `fsync`: make what was written through `fh` durable.
    Flush {
        ino: Ino,
        fh: u64,
    },
    /// May the caller access `ino`, for writing when `write`?
    Access {
        ino: Ino,
        write: bool,
    },
    ReadLink {
        ino: Ino,
    },
    StatFs,
    /// Any request that would modify the tree or a file (write, setattr, create, mkdir, unlink,
    /// rmdir, rename, symlink, link, mknod, xattr writes).
    Modify {
        op: &'static str,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    RegularFile,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub size: u64,
    pub kind: FileKind,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch; used for atime, mtime and ctime.
    pub mtime_secs: i64,
}

impl Attr {
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(512)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    /// Offset of the entry after this one (what the next readdir passes back).
    pub next_offset: u64,
    pub kind: FileKind,
    pub name: String,
    /// Present for readdirplus replies (not for `.` and `..`, which carry no lookup).
    pub attr: Option<Attr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub files: u64,
    pub block_size: u32,
    pub name_max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Entry { attr: Attr, ttl: Duration },
    Attr { attr: Attr, ttl: Duration },
    Dir { entries: Vec<DirEntry>, ttl: Duration },
    Open { fh: u64, keep_cache: bool },
    Data(Bytes),
    Empty,
    StatFs(StatFs),
    Error(FsError),
}

/// Kernel cache invalidations core asks the frontend to send, off the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelNotify {
    InvalidateInode { ino: Ino },
    InvalidateEntry { parent: Ino, name: String },
}

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
    /// `write`: the open asks for write access; `truncate`: `O_TRUNC`.
    Open {
        ino: Ino,
        write: bool,
        truncate: bool,
    },
    Read {
        ino: Ino,
        fh: Option<u64>,
        offset: u64,
        size: u32,
    },
    Write {
        ino: Ino,
        fh: Option<u64>,
        offset: u64,
        data: Bytes,
    },
    Release {
        fh: u64,
    },
    /// `close()` of a descriptor (FUSE flush).
    Flush {
        ino: Ino,
        fh: u64,
    },
    /// `fsync`: answered once what was written is durable in the bucket (or failed).
    Fsync {
        ino: Ino,
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
    /// A new regular file, opened for writing, owned by the caller.
    Create {
        parent: Ino,
        name: String,
        mode: u16,
        owner: Owner,
    },
    Mkdir {
        parent: Ino,
        name: String,
        mode: u16,
        owner: Owner,
    },
    /// A regular file (not opened), a FIFO, a socket or a device node.
    Mknod {
        parent: Ino,
        name: String,
        kind: FileKind,
        mode: u16,
        rdev: u32,
        owner: Owner,
    },
    Unlink {
        parent: Ino,
        name: String,
    },
    Rmdir {
        parent: Ino,
        name: String,
    },
    Rename {
        parent: Ino,
        name: String,
        new_parent: Ino,
        new_name: String,
        /// `RENAME_NOREPLACE`.
        no_replace: bool,
    },
    Symlink {
        parent: Ino,
        name: String,
        target: String,
        owner: Owner,
    },
    /// A second name for a file: a server-side copy (buckets have no hard links).
    Link {
        ino: Ino,
        new_parent: Ino,
        new_name: String,
    },
    SetAttr {
        ino: Ino,
        set: SetAttr,
    },
    /// A modifying request core does not support (mknod, xattr writes, `RENAME_EXCHANGE`...).
    Unsupported {
        op: &'static str,
    },
}

impl Request {
    /// Would this request change the tree or a file?
    pub fn is_modifying(&self) -> bool {
        match self {
            Request::Open { write, truncate, .. } => *write || *truncate,
            Request::Write { .. }
            | Request::Create { .. }
            | Request::Mkdir { .. }
            | Request::Mknod { .. }
            | Request::Unlink { .. }
            | Request::Rmdir { .. }
            | Request::Rename { .. }
            | Request::Symlink { .. }
            | Request::Link { .. }
            | Request::SetAttr { .. }
            | Request::Unsupported { .. } => true,
            _ => false,
        }
    }
}

/// The attribute changes of a setattr; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mode: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Nanoseconds since the epoch.
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
}

/// Who creates a node: its initial uid and gid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    RegularFile,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
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
    /// Nanoseconds since the epoch.
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Device number of a device node.
    pub rdev: u32,
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
    Created { attr: Attr, ttl: Duration, fh: u64 },
    Written { size: u32 },
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

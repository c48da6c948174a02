//! The one request type both frontends speak, and the replies core gives.
//!
//! Requests address files by inode (a stable identity, see `identity`) and carry the caller's
//! credentials. NFS is stateless, so reads and writes without an open handle (`fh: None`) are
//! first-class, `Create` need not open, and writes say how stable they must be before the
//! reply. Replies carry what NFS needs as well as FUSE: end-of-file on reads, the attributes
//! of what a request changed (before and after, for weak cache consistency), directory pages
//! filled to a byte budget with stable cookies.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;

use crate::error::FsError;
use crate::inode::Ino;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Who sends a request: the caller's uid, primary gid and supplementary groups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Caller {
    pub fn new(uid: u32, gid: u32) -> Self {
        Caller { uid, gid, groups: Vec::new() }
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Access bits of `Request::Access`, as in `access(2)`.
pub mod access {
    pub const READ: u32 = 4;
    pub const WRITE: u32 = 2;
    pub const EXECUTE: u32 = 1;
}

/// How durable a write must be before it is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// Acknowledged once core holds it (FUSE writes; NFS `UNSTABLE`, made durable by COMMIT).
    #[default]
    Unstable,
    /// Answered once the file's content is committed to the bucket (NFS `DATA_SYNC`).
    DataSync,
    /// The same, content and metadata (NFS `FILE_SYNC`).
    FileSync,
}

/// How `Create` treats an existing name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateHow {
    /// An existing regular file is fine: it is returned as it is (NFS `UNCHECKED`).
    Unchecked,
    /// An existing name is `EEXIST` (FUSE create, NFS `GUARDED`).
    Guarded,
    /// `EEXIST` unless the file was created by a `Create` with the same verifier: a
    /// retransmission (NFS `EXCLUSIVE`).
    Exclusive { verifier: u64 },
}

/// What `fallocate` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallocMode {
    /// Make `offset + length` bytes available: the file grows to it (zeros) unless
    /// `keep_size`.
    Allocate { keep_size: bool },
    /// Zero the range, keeping the size (`FALLOC_FL_PUNCH_HOLE`).
    PunchHole,
    /// Zero the range, growing the file unless `keep_size` (`FALLOC_FL_ZERO_RANGE`).
    ZeroRange { keep_size: bool },
}

/// A time a setattr sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    /// The wall clock at the moment core handles the request.
    Now,
    /// Nanoseconds since the epoch.
    At(i64),
}

/// How many bytes a directory reply may hold, and what each entry costs in the frontend's
/// encoding: `entry_fixed + name length rounded up to name_align`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirBudget {
    pub bytes: u32,
    pub entry_fixed: u32,
    pub name_align: u32,
}

impl DirBudget {
    pub fn entry_size(&self, name_len: usize) -> u64 {
        let align = u64::from(self.name_align.max(1));
        u64::from(self.entry_fixed) + (name_len as u64).div_ceil(align) * align
    }
}

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
    /// Resolve a stable identity (an NFS file handle) to its file: an entry, or `Stale`.
    Resolve {
        ino: Ino,
    },
    /// Entries from cookie `offset` on (0 = start), as many as fit `budget`; with `plus`, each
    /// entry carries its attributes and (but `.` and `..`) counts as a lookup.
    ReadDir {
        ino: Ino,
        offset: u64,
        plus: bool,
        budget: DirBudget,
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
        stable: Stability,
    },
    Release {
        fh: u64,
    },
    Fallocate {
        ino: Ino,
        offset: u64,
        length: u64,
        mode: FallocMode,
    },
    /// `close()` of a descriptor (FUSE flush).
    Flush {
        ino: Ino,
        fh: u64,
    },
    /// `fsync`: answered once what was written is durable in the bucket (or failed); of a
    /// directory, once every change queued so far is.
    Fsync {
        ino: Ino,
    },
    /// NFS COMMIT of `range`: answered once the file is committed (a bucket commits whole
    /// files, so the range only says what the client needs).
    Commit {
        ino: Ino,
        range: Range<u64>,
    },
    /// Which of the `access` bits in `mask` the caller has on `ino`.
    Access {
        ino: Ino,
        mask: u32,
    },
    ReadLink {
        ino: Ino,
    },
    StatFs,
    /// A regular file; opened for writing (a handle in the reply) when `open`.
    Create {
        parent: Ino,
        name: String,
        mode: u16,
        how: CreateHow,
        open: bool,
    },
    Mkdir {
        parent: Ino,
        name: String,
        mode: u16,
    },
    /// A regular file (not opened), a FIFO, a socket or a device node.
    Mknod {
        parent: Ino,
        name: String,
        kind: FileKind,
        mode: u16,
        rdev: u32,
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
    },
    /// A second name for a file: a server-side copy (buckets have no hard links).
    Link {
        ino: Ino,
        new_parent: Ino,
        new_name: String,
    },
    /// With `guard_ctime`, only if the file's ctime (ns) is still that (NFS SETATTR guard).
    SetAttr {
        ino: Ino,
        set: SetAttr,
        guard_ctime: Option<i64>,
    },
    /// A modifying request core does not support (xattr writes, `RENAME_EXCHANGE`...).
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
            | Request::Fallocate { .. }
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
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
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

    /// The part of the attributes weak cache consistency compares.
    pub fn wcc(&self) -> WccAttr {
        WccAttr { size: self.size, mtime_ns: self.mtime_ns, ctime_ns: self.ctime_ns }
    }
}

/// Attributes before a change (NFS `wcc_attr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WccAttr {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// An object a request changed: its attributes before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub before: WccAttr,
    pub after: Attr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    /// Cookie of the entry after this one (what the next readdir passes back).
    pub next_offset: u64,
    pub kind: FileKind,
    pub name: String,
    /// Present in readdirplus replies.
    pub attr: Option<Attr>,
    /// This entry counts as a lookup (readdirplus entries other than `.` and `..`).
    pub lookup: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub files: u64,
    pub block_size: u32,
    pub name_max: u32,
}

/// A local file holding an open file's whole content, for the kernel to read directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backing {
    pub path: String,
    /// Reads and writes still go through the mount (only mmap uses the copy): the copy is of
    /// content that changed since, kept because other opens still read it.
    pub direct_io: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A lookup (`dir: None`) or a new name (`dir`: the directory it was added to).
    Entry {
        attr: Attr,
        ttl: Duration,
        dir: Option<Change>,
    },
    /// Attributes; after a setattr, `before` holds what they were.
    Attr {
        attr: Attr,
        ttl: Duration,
        before: Option<WccAttr>,
    },
    Dir {
        entries: Vec<DirEntry>,
        ttl: Duration,
        /// No entries follow the last one.
        eof: bool,
        /// Identifies the cookie space (the same for the whole life of the directory).
        verifier: u64,
    },
    Open {
        fh: u64,
        keep_cache: bool,
        /// Serve this open from a local copy of the file through the kernel (`fs::copies`).
        backing: Option<Backing>,
    },
    Created {
        attr: Attr,
        ttl: Duration,
        fh: Option<u64>,
        dir: Change,
    },
    Written {
        size: u32,
        committed: Stability,
        /// Changes when the mount restarts: a client resends what was not committed.
        verifier: u64,
        file: Change,
    },
    Data {
        data: Bytes,
        eof: bool,
    },
    /// The allowed subset of an `Access` mask.
    Access {
        allowed: u32,
    },
    /// An unlink or rmdir: the directory.
    Removed {
        dir: Change,
    },
    Renamed {
        from: Change,
        to: Change,
    },
    /// A `Commit` succeeded.
    Committed {
        verifier: u64,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_sizes() {
        let fuse = DirBudget { bytes: 4096, entry_fixed: 24, name_align: 8 };
        assert_eq!(fuse.entry_size(1), 32);
        assert_eq!(fuse.entry_size(8), 32);
        assert_eq!(fuse.entry_size(9), 40);
        let odd = DirBudget { bytes: 0, entry_fixed: 3, name_align: 0 };
        assert_eq!(odd.entry_size(5), 8);
        assert!(Caller { uid: 1, gid: 2, groups: vec![9] }.in_group(9));
    }
}

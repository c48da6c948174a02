//! hfm-fuse: the fuser adapter. Each kernel callback is decoded into a core `Request` (with the
//! caller's uid and gid), handed with its reply object to the driver, and returns at once: no
//! fuser thread ever waits on the network. When core answers, the reply object is filled in from
//! the runtime's thread. No filesystem decision is made here.

mod backing;

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, Request as FuseRequest,
};
use hfm_core::request::access;
use hfm_core::{
    Attr, Caller, CreateHow, DirBudget, FallocMode, FileKind, KernelNotify, Reply, Request, SetAttr, Stability, TimeSet,
};
use hfm_driver::{Handle, ReplySink};

pub use fuser::{Config, MountOption, SessionACL};

/// The fuser `Filesystem` for one mount.
pub struct FuseAdapter {
    handle: Handle,
    direct_io: bool,
    /// Core may answer opens with local copies: ask the kernel for passthrough.
    passthrough: bool,
    backings: Arc<backing::Backings>,
}

impl FuseAdapter {
    /// `direct_io`: every open bypasses the kernel's page cache (`FOPEN_DIRECT_IO`; mmap stays
    /// allowed where the kernel offers `FUSE_DIRECT_IO_ALLOW_MMAP`, Linux 6.6 and later).
    /// `passthrough`: core has local copies enabled (`MountConfig::copies`).
    pub fn new(handle: Handle, direct_io: bool, passthrough: bool) -> Self {
        FuseAdapter { handle, direct_io, passthrough, backings: Arc::default() }
    }

    fn submit(&self, from: &FuseRequest, req: Request, sink: FuseReply) {
        self.handle.submit(caller(from), req, Box::new(sink));
    }
}

/// Bytes of a readdir reply core fills: the kernel's buffer is never smaller than a page, and
/// fuser does not say how large it is, so every entry core sends is delivered.
const READDIR_BUDGET: u32 = 4096;

/// `struct fuse_dirent` without its name, and `fuse_direntplus` (`fuse_entry_out` first);
/// names are padded to 8 bytes.
fn dir_budget(plus: bool) -> DirBudget {
    DirBudget { bytes: READDIR_BUDGET, entry_fixed: if plus { 128 + 24 } else { 24 }, name_align: 8 }
}

fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn epoch_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks(),
        atime: system_time(a.atime_ns),
        mtime: system_time(a.mtime_ns),
        ctime: system_time(a.ctime_ns),
        crtime: system_time(a.mtime_ns),
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::Directory => FileType::Directory,
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

/// A fuser reply object waiting for core's answer.
enum FuseReply {
    Entry(ReplyEntry),
    Attr(ReplyAttr),
    Data(ReplyData),
    Dir(ReplyDirectory),
    DirPlus(ReplyDirectoryPlus),
    /// An access check: ok only if every bit of the mask is allowed.
    Access(ReplyEmpty, u32),
    /// With whether the open bypasses the page cache (`--direct-io`), and the backing files.
    Open(ReplyOpen, bool, Arc<backing::Backings>),
    Empty(ReplyEmpty),
    Statfs(ReplyStatfs),
    Write(fuser::ReplyWrite),
    Create(fuser::ReplyCreate, bool),
}

impl FuseReply {
    fn error(self, e: Errno) {
        match self {
            FuseReply::Entry(r) => r.error(e),
            FuseReply::Attr(r) => r.error(e),
            FuseReply::Data(r) => r.error(e),
            FuseReply::Dir(r) => r.error(e),
            FuseReply::DirPlus(r) => r.error(e),
            FuseReply::Access(r, _) => r.error(e),
            FuseReply::Open(r, ..) => r.error(e),
            FuseReply::Empty(r) => r.error(e),
            FuseReply::Statfs(r) => r.error(e),
            FuseReply::Write(r) => r.error(e),
            FuseReply::Create(r, _) => r.error(e),
        }
    }
}

struct NoReply;

impl ReplySink for NoReply {
    fn send(self: Box<Self>, _reply: Reply) {}
}

impl ReplySink for FuseReply {
    fn send(self: Box<Self>, reply: Reply) {
        match (*self, reply) {
            (FuseReply::Entry(r), Reply::Entry { attr, ttl, .. }) => r.entry(&ttl, &file_attr(&attr), Generation(0)),
            (FuseReply::Attr(r), Reply::Attr { attr, ttl, .. }) => r.attr(&ttl, &file_attr(&attr)),
            (FuseReply::Data(r), Reply::Data { data, .. }) => r.data(&data),
            (FuseReply::Dir(mut r), Reply::Dir { entries, .. }) => {
                for e in &entries {
                    if r.add(INodeNo(e.ino), e.next_offset, file_type(e.kind), &e.name) {
                        tracing::error!("readdir entry {:?} did not fit the reply core sized", e.name);
                        break;
                    }
                }
                r.ok();
            }
            (FuseReply::DirPlus(mut r), Reply::Dir { entries, ttl, .. }) => {
                for e in &entries {
                    let Some(attr) = &e.attr else { continue };
                    if r.add(INodeNo(e.ino), e.next_offset, &e.name, &ttl, &file_attr(attr), Generation(0)) {
                        tracing::error!("readdirplus entry {:?} did not fit the reply core sized", e.name);
                        break;
                    }
                }
                r.ok();
            }
            (FuseReply::Access(r, mask), Reply::Access { allowed }) => {
                if allowed & mask == mask {
                    r.ok()
                } else {
                    r.error(Errno::EACCES)
                }
            }
            (FuseReply::Empty(r), Reply::Removed { .. } | Reply::Renamed { .. } | Reply::Committed { .. }) => r.ok(),
            (FuseReply::Open(r, direct_io, backings), Reply::Open { fh, keep_cache, backing }) => {
                let mut r = Some(r);
                if backing.is_some_and(|b| backings.reply(&mut r, fh, &b)) {
                    return;
                }
                let Some(r) = r else { return };
                let flags = match (direct_io, keep_cache) {
                    (true, _) => FopenFlags::FOPEN_DIRECT_IO,
                    (false, true) => FopenFlags::FOPEN_KEEP_CACHE,
                    (false, false) => FopenFlags::empty(),
                };
                r.opened(FileHandle(fh), flags);
            }
            (FuseReply::Empty(r), Reply::Empty) => r.ok(),
            (FuseReply::Write(r), Reply::Written { size, .. }) => r.written(size),
            (FuseReply::Create(r, direct_io), Reply::Created { attr, ttl, fh: Some(fh), .. }) => {
                let flags = if direct_io { FopenFlags::FOPEN_DIRECT_IO } else { FopenFlags::empty() };
                r.created(&ttl, &file_attr(&attr), Generation(0), FileHandle(fh), flags)
            }
            (FuseReply::Statfs(r), Reply::StatFs(s)) => {
                r.statfs(s.blocks, 0, 0, s.files, 0, s.block_size, s.name_max, s.block_size)
            }
            // The driver logged it.
            (sink, Reply::Error(err)) => sink.error(Errno::from_i32(err.errno.code())),
            (sink, other) => {
                tracing::error!("core answered with a reply of the wrong kind: {other:?}");
                sink.error(Errno::EIO);
            }
        }
    }
}

/// Sends core's kernel invalidations from a thread of its own: the kernel may need a directory
/// lock held by a request that waits for the event loop, so the loop must never block on one.
pub struct FuseNotifier {
    tx: std::sync::mpsc::Sender<KernelNotify>,
}

impl FuseNotifier {
    /// The notifier, and the slot to put the session's `fuser::Notifier` in once it exists.
    pub fn new() -> (Self, std::sync::Arc<std::sync::OnceLock<fuser::Notifier>>) {
        let slot: std::sync::Arc<std::sync::OnceLock<fuser::Notifier>> = Default::default();
        let (tx, rx) = std::sync::mpsc::channel::<KernelNotify>();
        let target = slot.clone();
        std::thread::Builder::new()
            .name("fuse-notify".into())
            .spawn(move || {
                for n in rx {
                    let Some(kernel) = target.get() else { continue };
                    // ENOENT just means the kernel had nothing cached; anything else is logged.
                    let result = match &n {
                        KernelNotify::InvalidateInode { ino } => kernel.inval_inode(INodeNo(*ino), 0, 0),
                        KernelNotify::InvalidateEntry { parent, name } => {
                            kernel.inval_entry(INodeNo(*parent), OsStr::new(name))
                        }
                    };
                    match result {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            tracing::debug!("kernel invalidation {n:?}: {e}")
                        }
                        _ => {}
                    }
                }
            })
            .expect("spawning the notifier thread");
        (FuseNotifier { tx }, slot)
    }
}

impl hfm_driver::Notifier for FuseNotifier {
    fn notify(&self, n: KernelNotify) {
        let _ = self.tx.send(n);
    }
}

fn caller(req: &FuseRequest) -> Caller {
    Caller::new(req.uid(), req.gid())
}

fn name_of(name: &OsStr) -> Option<String> {
    name.to_str().map(str::to_string)
}

#[allow(clippy::too_many_arguments)]
impl fuser::Filesystem for FuseAdapter {
    fn init(&mut self, _req: &FuseRequest, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1 << 20);
        let wanted = fuser::InitFlags::FUSE_DO_READDIRPLUS
            | fuser::InitFlags::FUSE_READDIRPLUS_AUTO
            | fuser::InitFlags::FUSE_PARALLEL_DIROPS
            | fuser::InitFlags::FUSE_ASYNC_READ
            | fuser::InitFlags::FUSE_ATOMIC_O_TRUNC
            | fuser::InitFlags::FUSE_BIG_WRITES;
        let wanted = match self.direct_io {
            true => wanted | fuser::InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            false => wanted,
        };
        let _ = config.add_capabilities(wanted & config.capabilities());
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        if self.passthrough && config.capabilities().contains(fuser::InitFlags::FUSE_PASSTHROUGH) {
            // Backing files sit on a plain local filesystem; this mount stays stackable.
            if config.set_max_stack_depth(1).is_ok()
                && config.add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH).is_ok()
            {
                self.backings.grant();
            }
        }
        if self.passthrough && !self.backings.granted() {
            tracing::warn!("the kernel refused FUSE passthrough: every open reads through the mount");
        }
        Ok(())
    }

    fn lookup(&self, from: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match name_of(name) {
            Some(name) => self.submit(from, Request::Lookup { parent: parent.0, name }, FuseReply::Entry(reply)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn forget(&self, from: &FuseRequest, ino: INodeNo, nlookup: u64) {
        self.handle.submit(caller(from), Request::Forget { ino: ino.0, nlookup }, Box::new(NoReply));
    }

    fn getattr(&self, from: &FuseRequest, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.submit(from, Request::GetAttr { ino: ino.0 }, FuseReply::Attr(reply));
    }

    fn setattr(
        &self,
        from: &FuseRequest,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<fuser::TimeOrNow>,
        mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let time = |t: fuser::TimeOrNow| match t {
            fuser::TimeOrNow::SpecificTime(t) => TimeSet::At(epoch_ns(t)),
            fuser::TimeOrNow::Now => TimeSet::Now,
        };
        let mode = mode.map(|m| (m & 0o7777) as u16);
        let set = SetAttr { size, mode, uid, gid, atime: atime.map(time), mtime: mtime.map(time) };
        self.submit(from, Request::SetAttr { ino: ino.0, set, guard_ctime: None }, FuseReply::Attr(reply));
    }

    fn readlink(&self, from: &FuseRequest, ino: INodeNo, reply: ReplyData) {
        self.submit(from, Request::ReadLink { ino: ino.0 }, FuseReply::Data(reply));
    }

    fn mknod(
        &self,
        from: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let Some(name) = name_of(name) else { return reply.error(Errno::EINVAL) };
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => FileKind::RegularFile,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            _ => return reply.error(Errno::EINVAL),
        };
        let mode = (mode & !umask & 0o7777) as u16;
        let req = Request::Mknod { parent: parent.0, name, kind, mode, rdev };
        self.submit(from, req, FuseReply::Entry(reply));
    }

    fn mkdir(&self, from: &FuseRequest, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let Some(name) = name_of(name) else { return reply.error(Errno::EINVAL) };
        let mode = (mode & !umask & 0o7777) as u16;
        self.submit(from, Request::Mkdir { parent: parent.0, name, mode }, FuseReply::Entry(reply));
    }

    fn unlink(&self, from: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_of(name) else { return reply.error(Errno::ENOENT) };
        self.submit(from, Request::Unlink { parent: parent.0, name }, FuseReply::Empty(reply));
    }

    fn rmdir(&self, from: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_of(name) else { return reply.error(Errno::ENOENT) };
        self.submit(from, Request::Rmdir { parent: parent.0, name }, FuseReply::Empty(reply));
    }

    fn symlink(
        &self,
        from: &FuseRequest,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let (Some(name), Some(target)) = (name_of(link_name), target.to_str()) else {
            return reply.error(Errno::EINVAL);
        };
        let req = Request::Symlink { parent: parent.0, name, target: target.to_string() };
        self.submit(from, req, FuseReply::Entry(reply));
    }

    fn rename(
        &self,
        from: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some(name), Some(new_name)) = (name_of(name), name_of(newname)) else {
            return reply.error(Errno::EINVAL);
        };
        if flags.contains(fuser::RenameFlags::RENAME_EXCHANGE) || flags.contains(fuser::RenameFlags::RENAME_WHITEOUT) {
            return self.submit(from, Request::Unsupported { op: "rename exchange/whiteout" }, FuseReply::Empty(reply));
        }
        let no_replace = flags.contains(fuser::RenameFlags::RENAME_NOREPLACE);
        let req = Request::Rename { parent: parent.0, name, new_parent: newparent.0, new_name, no_replace };
        self.submit(from, req, FuseReply::Empty(reply));
    }

    fn link(&self, from: &FuseRequest, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let Some(new_name) = name_of(newname) else { return reply.error(Errno::EINVAL) };
        self.submit(from, Request::Link { ino: ino.0, new_parent: newparent.0, new_name }, FuseReply::Entry(reply));
    }

    fn open(&self, from: &FuseRequest, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY);
        let truncate = flags.0 & libc::O_TRUNC != 0;
        self.submit(
            from,
            Request::Open { ino: ino.0, write, truncate },
            FuseReply::Open(reply, self.direct_io, self.backings.clone()),
        );
    }

    fn read(
        &self,
        from: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.submit(from, Request::Read { ino: ino.0, fh: Some(fh.0), offset, size }, FuseReply::Data(reply));
    }

    fn write(
        &self,
        from: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        let data = bytes::Bytes::copy_from_slice(data);
        let req = Request::Write { ino: ino.0, fh: Some(fh.0), offset, data, stable: Stability::Unstable };
        self.submit(from, req, FuseReply::Write(reply));
    }

    fn fallocate(
        &self,
        from: &FuseRequest,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let mode = match mode & !libc::FALLOC_FL_KEEP_SIZE {
            0 => FallocMode::Allocate { keep_size },
            libc::FALLOC_FL_PUNCH_HOLE if keep_size => FallocMode::PunchHole,
            libc::FALLOC_FL_ZERO_RANGE => FallocMode::ZeroRange { keep_size },
            // Collapsing or inserting ranges is not something a bucket file can do cheaply.
            _ => return reply.error(Errno::EOPNOTSUPP),
        };
        self.submit(from, Request::Fallocate { ino: ino.0, offset, length, mode }, FuseReply::Empty(reply));
    }

    fn release(
        &self,
        from: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.backings.released(fh.0);
        self.submit(from, Request::Release { fh: fh.0 }, FuseReply::Empty(reply));
    }

    fn flush(&self, from: &FuseRequest, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.submit(from, Request::Flush { ino: ino.0, fh: fh.0 }, FuseReply::Empty(reply));
    }

    fn fsync(&self, from: &FuseRequest, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.submit(from, Request::Fsync { ino: ino.0 }, FuseReply::Empty(reply));
    }

    fn fsyncdir(&self, from: &FuseRequest, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.submit(from, Request::Fsync { ino: ino.0 }, FuseReply::Empty(reply));
    }

    fn getxattr(&self, _req: &FuseRequest, _ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        // ENOSYS tells the kernel to stop asking (no xattrs here).
        reply.error(Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Not a terminal, no ioctls (Python probes TCGETS on every open).
        reply.error(Errno::ENOTTY);
    }

    fn listxattr(&self, _req: &FuseRequest, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, from: &FuseRequest, ino: INodeNo, _fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let req = Request::ReadDir { ino: ino.0, offset, plus: false, budget: dir_budget(false) };
        self.submit(from, req, FuseReply::Dir(reply));
    }

    fn readdirplus(&self, from: &FuseRequest, ino: INodeNo, _fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        let req = Request::ReadDir { ino: ino.0, offset, plus: true, budget: dir_budget(true) };
        self.submit(from, req, FuseReply::DirPlus(reply));
    }

    fn statfs(&self, from: &FuseRequest, _ino: INodeNo, reply: ReplyStatfs) {
        self.submit(from, Request::StatFs, FuseReply::Statfs(reply));
    }

    fn access(&self, from: &FuseRequest, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let bits = [
            (AccessFlags::R_OK, access::READ),
            (AccessFlags::W_OK, access::WRITE),
            (AccessFlags::X_OK, access::EXECUTE),
        ];
        let mask = bits.iter().filter(|(flag, _)| mask.contains(*flag)).fold(0, |m, (_, bit)| m | bit);
        self.submit(from, Request::Access { ino: ino.0, mask }, FuseReply::Access(reply, mask));
    }

    fn create(
        &self,
        from: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        let Some(name) = name_of(name) else { return reply.error(Errno::EINVAL) };
        let mode = (mode & !umask & 0o7777) as u16;
        let req = Request::Create { parent: parent.0, name, mode, how: CreateHow::Guarded, open: true };
        self.submit(from, req, FuseReply::Create(reply, self.direct_io));
    }
}

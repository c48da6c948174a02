//! hfm-fuse: the fuser adapter. Each kernel callback is decoded into a core `Request`, handed
//! with its reply object to the runtime, and returns at once: no fuser thread ever waits on the
//! network. When core answers, the reply object is filled in from the event loop.

use std::ffi::OsStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, Request as FuseRequest,
};
use hfm_core::request::Owner;
use hfm_core::{Attr, FileKind, KernelNotify, Reply, Request, SetAttr};
use hfm_driver::{Handle, ReplySink};

pub use fuser::{Config, MountOption, SessionACL};

/// The fuser `Filesystem` for one mount.
pub struct FuseAdapter {
    handle: Handle,
}

impl FuseAdapter {
    pub fn new(handle: Handle) -> Self {
        FuseAdapter { handle }
    }

    fn submit(&self, req: Request, sink: FuseReply) {
        self.handle.submit(req, Box::new(sink));
    }
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
    DirPlus(ReplyDirectoryPlus, Handle),
    Open(ReplyOpen),
    Empty(ReplyEmpty),
    Statfs(ReplyStatfs),
    Write(fuser::ReplyWrite),
    Create(fuser::ReplyCreate),
}

impl FuseReply {
    fn error(self, e: Errno) {
        match self {
            FuseReply::Entry(r) => r.error(e),
            FuseReply::Attr(r) => r.error(e),
            FuseReply::Data(r) => r.error(e),
            FuseReply::Dir(r) => r.error(e),
            FuseReply::DirPlus(r, _) => r.error(e),
            FuseReply::Open(r) => r.error(e),
            FuseReply::Empty(r) => r.error(e),
            FuseReply::Statfs(r) => r.error(e),
            FuseReply::Write(r) => r.error(e),
            FuseReply::Create(r) => r.error(e),
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
            (FuseReply::Entry(r), Reply::Entry { attr, ttl }) => r.entry(&ttl, &file_attr(&attr), Generation(0)),
            (FuseReply::Attr(r), Reply::Attr { attr, ttl }) => r.attr(&ttl, &file_attr(&attr)),
            (FuseReply::Data(r), Reply::Data(data)) => r.data(&data),
            (FuseReply::Dir(mut r), Reply::Dir { entries, .. }) => {
                for e in &entries {
                    if r.add(INodeNo(e.ino), e.next_offset, file_type(e.kind), &e.name) {
                        break;
                    }
                }
                r.ok();
            }
            (FuseReply::DirPlus(mut r, handle), Reply::Dir { entries, ttl }) => {
                let mut full = false;
                for e in &entries {
                    let counted = e.attr.is_some();
                    if !full {
                        let attr = e.attr.as_ref().map(file_attr).unwrap_or_else(|| dot_attr(e.ino));
                        full = r.add(INodeNo(e.ino), e.next_offset, &e.name, &ttl, &attr, Generation(0));
                        if !full {
                            continue;
                        }
                    }
                    // Not delivered to the kernel: undo the lookup core counted for it.
                    if counted {
                        handle.submit(Request::Forget { ino: e.ino, nlookup: 1 }, Box::new(NoReply));
                    }
                }
                r.ok();
            }
            (FuseReply::Open(r), Reply::Open { fh, keep_cache }) => {
                let flags = if keep_cache { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
                r.opened(FileHandle(fh), flags);
            }
            (FuseReply::Empty(r), Reply::Empty) => r.ok(),
            (FuseReply::Write(r), Reply::Written { size }) => r.written(size),
            (FuseReply::Create(r), Reply::Created { attr, ttl, fh }) => {
                r.created(&ttl, &file_attr(&attr), Generation(0), FileHandle(fh), FopenFlags::empty())
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

/// Attributes for `.` and `..` in readdirplus: the kernel ignores entries with ino 0 attrs, so
/// give a directory shape (these entries carry no lookup).
fn dot_attr(ino: u64) -> FileAttr {
    let (uid, gid, perm) = (0, 0, 0o555);
    let (atime_ns, mtime_ns, ctime_ns, rdev) = (0, 0, 0, 0);
    file_attr(&Attr {
        ino,
        size: 0,
        kind: FileKind::Directory,
        perm,
        nlink: 2,
        uid,
        gid,
        atime_ns,
        mtime_ns,
        ctime_ns,
        rdev,
    })
}

fn owner(req: &FuseRequest) -> Owner {
    Owner { uid: req.uid(), gid: req.gid() }
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
        let _ = config.add_capabilities(wanted & config.capabilities());
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match name_of(name) {
            Some(name) => self.submit(Request::Lookup { parent: parent.0, name }, FuseReply::Entry(reply)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn forget(&self, _req: &FuseRequest, ino: INodeNo, nlookup: u64) {
        self.handle.submit(Request::Forget { ino: ino.0, nlookup }, Box::new(NoReply));
    }

    fn getattr(&self, _req: &FuseRequest, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.submit(Request::GetAttr { ino: ino.0 }, FuseReply::Attr(reply));
    }

    fn setattr(
        &self,
        _req: &FuseRequest,
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
        let ns = |t: fuser::TimeOrNow| match t {
            fuser::TimeOrNow::SpecificTime(t) => epoch_ns(t),
            fuser::TimeOrNow::Now => epoch_ns(SystemTime::now()),
        };
        let mode = mode.map(|m| (m & 0o7777) as u16);
        let set = SetAttr { size, mode, uid, gid, atime_ns: atime.map(ns), mtime_ns: mtime.map(ns) };
        self.submit(Request::SetAttr { ino: ino.0, set }, FuseReply::Attr(reply));
    }

    fn readlink(&self, _req: &FuseRequest, ino: INodeNo, reply: ReplyData) {
        self.submit(Request::ReadLink { ino: ino.0 }, FuseReply::Data(reply));
    }

    fn mknod(
        &self,
        req: &FuseRequest,
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
        let req = Request::Mknod { parent: parent.0, name, kind, mode, rdev, owner: owner(req) };
        self.submit(req, FuseReply::Entry(reply));
    }

    fn mkdir(&self, req: &FuseRequest, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let Some(name) = name_of(name) else { return reply.error(Errno::EINVAL) };
        let mode = (mode & !umask & 0o7777) as u16;
        self.submit(Request::Mkdir { parent: parent.0, name, mode, owner: owner(req) }, FuseReply::Entry(reply));
    }

    fn unlink(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_of(name) else { return reply.error(Errno::ENOENT) };
        self.submit(Request::Unlink { parent: parent.0, name }, FuseReply::Empty(reply));
    }

    fn rmdir(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_of(name) else { return reply.error(Errno::ENOENT) };
        self.submit(Request::Rmdir { parent: parent.0, name }, FuseReply::Empty(reply));
    }

    fn symlink(
        &self,
        req: &FuseRequest,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let (Some(name), Some(target)) = (name_of(link_name), target.to_str()) else {
            return reply.error(Errno::EINVAL);
        };
        let req = Request::Symlink { parent: parent.0, name, target: target.to_string(), owner: owner(req) };
        self.submit(req, FuseReply::Entry(reply));
    }

    fn rename(
        &self,
        _req: &FuseRequest,
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
            return self.submit(Request::Unsupported { op: "rename exchange/whiteout" }, FuseReply::Empty(reply));
        }
        let no_replace = flags.contains(fuser::RenameFlags::RENAME_NOREPLACE);
        let req = Request::Rename { parent: parent.0, name, new_parent: newparent.0, new_name, no_replace };
        self.submit(req, FuseReply::Empty(reply));
    }

    fn link(&self, _req: &FuseRequest, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let Some(new_name) = name_of(newname) else { return reply.error(Errno::EINVAL) };
        self.submit(Request::Link { ino: ino.0, new_parent: newparent.0, new_name }, FuseReply::Entry(reply));
    }

    fn open(&self, _req: &FuseRequest, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY);
        let truncate = flags.0 & libc::O_TRUNC != 0;
        self.submit(Request::Open { ino: ino.0, write, truncate }, FuseReply::Open(reply));
    }

    fn read(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.submit(Request::Read { ino: ino.0, fh: Some(fh.0), offset, size }, FuseReply::Data(reply));
    }

    fn write(
        &self,
        _req: &FuseRequest,
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
        self.submit(Request::Write { ino: ino.0, fh: Some(fh.0), offset, data }, FuseReply::Write(reply));
    }

    fn release(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.submit(Request::Release { fh: fh.0 }, FuseReply::Empty(reply));
    }

    fn flush(&self, _req: &FuseRequest, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.submit(Request::Flush { ino: ino.0, fh: fh.0 }, FuseReply::Empty(reply));
    }

    fn fsync(&self, _req: &FuseRequest, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.submit(Request::Fsync { ino: ino.0 }, FuseReply::Empty(reply));
    }

    fn fsyncdir(&self, _req: &FuseRequest, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.submit(Request::Fsync { ino: ino.0 }, FuseReply::Empty(reply));
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

    fn readdir(&self, _req: &FuseRequest, ino: INodeNo, _fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        self.submit(Request::ReadDir { ino: ino.0, offset, plus: false }, FuseReply::Dir(reply));
    }

    fn readdirplus(&self, _req: &FuseRequest, ino: INodeNo, _fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        self.submit(
            Request::ReadDir { ino: ino.0, offset, plus: true },
            FuseReply::DirPlus(reply, self.handle.clone()),
        );
    }

    fn statfs(&self, _req: &FuseRequest, _ino: INodeNo, reply: ReplyStatfs) {
        self.submit(Request::StatFs, FuseReply::Statfs(reply));
    }

    fn access(&self, _req: &FuseRequest, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let write = mask.contains(AccessFlags::W_OK);
        self.submit(Request::Access { ino: ino.0, write }, FuseReply::Empty(reply));
    }

    fn create(
        &self,
        req: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        let Some(name) = name_of(name) else { return reply.error(Errno::EINVAL) };
        let mode = (mode & !umask & 0o7777) as u16;
        self.submit(Request::Create { parent: parent.0, name, mode, owner: owner(req) }, FuseReply::Create(reply));
    }
}

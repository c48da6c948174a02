//! NFS and MOUNT calls in core's terms: each call becomes one core request (two where NFS asks
//! for more than one request does: a create that also sets a size), submitted through the
//! driver's `Handle`; core's reply becomes the procedure's result. No filesystem decision is
//! made here.
//!
//! A handle core does not know (after a restart of the mount) is resolved once through
//! `Request::Resolve` and the call retried; one that still does not resolve is `STALE`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hfm_core::{Caller, CreateHow, DirBudget, Errno, FileKind, Ino, Reply, Request};
use hfm_driver::{Handle, ReplySink};

use crate::convert::{self, fattr, wcc};
use crate::handle::{self, Handles};
use crate::mount::{AuthFlavors, ExportEntry, List, MountCall, MountEntry, MountOk, MountRes};
use crate::nfs3::*;
use crate::xdr::Xdr;

/// Largest READ and WRITE this server offers (FSINFO rtmax/wtmax).
pub const MAX_IO: u32 = 1 << 20;

/// Encoded procedure results, handed back to the connection that asked.
pub type Respond = Box<dyn FnOnce(Vec<u8>) + Send>;

struct Then<F>(F);

impl<F: FnOnce(Reply) + Send + 'static> ReplySink for Then<F> {
    fn send(self: Box<Self>, reply: Reply) {
        (self.0)(reply)
    }
}

pub struct Session {
    handle: Handle,
    handles: Handles,
    mounts: Mutex<Vec<MountEntry>>,
}

fn respond<T: Xdr>(respond: Respond, result: T) {
    respond(result.to_bytes())
}

/// A name from the wire: NAMETOOLONG past 255 bytes; a name that is not UTF-8 cannot exist in
/// a repo or bucket.
fn name(bytes: &[u8]) -> Result<String, Status> {
    if bytes.len() > 255 {
        return Err(Status::NameTooLong);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Status::Inval)
}

/// Bytes of READDIR and READDIRPLUS results besides the entries: status, absent directory
/// attributes, verifier, end of list, eof.
const DIR_REPLY_FIXED: u32 = 4 + 4 + 8 + 4 + 4;
/// `entry3` without its name: follows, fileid, name length, cookie.
const ENTRY_FIXED: u32 = 4 + 8 + 4 + 8;
/// `entryplus3` without its name: the above, attributes and handle.
const ENTRY_PLUS_FIXED: u32 = ENTRY_FIXED + 4 + 84 + 4 + 4 + handle::LEN as u32;

impl Session {
    pub fn new(handle: Handle, handles: Handles) -> Arc<Self> {
        Arc::new(Session { handle, handles, mounts: Mutex::new(Vec::new()) })
    }

    fn fsid(&self) -> u64 {
        u64::from(self.handles.tag())
    }

    fn attr(&self, a: &hfm_core::Attr) -> Fattr {
        fattr(a, self.fsid())
    }

    fn ask(&self, caller: &Caller, req: Request, then: impl FnOnce(Reply) + Send + 'static) {
        self.handle.submit(caller.clone(), req, Box::new(Then(then)));
    }

    /// Run `req` about `target`; if core does not know `target`, resolve it and try once more.
    fn run(
        self: &Arc<Self>,
        caller: &Caller,
        target: Ino,
        req: Request,
        then: impl FnOnce(Result<Reply, Status>) + Send + 'static,
    ) {
        let me = self.clone();
        let c = caller.clone();
        let retry = req.clone();
        self.ask(caller, req, move |reply| match reply {
            Reply::Error(e) if e.errno == Errno::NoEnt => {
                let me2 = me.clone();
                me.ask(&c.clone(), Request::Resolve { ino: target }, move |resolved| match resolved {
                    Reply::Entry { .. } => me2.ask(&c, retry, move |again| then(ok(again))),
                    _ => then(Err(Status::Stale)),
                })
            }
            other => then(ok(other)),
        });
    }

    // ---- MOUNT ----------------------------------------------------------------------------

    /// Results of a MOUNT call from `host`. MNT accepts the export `/` and any directory
    /// beneath it (as knfsd does), so clients that mount the parent of the file they want work.
    pub fn mount(self: &Arc<Self>, caller: Caller, host: &str, call: MountCall, done: Respond) {
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        let host = host.as_bytes().to_vec();
        match call {
            MountCall::Null => done(Vec::new()),
            MountCall::Umnt(dir) => {
                mounts.retain(|m| !(m.hostname == host && m.directory == dir));
                done(Vec::new())
            }
            MountCall::UmntAll => {
                mounts.retain(|m| m.hostname != host);
                done(Vec::new())
            }
            MountCall::Dump => done(List(mounts.clone()).to_bytes()),
            MountCall::Export => done(List(vec![ExportEntry { dir: b"/".to_vec(), groups: Vec::new() }]).to_bytes()),
            MountCall::Mnt(dir) => {
                drop(mounts);
                let Ok(path) = String::from_utf8(dir.clone()) else {
                    return respond::<MountRes>(done, NfsResult::Err(Status::NoEnt, ()));
                };
                let names: Vec<String> = path.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect();
                let me = self.clone();
                self.walk(caller, hfm_core::ROOT_INO, names, move |found| {
                    let res: MountRes = match found {
                        Ok(ino) => {
                            let entry = MountEntry { hostname: host, directory: dir };
                            let mut mounts = me.mounts.lock().unwrap_or_else(|e| e.into_inner());
                            if !mounts.contains(&entry) {
                                mounts.push(entry);
                            }
                            let auth_flavors = AuthFlavors(vec![crate::rpc::AUTH_SYS, crate::rpc::AUTH_NONE]);
                            NfsResult::Ok(MountOk { fhandle: me.handles.encode(ino), auth_flavors })
                        }
                        Err(s) => NfsResult::Err(s, ()),
                    };
                    respond(done, res)
                });
            }
        }
    }

    /// The directory at `names` below `dir`, looked up one name at a time.
    fn walk(
        self: &Arc<Self>,
        caller: Caller,
        dir: Ino,
        mut names: Vec<String>,
        then: impl FnOnce(Result<Ino, Status>) + Send + 'static,
    ) {
        if names.is_empty() {
            return then(Ok(dir));
        }
        let name = names.remove(0);
        let me = self.clone();
        let c = caller.clone();
        self.ask(&caller, Request::Lookup { parent: dir, name }, move |r| match r {
            Reply::Entry { attr, .. } if attr.kind == FileKind::Directory => me.walk(c, attr.ino, names, then),
            Reply::Entry { .. } => then(Err(Status::NotDir)),
            other => then(Err(failure(Ok(other)))),
        });
    }

    // ---- NFS ------------------------------------------------------------------------------

    pub fn nfs(self: &Arc<Self>, caller: Caller, call: Call, done: Respond) {
        match call {
            Call::Null => done(Vec::new()),
            Call::GetAttr(fh) => self.getattr(caller, fh, done),
            Call::SetAttr(a) => self.setattr(caller, a, done),
            Call::Lookup(a) => self.lookup(caller, a, done),
            Call::Access(a) => self.access(caller, a, done),
            Call::ReadLink(fh) => self.readlink(caller, fh, done),
            Call::Read(a) => self.read(caller, a, done),
            Call::Write(a) => self.write(caller, a, done),
            Call::Create(a) => self.create(caller, a, done),
            Call::Mkdir(a) => {
                let mode = a.attributes.mode.unwrap_or(0o755) as u16 & 0o7777;
                self.new_object(caller, a.place, done, move |parent, name| Request::Mkdir { parent, name, mode })
            }
            Call::Symlink(a) => match String::from_utf8(a.target) {
                Ok(target) => self.new_object(caller, a.place, done, move |parent, name| Request::Symlink {
                    parent,
                    name,
                    target,
                }),
                Err(_) => respond::<NewObjectRes>(done, NfsResult::Err(Status::Inval, WccData::NONE)),
            },
            Call::Mknod(a) => self.mknod(caller, a, done),
            Call::Remove(a) => self.remove(caller, a, false, done),
            Call::Rmdir(a) => self.remove(caller, a, true, done),
            Call::Rename(a) => self.rename(caller, a, done),
            Call::Link(a) => self.link(caller, a, done),
            Call::ReadDir(a) => {
                let budget = DirBudget {
                    bytes: a.count.saturating_sub(DIR_REPLY_FIXED),
                    entry_fixed: ENTRY_FIXED,
                    name_align: 4,
                };
                self.readdir(caller, a.dir, a.cookie, a.cookieverf, false, budget, done)
            }
            Call::ReadDirPlus(a) => {
                let budget = DirBudget {
                    bytes: a.maxcount.saturating_sub(DIR_REPLY_FIXED),
                    entry_fixed: ENTRY_PLUS_FIXED,
                    name_align: 4,
                };
                self.readdir(caller, a.dir, a.cookie, a.cookieverf, true, budget, done)
            }
            Call::FsStat(fh) => self.fsstat(caller, fh, done),
            Call::FsInfo(fh) => self.fsinfo(caller, fh, done),
            Call::PathConf(fh) => self.pathconf(caller, fh, done),
            Call::Commit(a) => self.commit(caller, a, done),
        }
    }

    fn getattr(self: &Arc<Self>, caller: Caller, fh: Fh, done: Respond) {
        let ino = match self.handles.decode(&fh) {
            Ok(ino) => ino,
            Err(s) => return respond::<GetAttrRes>(done, NfsResult::Err(s, ())),
        };
        let me = self.clone();
        self.run(&caller, ino, Request::GetAttr { ino }, move |r| {
            let res: GetAttrRes = match r {
                // Removed: core keeps the file for descriptors still open over FUSE; an NFS
                // client (which renames open files away instead of removing them) is told the
                // handle is gone.
                Ok(Reply::Attr { attr, .. }) if attr.nlink == 0 => NfsResult::Err(Status::Stale, ()),
                Ok(Reply::Attr { attr, .. }) => NfsResult::Ok(me.attr(&attr)),
                other => NfsResult::Err(failure(other), ()),
            };
            respond(done, res)
        });
    }

    fn setattr(self: &Arc<Self>, caller: Caller, a: SetAttrArgs, done: Respond) {
        let ino = match self.handles.decode(&a.object) {
            Ok(ino) => ino,
            Err(s) => return respond::<SetAttrRes>(done, NfsResult::Err(s, WccData::NONE)),
        };
        let req =
            Request::SetAttr { ino, set: convert::set_attr(&a.attributes), guard_ctime: a.guard.map(convert::time_ns) };
        let me = self.clone();
        self.run(&caller, ino, req, move |r| {
            let res: SetAttrRes = match r {
                Ok(Reply::Attr { attr, before, .. }) => NfsResult::Ok(WccData {
                    before: before.as_ref().map(convert::wcc_attr),
                    after: Some(me.attr(&attr)),
                }),
                other => NfsResult::Err(failure(other), WccData::NONE),
            };
            respond(done, res)
        });
    }

    fn lookup(self: &Arc<Self>, caller: Caller, a: DirOp, done: Respond) {
        let (parent, name) = match self.dir_op(&a) {
            Ok(p) => p,
            Err(s) => return respond::<LookupRes>(done, NfsResult::Err(s, None)),
        };
        let me = self.clone();
        self.run(&caller, parent, Request::Lookup { parent, name }, move |r| {
            let res: LookupRes = match r {
                Ok(Reply::Entry { attr, .. }) => NfsResult::Ok(LookupOk {
                    object: me.handles.encode(attr.ino),
                    obj_attributes: Some(me.attr(&attr)),
                    dir_attributes: None,
                }),
                other => NfsResult::Err(failure(other), None),
            };
            respond(done, res)
        });
    }

    fn access(self: &Arc<Self>, caller: Caller, a: AccessArgs, done: Respond) {
        let ino = match self.handles.decode(&a.object) {
            Ok(ino) => ino,
            Err(s) => return respond::<AccessRes>(done, NfsResult::Err(s, None)),
        };
        let wanted = a.access;
        let req = Request::Access { ino, mask: convert::access_mask(wanted) };
        self.run(&caller, ino, req, move |r| {
            let res: AccessRes = match r {
                Ok(Reply::Access { allowed }) => {
                    NfsResult::Ok(AccessOk { obj_attributes: None, access: convert::access_granted(wanted, allowed) })
                }
                other => NfsResult::Err(failure(other), None),
            };
            respond(done, res)
        });
    }

    fn readlink(self: &Arc<Self>, caller: Caller, fh: Fh, done: Respond) {
        let ino = match self.handles.decode(&fh) {
            Ok(ino) => ino,
            Err(s) => return respond::<ReadLinkRes>(done, NfsResult::Err(s, None)),
        };
        self.run(&caller, ino, Request::ReadLink { ino }, move |r| {
            let res: ReadLinkRes = match r {
                Ok(Reply::Data { data, .. }) => {
                    NfsResult::Ok(ReadLinkOk { symlink_attributes: None, data: data.to_vec() })
                }
                other => NfsResult::Err(failure(other), None),
            };
            respond(done, res)
        });
    }

    fn read(self: &Arc<Self>, caller: Caller, a: ReadArgs, done: Respond) {
        let ino = match self.handles.decode(&a.file) {
            Ok(ino) => ino,
            Err(s) => return respond::<ReadRes>(done, NfsResult::Err(s, None)),
        };
        let req = Request::Read { ino, fh: None, offset: a.offset, size: a.count.min(MAX_IO) };
        self.run(&caller, ino, req, move |r| {
            let res: ReadRes = match r {
                Ok(Reply::Data { data, eof }) => {
                    NfsResult::Ok(ReadOk { file_attributes: None, count: data.len() as u32, eof, data: data.to_vec() })
                }
                other => NfsResult::Err(failure(other), None),
            };
            respond(done, res)
        });
    }

    fn write(self: &Arc<Self>, caller: Caller, a: WriteArgs, done: Respond) {
        let ino = match self.handles.decode(&a.file) {
            Ok(ino) => ino,
            Err(s) => return respond::<WriteRes>(done, NfsResult::Err(s, WccData::NONE)),
        };
        let mut data = a.data;
        data.truncate(a.count as usize);
        let req = Request::Write {
            ino,
            fh: None,
            offset: a.offset,
            data: Bytes::from(data),
            stable: convert::stability(a.stable),
        };
        let fsid = self.fsid();
        self.run(&caller, ino, req, move |r| {
            let res: WriteRes = match r {
                Ok(Reply::Written { size, committed, verifier, file }) => NfsResult::Ok(WriteOk {
                    file_wcc: wcc(&file, fsid),
                    count: size,
                    committed: convert::stable_how(committed),
                    verf: verifier.to_be_bytes(),
                }),
                other => NfsResult::Err(failure(other), WccData::NONE),
            };
            respond(done, res)
        });
    }

    fn dir_op(&self, a: &DirOp) -> Result<(Ino, String), Status> {
        let parent = self.handles.decode(&a.dir)?;
        Ok((parent, name(&a.name)?))
    }

    fn create(self: &Arc<Self>, caller: Caller, a: CreateArgs, done: Respond) {
        let (mode, how, size) = match &a.how {
            crate::nfs3::CreateHow::Unchecked(s) => (s.mode, CreateHow::Unchecked, s.size),
            crate::nfs3::CreateHow::Guarded(s) => (s.mode, CreateHow::Guarded, s.size),
            crate::nfs3::CreateHow::Exclusive(v) => {
                (None, CreateHow::Exclusive { verifier: u64::from_be_bytes(*v) }, None)
            }
        };
        let mode = mode.unwrap_or(0o644) as u16 & 0o7777;
        let (parent, name) = match self.dir_op(&a.place) {
            Ok(p) => p,
            Err(s) => return respond::<NewObjectRes>(done, NfsResult::Err(s, WccData::NONE)),
        };
        let me = self.clone();
        let c = caller.clone();
        let req = Request::Create { parent, name, mode, how, open: false };
        self.run(&caller, parent, req, move |r| match (r, size) {
            // UNCHECKED over an existing file with a size (O_TRUNC): set it, then answer.
            (Ok(Reply::Created { attr, dir, .. }), Some(size)) if attr.size != size => {
                let set = hfm_core::SetAttr { size: Some(size), ..Default::default() };
                let ino = attr.ino;
                let me2 = me.clone();
                me.ask(&c, Request::SetAttr { ino, set, guard_ctime: None }, move |r| {
                    let res: NewObjectRes = match r {
                        Reply::Attr { attr, .. } => me2.new_object_ok(&attr, &dir),
                        other => NfsResult::Err(failure(Ok(other)), wcc(&dir, me2.fsid())),
                    };
                    respond(done, res)
                })
            }
            (Ok(Reply::Created { attr, dir, .. }), _) => respond(done, me.new_object_ok(&attr, &dir)),
            (other, _) => respond::<NewObjectRes>(done, NfsResult::Err(failure(other), WccData::NONE)),
        });
    }

    fn new_object_ok(&self, attr: &hfm_core::Attr, dir: &hfm_core::Change) -> NewObjectRes {
        NfsResult::Ok(NewObjectOk {
            obj: Some(self.handles.encode(attr.ino)),
            obj_attributes: Some(self.attr(attr)),
            dir_wcc: wcc(dir, self.fsid()),
        })
    }

    /// MKDIR, SYMLINK, MKNOD: core answers with the new entry and the directory's change.
    fn new_object(
        self: &Arc<Self>,
        caller: Caller,
        place: DirOp,
        done: Respond,
        req: impl FnOnce(Ino, String) -> Request,
    ) {
        let (parent, name) = match self.dir_op(&place) {
            Ok(p) => p,
            Err(s) => return respond::<NewObjectRes>(done, NfsResult::Err(s, WccData::NONE)),
        };
        let me = self.clone();
        self.run(&caller, parent, req(parent, name), move |r| {
            let res = match r {
                Ok(Reply::Entry { attr, dir: Some(dir), .. }) => me.new_object_ok(&attr, &dir),
                other => NfsResult::Err(failure(other), WccData::NONE),
            };
            respond(done, res)
        });
    }

    fn mknod(self: &Arc<Self>, caller: Caller, a: MknodArgs, done: Respond) {
        let (kind, attrs, rdev) = match a.what {
            MknodData::Chr(d) => (FileKind::CharDevice, d.attributes, convert::rdev(d.spec)),
            MknodData::Blk(d) => (FileKind::BlockDevice, d.attributes, convert::rdev(d.spec)),
            MknodData::Sock(s) => (FileKind::Socket, s, 0),
            MknodData::Fifo(s) => (FileKind::Fifo, s, 0),
            MknodData::Other(_) => {
                return respond::<NewObjectRes>(done, NfsResult::Err(Status::BadType, WccData::NONE))
            }
        };
        let mode = attrs.mode.unwrap_or(0o644) as u16 & 0o7777;
        self.new_object(caller, a.place, done, move |parent, name| Request::Mknod { parent, name, kind, mode, rdev })
    }

    fn remove(self: &Arc<Self>, caller: Caller, a: DirOp, dir: bool, done: Respond) {
        let (parent, name) = match self.dir_op(&a) {
            Ok(p) => p,
            Err(s) => return respond::<RemoveRes>(done, NfsResult::Err(s, WccData::NONE)),
        };
        let req = if dir { Request::Rmdir { parent, name } } else { Request::Unlink { parent, name } };
        let fsid = self.fsid();
        self.run(&caller, parent, req, move |r| {
            let res: RemoveRes = match r {
                Ok(Reply::Removed { dir }) => NfsResult::Ok(wcc(&dir, fsid)),
                other => NfsResult::Err(failure(other), WccData::NONE),
            };
            respond(done, res)
        });
    }

    fn rename(self: &Arc<Self>, caller: Caller, a: RenameArgs, done: Respond) {
        let none = RenameRes { fromdir_wcc: WccData::NONE, todir_wcc: WccData::NONE };
        let ((parent, name), (new_parent, new_name)) = match (self.dir_op(&a.from), self.dir_op(&a.to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(s), _) | (_, Err(s)) => return respond::<RenameResult>(done, NfsResult::Err(s, none)),
        };
        let req = Request::Rename { parent, name, new_parent, new_name, no_replace: false };
        let fsid = self.fsid();
        self.run(&caller, parent, req, move |r| {
            let res: RenameResult = match r {
                Ok(Reply::Renamed { from, to }) => {
                    NfsResult::Ok(RenameRes { fromdir_wcc: wcc(&from, fsid), todir_wcc: wcc(&to, fsid) })
                }
                other => NfsResult::Err(failure(other), none),
            };
            respond(done, res)
        });
    }

    fn link(self: &Arc<Self>, caller: Caller, a: LinkArgs, done: Respond) {
        let none = LinkRes { file_attributes: None, linkdir_wcc: WccData::NONE };
        let ino = match self.handles.decode(&a.file) {
            Ok(ino) => ino,
            Err(s) => return respond::<LinkResult>(done, NfsResult::Err(s, none)),
        };
        let (new_parent, new_name) = match self.dir_op(&a.link) {
            Ok(p) => p,
            Err(s) => return respond::<LinkResult>(done, NfsResult::Err(s, none)),
        };
        let me = self.clone();
        self.run(&caller, ino, Request::Link { ino, new_parent, new_name }, move |r| {
            let res: LinkResult = match r {
                Ok(Reply::Entry { attr, dir, .. }) => NfsResult::Ok(LinkRes {
                    file_attributes: Some(me.attr(&attr)),
                    linkdir_wcc: dir.map_or(WccData::NONE, |d| wcc(&d, me.fsid())),
                }),
                other => NfsResult::Err(failure(other), none),
            };
            respond(done, res)
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn readdir(
        self: &Arc<Self>,
        caller: Caller,
        dir: Fh,
        cookie: u64,
        cookieverf: [u8; 8],
        plus: bool,
        budget: DirBudget,
        done: Respond,
    ) {
        let fail = move |done: Respond, s: Status| {
            if plus {
                respond::<ReadDirPlusRes>(done, NfsResult::Err(s, None))
            } else {
                respond::<ReadDirRes>(done, NfsResult::Err(s, None))
            }
        };
        let ino = match self.handles.decode(&dir) {
            Ok(ino) => ino,
            Err(s) => return fail(done, s),
        };
        let me = self.clone();
        self.run(&caller, ino, Request::ReadDir { ino, offset: cookie, plus, budget }, move |r| {
            let (entries, eof, verifier) = match r {
                Ok(Reply::Dir { entries, eof, verifier, .. }) => (entries, eof, verifier.to_be_bytes()),
                other => return fail(done, failure(other)),
            };
            // A cookie handed out under another verifier cannot be trusted to resume.
            if cookie != 0 && cookieverf != [0; 8] && cookieverf != verifier {
                return fail(done, Status::BadCookie);
            }
            if plus {
                let entries = entries
                    .iter()
                    .map(|e| EntryPlus {
                        fileid: e.ino,
                        name: e.name.as_bytes().to_vec(),
                        cookie: e.next_offset,
                        name_attributes: e.attr.as_ref().map(|a| me.attr(a)),
                        name_handle: Some(me.handles.encode(e.ino)),
                    })
                    .collect();
                let res: ReadDirPlusRes =
                    NfsResult::Ok(DirPage { dir_attributes: None, cookieverf: verifier, entries, eof });
                respond(done, res)
            } else {
                let entries = entries
                    .iter()
                    .map(|e| Entry { fileid: e.ino, name: e.name.as_bytes().to_vec(), cookie: e.next_offset })
                    .collect();
                let res: ReadDirRes =
                    NfsResult::Ok(DirPage { dir_attributes: None, cookieverf: verifier, entries, eof });
                respond(done, res)
            }
        });
    }

    fn fsstat(self: &Arc<Self>, caller: Caller, fh: Fh, done: Respond) {
        if let Err(s) = self.handles.decode(&fh) {
            return respond::<FsStatRes>(done, NfsResult::Err(s, None));
        }
        self.ask(&caller, Request::StatFs, move |r| {
            let res: FsStatRes = match r {
                Reply::StatFs(s) => {
                    // A repo or bucket has no size limit to report: show a large, free disk.
                    let total = (s.blocks * u64::from(s.block_size)).max(1 << 50);
                    NfsResult::Ok(FsStatOk {
                        obj_attributes: None,
                        tbytes: total,
                        fbytes: total,
                        abytes: total,
                        tfiles: s.files.max(1 << 20),
                        ffiles: 1 << 20,
                        afiles: 1 << 20,
                        invarsec: 0,
                    })
                }
                other => NfsResult::Err(failure(Ok(other)), None),
            };
            respond(done, res)
        });
    }

    fn fsinfo(self: &Arc<Self>, _caller: Caller, fh: Fh, done: Respond) {
        let res: FsInfoRes = match self.handles.decode(&fh) {
            Ok(_) => NfsResult::Ok(FsInfoOk {
                obj_attributes: None,
                rtmax: MAX_IO,
                rtpref: MAX_IO,
                rtmult: 4096,
                wtmax: MAX_IO,
                wtpref: MAX_IO,
                wtmult: 4096,
                dtpref: 64 * 1024,
                maxfilesize: i64::MAX as u64,
                time_delta: Time { seconds: 0, nseconds: 1 },
                properties: fsf::LINK | fsf::SYMLINK | fsf::HOMOGENEOUS | fsf::CANSETTIME,
            }),
            Err(s) => NfsResult::Err(s, None),
        };
        respond(done, res)
    }

    fn pathconf(self: &Arc<Self>, _caller: Caller, fh: Fh, done: Respond) {
        let res: PathConfRes = match self.handles.decode(&fh) {
            Ok(_) => NfsResult::Ok(PathConfOk {
                obj_attributes: None,
                linkmax: 1,
                name_max: 255,
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            }),
            Err(s) => NfsResult::Err(s, None),
        };
        respond(done, res)
    }

    fn commit(self: &Arc<Self>, caller: Caller, a: CommitArgs, done: Respond) {
        let ino = match self.handles.decode(&a.file) {
            Ok(ino) => ino,
            Err(s) => return respond::<CommitRes>(done, NfsResult::Err(s, WccData::NONE)),
        };
        let end = if a.count == 0 { u64::MAX } else { a.offset.saturating_add(u64::from(a.count)) };
        self.run(&caller, ino, Request::Commit { ino, range: a.offset..end }, move |r| {
            let res: CommitRes = match r {
                Ok(Reply::Committed { verifier }) => {
                    NfsResult::Ok(CommitOk { file_wcc: WccData::NONE, verf: verifier.to_be_bytes() })
                }
                other => NfsResult::Err(failure(other), WccData::NONE),
            };
            respond(done, res)
        });
    }
}

fn ok(reply: Reply) -> Result<Reply, Status> {
    Ok(reply)
}

/// The status of anything but the reply a procedure expects.
fn failure(r: Result<Reply, Status>) -> Status {
    match r {
        Err(s) => s,
        Ok(Reply::Error(e)) => convert::status(&e),
        Ok(other) => {
            tracing::error!("unexpected reply from core: {other:?}");
            Status::ServerFault
        }
    }
}

//! NFSv3's 22 procedures (RFC 1813 §3.3): each one's arguments and results, and `Call`, the
//! arguments decoded by procedure number.

use super::types::*;
use crate::xdr::{get_list, put_list, Res, Xdr};
use crate::xdr_struct;

pub const PROGRAM: u32 = 100_003;
pub const VERSION: u32 = 3;

/// `ACCESS3_*` bits.
pub mod access {
    pub const READ: u32 = 0x01;
    pub const LOOKUP: u32 = 0x02;
    pub const MODIFY: u32 = 0x04;
    pub const EXTEND: u32 = 0x08;
    pub const DELETE: u32 = 0x10;
    pub const EXECUTE: u32 = 0x20;
}

/// `FSF3_*` bits of FSINFO's properties.
pub mod fsf {
    pub const LINK: u32 = 0x01;
    pub const SYMLINK: u32 = 0x02;
    pub const HOMOGENEOUS: u32 = 0x08;
    pub const CANSETTIME: u32 = 0x10;
}

xdr_struct! {
    pub struct SetAttrArgs {
        pub object: Fh,
        pub attributes: Sattr,
        /// `sattrguard3`: only if the object's ctime is still this.
        pub guard: Option<Time>,
    }
}

xdr_struct! {
    pub struct LookupOk {
        pub object: Fh,
        pub obj_attributes: PostOpAttr,
        pub dir_attributes: PostOpAttr,
    }
}

xdr_struct! {
    pub struct AccessArgs {
        pub object: Fh,
        pub access: u32,
    }
}

xdr_struct! {
    pub struct AccessOk {
        pub obj_attributes: PostOpAttr,
        pub access: u32,
    }
}

xdr_struct! {
    pub struct ReadLinkOk {
        pub symlink_attributes: PostOpAttr,
        pub data: Vec<u8>,
    }
}

xdr_struct! {
    pub struct ReadArgs {
        pub file: Fh,
        pub offset: u64,
        pub count: u32,
    }
}

xdr_struct! {
    pub struct ReadOk {
        pub file_attributes: PostOpAttr,
        pub count: u32,
        pub eof: bool,
        pub data: Vec<u8>,
    }
}

xdr_struct! {
    pub struct WriteArgs {
        pub file: Fh,
        pub offset: u64,
        pub count: u32,
        pub stable: StableHow,
        pub data: Vec<u8>,
    }
}

xdr_struct! {
    pub struct WriteOk {
        pub file_wcc: WccData,
        pub count: u32,
        pub committed: StableHow,
        pub verf: [u8; 8],
    }
}

xdr_struct! {
    pub struct CreateArgs {
        pub place: DirOp,
        pub how: CreateHow,
    }
}

xdr_struct! {
    /// What CREATE, MKDIR, SYMLINK and MKNOD answer on success.
    pub struct NewObjectOk {
        pub obj: PostOpFh,
        pub obj_attributes: PostOpAttr,
        pub dir_wcc: WccData,
    }
}

xdr_struct! {
    pub struct MkdirArgs {
        pub place: DirOp,
        pub attributes: Sattr,
    }
}

xdr_struct! {
    pub struct SymlinkArgs {
        pub place: DirOp,
        pub attributes: Sattr,
        pub target: Vec<u8>,
    }
}

xdr_struct! {
    pub struct MknodArgs {
        pub place: DirOp,
        pub what: MknodData,
    }
}

xdr_struct! {
    pub struct RenameArgs {
        pub from: DirOp,
        pub to: DirOp,
    }
}

xdr_struct! {
    pub struct RenameRes {
        pub fromdir_wcc: WccData,
        pub todir_wcc: WccData,
    }
}

xdr_struct! {
    pub struct LinkArgs {
        pub file: Fh,
        pub link: DirOp,
    }
}

xdr_struct! {
    pub struct LinkRes {
        pub file_attributes: PostOpAttr,
        pub linkdir_wcc: WccData,
    }
}

xdr_struct! {
    pub struct ReadDirArgs {
        pub dir: Fh,
        pub cookie: u64,
        pub cookieverf: [u8; 8],
        pub count: u32,
    }
}

xdr_struct! {
    /// `entry3`.
    pub struct Entry {
        pub fileid: u64,
        pub name: Vec<u8>,
        pub cookie: u64,
    }
}

/// `READDIR3resok` and `READDIRPLUS3resok`: a page of entries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DirPage<E> {
    pub dir_attributes: PostOpAttr,
    pub cookieverf: [u8; 8],
    pub entries: Vec<E>,
    pub eof: bool,
}

pub type ReadDirOk = DirPage<Entry>;
pub type ReadDirPlusOk = DirPage<EntryPlus>;

impl<E: Xdr> Xdr for DirPage<E> {
    fn put(&self, out: &mut Vec<u8>) {
        self.dir_attributes.put(out);
        self.cookieverf.put(out);
        put_list(&self.entries, out);
        self.eof.put(out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (i, dir_attributes) = PostOpAttr::get(i)?;
        let (i, cookieverf) = <[u8; 8]>::get(i)?;
        let (i, entries) = get_list(i)?;
        let (i, eof) = bool::get(i)?;
        Ok((i, DirPage { dir_attributes, cookieverf, entries, eof }))
    }
}

xdr_struct! {
    pub struct ReadDirPlusArgs {
        pub dir: Fh,
        pub cookie: u64,
        pub cookieverf: [u8; 8],
        pub dircount: u32,
        pub maxcount: u32,
    }
}

xdr_struct! {
    /// `entryplus3`.
    pub struct EntryPlus {
        pub fileid: u64,
        pub name: Vec<u8>,
        pub cookie: u64,
        pub name_attributes: PostOpAttr,
        pub name_handle: PostOpFh,
    }
}

xdr_struct! {
    pub struct FsStatOk {
        pub obj_attributes: PostOpAttr,
        pub tbytes: u64,
        pub fbytes: u64,
        pub abytes: u64,
        pub tfiles: u64,
        pub ffiles: u64,
        pub afiles: u64,
        pub invarsec: u32,
    }
}

xdr_struct! {
    pub struct FsInfoOk {
        pub obj_attributes: PostOpAttr,
        pub rtmax: u32,
        pub rtpref: u32,
        pub rtmult: u32,
        pub wtmax: u32,
        pub wtpref: u32,
        pub wtmult: u32,
        pub dtpref: u32,
        pub maxfilesize: u64,
        pub time_delta: Time,
        pub properties: u32,
    }
}

xdr_struct! {
    pub struct PathConfOk {
        pub obj_attributes: PostOpAttr,
        pub linkmax: u32,
        pub name_max: u32,
        pub no_trunc: bool,
        pub chown_restricted: bool,
        pub case_insensitive: bool,
        pub case_preserving: bool,
    }
}

xdr_struct! {
    pub struct CommitArgs {
        pub file: Fh,
        pub offset: u64,
        pub count: u32,
    }
}

xdr_struct! {
    pub struct CommitOk {
        pub file_wcc: WccData,
        pub verf: [u8; 8],
    }
}

pub type GetAttrRes = NfsResult<Fattr, ()>;
pub type SetAttrRes = NfsResult<WccData, WccData>;
pub type LookupRes = NfsResult<LookupOk, PostOpAttr>;
pub type AccessRes = NfsResult<AccessOk, PostOpAttr>;
pub type ReadLinkRes = NfsResult<ReadLinkOk, PostOpAttr>;
pub type ReadRes = NfsResult<ReadOk, PostOpAttr>;
pub type WriteRes = NfsResult<WriteOk, WccData>;
/// CREATE, MKDIR, SYMLINK, MKNOD.
pub type NewObjectRes = NfsResult<NewObjectOk, WccData>;
/// REMOVE, RMDIR.
pub type RemoveRes = NfsResult<WccData, WccData>;
pub type RenameResult = NfsResult<RenameRes, RenameRes>;
pub type LinkResult = NfsResult<LinkRes, LinkRes>;
pub type ReadDirRes = NfsResult<ReadDirOk, PostOpAttr>;
pub type ReadDirPlusRes = NfsResult<ReadDirPlusOk, PostOpAttr>;
pub type FsStatRes = NfsResult<FsStatOk, PostOpAttr>;
pub type FsInfoRes = NfsResult<FsInfoOk, PostOpAttr>;
pub type PathConfRes = NfsResult<PathConfOk, PostOpAttr>;
pub type CommitRes = NfsResult<CommitOk, WccData>;

/// `void`.
impl Xdr for () {
    fn put(&self, _: &mut Vec<u8>) {}
    fn get(i: &[u8]) -> Res<'_, Self> {
        Ok((i, ()))
    }
}

/// A call's arguments, by procedure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Call {
    Null,
    GetAttr(Fh),
    SetAttr(SetAttrArgs),
    Lookup(DirOp),
    Access(AccessArgs),
    ReadLink(Fh),
    Read(ReadArgs),
    Write(WriteArgs),
    Create(CreateArgs),
    Mkdir(MkdirArgs),
    Symlink(SymlinkArgs),
    Mknod(MknodArgs),
    Remove(DirOp),
    Rmdir(DirOp),
    Rename(RenameArgs),
    Link(LinkArgs),
    ReadDir(ReadDirArgs),
    ReadDirPlus(ReadDirPlusArgs),
    FsStat(Fh),
    FsInfo(Fh),
    PathConf(Fh),
    Commit(CommitArgs),
}

/// Why a call's arguments were not decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum BadCall {
    NoSuchProcedure,
    Garbage,
}

fn whole<T: Xdr>(i: &[u8]) -> Result<T, BadCall> {
    crate::xdr::decode_all(i).ok_or(BadCall::Garbage)
}

impl Call {
    pub fn procedure(&self) -> u32 {
        match self {
            Call::Null => 0,
            Call::GetAttr(_) => 1,
            Call::SetAttr(_) => 2,
            Call::Lookup(_) => 3,
            Call::Access(_) => 4,
            Call::ReadLink(_) => 5,
            Call::Read(_) => 6,
            Call::Write(_) => 7,
            Call::Create(_) => 8,
            Call::Mkdir(_) => 9,
            Call::Symlink(_) => 10,
            Call::Mknod(_) => 11,
            Call::Remove(_) => 12,
            Call::Rmdir(_) => 13,
            Call::Rename(_) => 14,
            Call::Link(_) => 15,
            Call::ReadDir(_) => 16,
            Call::ReadDirPlus(_) => 17,
            Call::FsStat(_) => 18,
            Call::FsInfo(_) => 19,
            Call::PathConf(_) => 20,
            Call::Commit(_) => 21,
        }
    }

    /// The arguments of procedure `procedure`, which must fill `args` exactly.
    pub fn decode(procedure: u32, args: &[u8]) -> Result<Call, BadCall> {
        Ok(match procedure {
            0 => {
                whole::<()>(args)?;
                Call::Null
            }
            1 => Call::GetAttr(whole(args)?),
            2 => Call::SetAttr(whole(args)?),
            3 => Call::Lookup(whole(args)?),
            4 => Call::Access(whole(args)?),
            5 => Call::ReadLink(whole(args)?),
            6 => Call::Read(whole(args)?),
            7 => Call::Write(whole(args)?),
            8 => Call::Create(whole(args)?),
            9 => Call::Mkdir(whole(args)?),
            10 => Call::Symlink(whole(args)?),
            11 => Call::Mknod(whole(args)?),
            12 => Call::Remove(whole(args)?),
            13 => Call::Rmdir(whole(args)?),
            14 => Call::Rename(whole(args)?),
            15 => Call::Link(whole(args)?),
            16 => Call::ReadDir(whole(args)?),
            17 => Call::ReadDirPlus(whole(args)?),
            18 => Call::FsStat(whole(args)?),
            19 => Call::FsInfo(whole(args)?),
            20 => Call::PathConf(whole(args)?),
            21 => Call::Commit(whole(args)?),
            _ => return Err(BadCall::NoSuchProcedure),
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Call::Null => {}
            Call::GetAttr(a) | Call::ReadLink(a) | Call::FsStat(a) | Call::FsInfo(a) | Call::PathConf(a) => a.put(out),
            Call::SetAttr(a) => a.put(out),
            Call::Lookup(a) | Call::Remove(a) | Call::Rmdir(a) => a.put(out),
            Call::Access(a) => a.put(out),
            Call::Read(a) => a.put(out),
            Call::Write(a) => a.put(out),
            Call::Create(a) => a.put(out),
            Call::Mkdir(a) => a.put(out),
            Call::Symlink(a) => a.put(out),
            Call::Mknod(a) => a.put(out),
            Call::Rename(a) => a.put(out),
            Call::Link(a) => a.put(out),
            Call::ReadDir(a) => a.put(out),
            Call::ReadDirPlus(a) => a.put(out),
            Call::Commit(a) => a.put(out),
        }
    }
}

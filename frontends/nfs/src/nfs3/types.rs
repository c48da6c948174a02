//! NFSv3's shared data types (RFC 1813 §2.5-2.6): handles, attributes, weak cache consistency
//! data, settable attributes, statuses.

use crate::xdr::{get_opaque, invalid, put_opaque, Res, Xdr};
use crate::{xdr_enum, xdr_struct};

/// Longest file handle NFSv3 allows.
pub const FHSIZE3: usize = 64;

/// `nfs_fh3`: opaque to the client, at most 64 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fh(pub Vec<u8>);

impl Xdr for Fh {
    fn put(&self, out: &mut Vec<u8>) {
        put_opaque(&self.0, out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (rest, data) = get_opaque(i, FHSIZE3)?;
        Ok((rest, Fh(data.to_vec())))
    }
}

#[cfg(test)]
impl proptest::arbitrary::Arbitrary for Fh {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..=FHSIZE3).prop_map(Fh).boxed()
    }
}

xdr_enum! {
    /// `nfsstat3`.
    pub enum Status {
        Ok = 0,
        Perm = 1,
        NoEnt = 2,
        Io = 5,
        NxIo = 6,
        Acces = 13,
        Exist = 17,
        XDev = 18,
        NoDev = 19,
        NotDir = 20,
        IsDir = 21,
        Inval = 22,
        FBig = 27,
        NoSpc = 28,
        RoFs = 30,
        MLink = 31,
        NameTooLong = 63,
        NotEmpty = 66,
        DQuot = 69,
        Stale = 70,
        Remote = 71,
        BadHandle = 10001,
        NotSync = 10002,
        BadCookie = 10003,
        NotSupp = 10004,
        TooSmall = 10005,
        ServerFault = 10006,
        BadType = 10007,
        Jukebox = 10008,
    }
}

xdr_enum! {
    /// `ftype3`.
    pub enum Ftype {
        Reg = 1,
        Dir = 2,
        Blk = 3,
        Chr = 4,
        Lnk = 5,
        Sock = 6,
        Fifo = 7,
    }
}

xdr_enum! {
    /// `stable_how`.
    pub enum StableHow {
        Unstable = 0,
        DataSync = 1,
        FileSync = 2,
    }
}

xdr_struct! {
    /// `specdata3`: a device's major and minor numbers.
    #[derive(Copy)]
    pub struct SpecData {
        pub major: u32,
        pub minor: u32,
    }
}

xdr_struct! {
    /// `nfstime3`.
    #[derive(Copy)]
    pub struct Time {
        pub seconds: u32,
        pub nseconds: u32,
    }
}

xdr_struct! {
    /// `fattr3`.
    pub struct Fattr {
        pub ftype: Ftype,
        pub mode: u32,
        pub nlink: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub used: u64,
        pub rdev: SpecData,
        pub fsid: u64,
        pub fileid: u64,
        pub atime: Time,
        pub mtime: Time,
        pub ctime: Time,
    }
}

/// `post_op_attr`.
pub type PostOpAttr = Option<Fattr>;
/// `post_op_fh3`.
pub type PostOpFh = Option<Fh>;

xdr_struct! {
    /// `wcc_attr`: what weak cache consistency compares.
    #[derive(Copy)]
    pub struct WccAttr {
        pub size: u64,
        pub mtime: Time,
        pub ctime: Time,
    }
}

xdr_struct! {
    /// `wcc_data`: an object's attributes before and after a change.
    pub struct WccData {
        pub before: Option<WccAttr>,
        pub after: PostOpAttr,
    }
}

impl WccData {
    pub const NONE: WccData = WccData { before: None, after: None };
}

/// `set_atime` / `set_mtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SetTime {
    DontChange,
    ServerTime,
    ClientTime(Time),
}

impl Xdr for SetTime {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            SetTime::DontChange => 0u32.put(out),
            SetTime::ServerTime => 1u32.put(out),
            SetTime::ClientTime(t) => {
                2u32.put(out);
                t.put(out);
            }
        }
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        match u32::get(i)? {
            (rest, 0) => Ok((rest, SetTime::DontChange)),
            (rest, 1) => Ok((rest, SetTime::ServerTime)),
            (rest, 2) => {
                let (rest, t) = Time::get(rest)?;
                Ok((rest, SetTime::ClientTime(t)))
            }
            _ => invalid(i),
        }
    }
}

xdr_struct! {
    /// `sattr3`: the attributes a request sets.
    pub struct Sattr {
        pub mode: Option<u32>,
        pub uid: Option<u32>,
        pub gid: Option<u32>,
        pub size: Option<u64>,
        pub atime: SetTime,
        pub mtime: SetTime,
    }
}

impl Sattr {
    pub const NONE: Sattr =
        Sattr { mode: None, uid: None, gid: None, size: None, atime: SetTime::DontChange, mtime: SetTime::DontChange };
}

xdr_struct! {
    /// `diropargs3`: a name in a directory.
    pub struct DirOp {
        pub dir: Fh,
        pub name: Vec<u8>,
    }
}

/// `createhow3`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum CreateHow {
    Unchecked(Sattr),
    Guarded(Sattr),
    Exclusive([u8; 8]),
}

impl Xdr for CreateHow {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            CreateHow::Unchecked(a) => {
                0u32.put(out);
                a.put(out);
            }
            CreateHow::Guarded(a) => {
                1u32.put(out);
                a.put(out);
            }
            CreateHow::Exclusive(v) => {
                2u32.put(out);
                v.put(out);
            }
        }
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        match u32::get(i)? {
            (rest, 0) => Sattr::get(rest).map(|(r, a)| (r, CreateHow::Unchecked(a))),
            (rest, 1) => Sattr::get(rest).map(|(r, a)| (r, CreateHow::Guarded(a))),
            (rest, 2) => <[u8; 8]>::get(rest).map(|(r, v)| (r, CreateHow::Exclusive(v))),
            _ => invalid(i),
        }
    }
}

xdr_struct! {
    /// `devicedata3`.
    pub struct DeviceData {
        pub attributes: Sattr,
        pub spec: SpecData,
    }
}

/// `mknoddata3`: what MKNOD makes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum MknodData {
    Chr(DeviceData),
    Blk(DeviceData),
    Sock(Sattr),
    Fifo(Sattr),
    /// A regular file, directory or symlink: MKNOD answers NFS3ERR_BADTYPE.
    Other(#[cfg_attr(test, proptest(strategy = "other_ftype()"))] Ftype),
}

#[cfg(test)]
fn other_ftype() -> impl proptest::strategy::Strategy<Value = Ftype> {
    proptest::sample::select(vec![Ftype::Reg, Ftype::Dir, Ftype::Lnk])
}

impl Xdr for MknodData {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            MknodData::Chr(d) => {
                Ftype::Chr.put(out);
                d.put(out);
            }
            MknodData::Blk(d) => {
                Ftype::Blk.put(out);
                d.put(out);
            }
            MknodData::Sock(a) => {
                Ftype::Sock.put(out);
                a.put(out);
            }
            MknodData::Fifo(a) => {
                Ftype::Fifo.put(out);
                a.put(out);
            }
            MknodData::Other(t) => t.put(out),
        }
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (rest, t) = Ftype::get(i)?;
        match t {
            Ftype::Chr => DeviceData::get(rest).map(|(r, d)| (r, MknodData::Chr(d))),
            Ftype::Blk => DeviceData::get(rest).map(|(r, d)| (r, MknodData::Blk(d))),
            Ftype::Sock => Sattr::get(rest).map(|(r, a)| (r, MknodData::Sock(a))),
            Ftype::Fifo => Sattr::get(rest).map(|(r, a)| (r, MknodData::Fifo(a))),
            other => Ok((rest, MknodData::Other(other))),
        }
    }
}

/// A procedure's result: `NFS3_OK` and its body, or a failure status and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NfsResult<T, F> {
    Ok(T),
    Err(Status, F),
}

#[cfg(test)]
impl<T, F> proptest::arbitrary::Arbitrary for NfsResult<T, F>
where
    T: proptest::arbitrary::Arbitrary + 'static,
    F: proptest::arbitrary::Arbitrary + 'static,
{
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        let failed = any::<Status>().prop_filter("a failure", |s| *s != Status::Ok);
        prop_oneof![any::<T>().prop_map(NfsResult::Ok), (failed, any::<F>()).prop_map(|(s, f)| NfsResult::Err(s, f))]
            .boxed()
    }
}

impl<T: Xdr, F: Xdr> Xdr for NfsResult<T, F> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            NfsResult::Ok(v) => {
                Status::Ok.put(out);
                v.put(out);
            }
            NfsResult::Err(status, f) => {
                status.put(out);
                f.put(out);
            }
        }
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (rest, status) = Status::get(i)?;
        if status == Status::Ok {
            T::get(rest).map(|(r, v)| (r, NfsResult::Ok(v)))
        } else {
            F::get(rest).map(|(r, f)| (r, NfsResult::Err(status, f)))
        }
    }
}

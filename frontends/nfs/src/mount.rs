//! The MOUNT protocol, version 3 (RFC 1813 appendix I): how a client gets the root handle.

use crate::nfs3::{Fh, NfsResult};
use crate::xdr::{get_array, get_list, put_array, put_list, Res, Xdr};
use crate::xdr_struct;

pub const PROGRAM: u32 = 100_005;
pub const VERSION: u32 = 3;
/// `MNTPATHLEN`.
pub const MAX_PATH: usize = 1024;

xdr_struct! {
    /// `mountres3_ok`.
    pub struct MountOk {
        pub fhandle: Fh,
        pub auth_flavors: AuthFlavors,
    }
}

/// The auth flavours a server accepts (at most 16 decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AuthFlavors(
    #[cfg_attr(test, proptest(strategy = "proptest::collection::vec(proptest::arbitrary::any::<u32>(), 0..16)"))]
    pub  Vec<u32>,
);

impl Xdr for AuthFlavors {
    fn put(&self, out: &mut Vec<u8>) {
        put_array(&self.0, out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        get_array(i, 16).map(|(i, v)| (i, AuthFlavors(v)))
    }
}

/// `mountres3`: mountstat3 has the numbers of nfsstat3.
pub type MountRes = NfsResult<MountOk, ()>;

xdr_struct! {
    /// A `mountbody`: who mounted what.
    pub struct MountEntry {
        pub hostname: Vec<u8>,
        pub directory: Vec<u8>,
    }
}

/// An `exportnode`: an exported directory and the groups allowed to mount it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ExportEntry {
    pub dir: Vec<u8>,
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::collection::vec(0u8..255, 0..20), 0..5)")
    )]
    pub groups: Vec<Vec<u8>>,
}

impl Xdr for ExportEntry {
    fn put(&self, out: &mut Vec<u8>) {
        self.dir.put(out);
        put_list(&self.groups, out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (i, dir) = Vec::<u8>::get(i)?;
        let (i, groups) = get_list(i)?;
        Ok((i, ExportEntry { dir, groups }))
    }
}

/// A linked list on the wire (DUMP's mount list, EXPORT's export list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T: Xdr> Xdr for List<T> {
    fn put(&self, out: &mut Vec<u8>) {
        put_list(&self.0, out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        get_list(i).map(|(i, v)| (i, List(v)))
    }
}

/// A MOUNT call's arguments, by procedure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountCall {
    Null,
    Mnt(Vec<u8>),
    Dump,
    Umnt(Vec<u8>),
    UmntAll,
    Export,
}

impl MountCall {
    pub fn decode(procedure: u32, args: &[u8]) -> Result<MountCall, crate::nfs3::BadCall> {
        use crate::nfs3::BadCall;
        let path = |args: &[u8]| match crate::xdr::decode_all::<Vec<u8>>(args) {
            Some(p) if p.len() <= MAX_PATH => Ok(p),
            _ => Err(BadCall::Garbage),
        };
        let void = |args: &[u8]| if args.is_empty() { Ok(()) } else { Err(BadCall::Garbage) };
        Ok(match procedure {
            0 => void(args).map(|_| MountCall::Null)?,
            1 => MountCall::Mnt(path(args)?),
            2 => void(args).map(|_| MountCall::Dump)?,
            3 => MountCall::Umnt(path(args)?),
            4 => void(args).map(|_| MountCall::UmntAll)?,
            5 => void(args).map(|_| MountCall::Export)?,
            _ => return Err(BadCall::NoSuchProcedure),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::testing::round_trip;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mount_types_round_trip(r: MountRes, d in proptest::collection::vec(any::<MountEntry>(), 0..8),
                                  e in proptest::collection::vec(any::<ExportEntry>(), 0..8)) {
            round_trip(&r);
            round_trip(&List(d));
            round_trip(&List(e));
        }
    }

    #[test]
    fn calls() {
        assert_eq!(MountCall::decode(1, &b"/".to_vec().to_bytes()), Ok(MountCall::Mnt(b"/".to_vec())));
        assert_eq!(MountCall::decode(0, &[]), Ok(MountCall::Null));
        assert!(MountCall::decode(0, &[0, 0, 0, 0]).is_err());
        assert!(MountCall::decode(1, &vec![b'a'; 1025].to_bytes()).is_err());
        assert!(MountCall::decode(9, &[]).is_err());
    }
}

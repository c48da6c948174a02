//! Core's types in NFS's terms and back: attributes, times, settable attributes, errors.

use hfm_core::{Attr, Errno, FileKind, FsError, SetAttr, Stability, TimeSet, WccAttr as CoreWcc};

use crate::nfs3::{self, Fattr, Ftype, Sattr, SetTime, SpecData, StableHow, Status, Time, WccAttr, WccData};

pub fn time(ns: i64) -> Time {
    // NFSv3 times are unsigned: times before 1970 show as the epoch.
    let ns = ns.max(0) as u64;
    Time { seconds: (ns / 1_000_000_000).min(u64::from(u32::MAX)) as u32, nseconds: (ns % 1_000_000_000) as u32 }
}

pub fn time_ns(t: Time) -> i64 {
    i64::from(t.seconds) * 1_000_000_000 + i64::from(t.nseconds.min(999_999_999))
}

pub fn ftype(kind: FileKind) -> Ftype {
    match kind {
        FileKind::Directory => Ftype::Dir,
        FileKind::RegularFile => Ftype::Reg,
        FileKind::Symlink => Ftype::Lnk,
        FileKind::Fifo => Ftype::Fifo,
        FileKind::Socket => Ftype::Sock,
        FileKind::CharDevice => Ftype::Chr,
        FileKind::BlockDevice => Ftype::Blk,
    }
}

/// Linux's `dev_t` encoding split into major and minor.
pub fn spec(rdev: u32) -> SpecData {
    SpecData { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) }
}

pub fn rdev(spec: SpecData) -> u32 {
    ((spec.major & 0xfff) << 8) | (spec.minor & 0xff) | ((spec.minor & 0xfff00) << 12)
}

pub fn fattr(a: &Attr, fsid: u64) -> Fattr {
    Fattr {
        ftype: ftype(a.kind),
        mode: u32::from(a.perm & 0o7777),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.blocks() * 512,
        rdev: spec(a.rdev),
        fsid,
        fileid: a.ino,
        atime: time(a.atime_ns),
        mtime: time(a.mtime_ns),
        ctime: time(a.ctime_ns),
    }
}

pub fn wcc_attr(w: &CoreWcc) -> WccAttr {
    WccAttr { size: w.size, mtime: time(w.mtime_ns), ctime: time(w.ctime_ns) }
}

pub fn wcc(change: &hfm_core::Change, fsid: u64) -> WccData {
    WccData { before: Some(wcc_attr(&change.before)), after: Some(fattr(&change.after, fsid)) }
}

fn set_time(t: SetTime) -> Option<TimeSet> {
    match t {
        SetTime::DontChange => None,
        SetTime::ServerTime => Some(TimeSet::Now),
        SetTime::ClientTime(t) => Some(TimeSet::At(time_ns(t))),
    }
}

pub fn set_attr(s: &Sattr) -> SetAttr {
    SetAttr {
        size: s.size,
        mode: s.mode.map(|m| (m & 0o7777) as u16),
        uid: s.uid,
        gid: s.gid,
        atime: set_time(s.atime),
        mtime: set_time(s.mtime),
    }
}

pub fn stability(s: StableHow) -> Stability {
    match s {
        StableHow::Unstable => Stability::Unstable,
        StableHow::DataSync => Stability::DataSync,
        StableHow::FileSync => Stability::FileSync,
    }
}

pub fn stable_how(s: Stability) -> StableHow {
    match s {
        Stability::Unstable => StableHow::Unstable,
        Stability::DataSync => StableHow::DataSync,
        Stability::FileSync => StableHow::FileSync,
    }
}

/// The NFS status of a core error. Failures a client should simply retry later (the Hub
/// asking us to slow down) are `JUKEBOX`; a Hub that is down is `IO`, as over FUSE, so
/// programs see an error instead of a client retrying forever.
pub fn status(e: &FsError) -> Status {
    match e.errno {
        Errno::Perm => Status::Perm,
        Errno::NoEnt => Status::NoEnt,
        Errno::Io => Status::Io,
        Errno::BadF => Status::BadHandle,
        Errno::Again => Status::Jukebox,
        Errno::Acces => Status::Acces,
        Errno::Exist => Status::Exist,
        Errno::NotDir => Status::NotDir,
        Errno::IsDir => Status::IsDir,
        Errno::Inval => Status::Inval,
        Errno::NoSpc => Status::NoSpc,
        Errno::RoFs => Status::RoFs,
        Errno::NameTooLong => Status::NameTooLong,
        Errno::NoSys | Errno::NotSup => Status::NotSupp,
        Errno::NotEmpty => Status::NotEmpty,
        Errno::FBig => Status::FBig,
        Errno::Stale => Status::Stale,
        Errno::NotSync => Status::NotSync,
        Errno::TooSmall => Status::TooSmall,
    }
}

/// NFS `ACCESS3_*` bits in terms of `access(2)`'s read, write, execute.
pub fn access_mask(nfs: u32) -> u32 {
    use hfm_core::request::access as core;
    use nfs3::access::*;
    let mut m = 0;
    if nfs & READ != 0 {
        m |= core::READ;
    }
    if nfs & (LOOKUP | EXECUTE) != 0 {
        m |= core::EXECUTE;
    }
    if nfs & (MODIFY | EXTEND | DELETE) != 0 {
        m |= core::WRITE;
    }
    m
}

/// Which of the requested NFS bits `allowed` (core bits) grants.
pub fn access_granted(nfs: u32, allowed: u32) -> u32 {
    use hfm_core::request::access as core;
    use nfs3::access::*;
    let mut g = 0;
    for (bits, need) in [(READ, core::READ), (LOOKUP | EXECUTE, core::EXECUTE), (MODIFY | EXTEND | DELETE, core::WRITE)]
    {
        if allowed & need != 0 {
            g |= nfs & bits;
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(time_ns(time(1_700_000_000_123_456_789)), 1_700_000_000_123_456_789);
        assert_eq!(time(-5), Time { seconds: 0, nseconds: 0 });
        for dev in [0u32, 0x0801, (259 << 8) | 3, (1 << 8) | 0x12345 & 0xff | ((0x123 & 0xfff00) << 12)] {
            assert_eq!(rdev(spec(dev)), dev);
        }
        assert_eq!(access_granted(0x3f, hfm_core::request::access::READ), nfs3::access::READ);
        assert_eq!(access_mask(nfs3::access::DELETE), hfm_core::request::access::WRITE);
        assert_eq!(status(&FsError::new(Errno::Again, "hub_rate_limited", "")), Status::Jukebox);
    }
}

//! The portmapper (RFC 1833, version 2) answers a client that asks where MOUNT and NFS
//! listen: both on the server's own port.

use crate::xdr_struct;

pub const PROGRAM: u32 = 100_000;
pub const VERSION: u32 = 2;
pub const PROC_NULL: u32 = 0;
pub const PROC_GETPORT: u32 = 3;
pub const IPPROTO_TCP: u32 = 6;

xdr_struct! {
    /// `mapping`: which port serves a program version over a protocol.
    pub struct Mapping {
        pub prog: u32,
        pub vers: u32,
        pub prot: u32,
        pub port: u32,
    }
}

/// The port GETPORT answers for `m` when this server listens on `port` (0: not served).
pub fn getport(m: &Mapping, port: u16) -> u32 {
    let served = matches!((m.prog, m.vers), (crate::nfs3::PROGRAM, 3) | (crate::mount::PROGRAM, 3));
    if served && m.prot == IPPROTO_TCP {
        u32::from(port)
    } else {
        0
    }
}

//! hfm-nfs: the NFSv3 frontend.
//!
//! - `xdr`, `rpc`, `mount`, `nfs3`, `portmap`: the codec, pure nom over `&[u8]`, no IO.
//! - `handle`: NFS file handles from core's stable identities.
//! - `session`: each NFS or MOUNT call turned into core requests through the driver's `Handle`,
//!   and core's replies into NFS results.
//! - `server`: the TCP listener and connections (a reader thread per connection; replies
//!   written as core answers them, in any order).

pub mod mount;
pub mod nfs3;
pub mod portmap;
pub mod rpc;
pub mod xdr;

mod convert;
pub mod handle;
pub mod server;
pub mod session;

pub use handle::Handles;
pub use server::{Server, ServerConfig};
pub use session::Session;

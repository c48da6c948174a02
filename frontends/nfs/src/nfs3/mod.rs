//! NFS version 3 (RFC 1813): data types and procedures.

mod procs;
mod types;

pub use procs::*;
pub use types::*;

#[cfg(test)]
mod tests;

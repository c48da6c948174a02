//! NFS file handles: core's stable identity of a file (its inode number, derived from the
//! source and the path) plus a tag of the mounted source, so a handle means the same file in
//! every process that mounts the same source, and a handle from another export is stale.
//!
//! Layout (16 bytes): `b"HF"`, format version 1, 0, the source tag (u32), the inode (u64).

use hfm_core::Ino;

use crate::nfs3::{Fh, Status};

const MAGIC: [u8; 2] = *b"HF";
const VERSION: u8 = 1;
pub const LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handles {
    tag: u32,
}

impl Handles {
    /// `seed`: core's identity seed of the mounted source (`hfm_core::identity::mount_seed`).
    pub fn new(seed: u64) -> Self {
        Handles { tag: (seed >> 32) as u32 ^ seed as u32 }
    }

    pub fn tag(&self) -> u32 {
        self.tag
    }

    pub fn encode(&self, ino: Ino) -> Fh {
        let mut fh = Vec::with_capacity(LEN);
        fh.extend_from_slice(&MAGIC);
        fh.extend_from_slice(&[VERSION, 0]);
        fh.extend_from_slice(&self.tag.to_be_bytes());
        fh.extend_from_slice(&ino.to_be_bytes());
        Fh(fh)
    }

    /// The inode a handle names: `BadHandle` if it is not one of ours, `Stale` if it is one of
    /// another source's.
    pub fn decode(&self, fh: &Fh) -> Result<Ino, Status> {
        let b = &fh.0;
        if b.len() != LEN || b[..2] != MAGIC || b[2] != VERSION || b[3] != 0 {
            return Err(Status::BadHandle);
        }
        let tag = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let ino = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        if ino == 0 {
            return Err(Status::BadHandle);
        }
        if tag != self.tag {
            return Err(Status::Stale);
        }
        Ok(ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles() {
        let h = Handles::new(hfm_core::identity::mount_seed("bucket:a/b"));
        assert_eq!(h.decode(&h.encode(1)), Ok(1));
        assert_eq!(h.decode(&h.encode(u64::MAX)), Ok(u64::MAX));
        assert_eq!(h.decode(&Fh(vec![1, 2, 3])), Err(Status::BadHandle));
        assert_eq!(h.decode(&Fh(vec![0; LEN])), Err(Status::BadHandle));
        let other = Handles::new(hfm_core::identity::mount_seed("bucket:a/c"));
        assert_eq!(h.decode(&other.encode(5)), Err(Status::Stale));
        let mut zero = h.encode(1);
        zero.0[8..].fill(0);
        assert_eq!(h.decode(&zero), Err(Status::BadHandle));
    }
}

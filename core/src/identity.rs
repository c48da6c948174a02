//! Stable file identities: a node's inode number is derived from the mount's source and the
//! node's path, so the same file gets the same number in every process that mounts the same
//! source (NFS file handles survive a restart; `ls -i` is stable). The hash is written out here
//! (FNV-1a, then splitmix64's finalizer) so it never changes with a dependency. Collisions (two
//! live paths with one number, or a reserved number) are resolved by probing.

use crate::inode::Ino;

/// Numbers below this are reserved (0 is invalid, 1 is the root).
const FIRST_FREE: Ino = 2;

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one mounted source (`"bucket:ns/name"`, `"models:ns/name"`, ...).
pub fn mount_seed(source_key: &str) -> u64 {
    finalize(fnv1a(0, source_key.as_bytes()))
}

/// Candidate inode number `probe` (0 first) for remote `path` in the mount seeded `seed`.
pub fn candidate(seed: u64, path: &str, probe: u32) -> Ino {
    let h = finalize(fnv1a(seed, path.as_bytes()) ^ u64::from(probe).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    if h < FIRST_FREE {
        h + FIRST_FREE
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        let s = mount_seed("bucket:a/b");
        assert_eq!(candidate(s, "x/y", 0), candidate(mount_seed("bucket:a/b"), "x/y", 0));
        assert_ne!(candidate(s, "x/y", 0), candidate(s, "x/y", 1));
        assert_ne!(candidate(s, "x/y", 0), candidate(mount_seed("bucket:a/c"), "x/y", 0));
        assert!(candidate(s, "", 0) >= FIRST_FREE);
        // Written-out values: a change here breaks every NFS handle clients hold.
        assert_eq!(mount_seed(""), finalize(0xcbf2_9ce4_8422_2325));
    }
}

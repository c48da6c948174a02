//! Backing files of passthrough opens (core's local copies): each copy is registered with the
//! kernel once (`FUSE_DEV_IOC_BACKING_OPEN`) and that id reused for every handle open through
//! it, as the kernel requires, until the last of them is released.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use fuser::{BackingId, FileHandle, FopenFlags, ReplyOpen};
use hfm_core::Backing;

#[derive(Default)]
pub(crate) struct Backings {
    /// The kernel agreed to passthrough at `init`.
    granted: AtomicBool,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    /// Each registered copy and how many handles use it.
    ids: HashMap<String, (BackingId, u32)>,
    /// The copy of each handle open through one.
    handles: HashMap<u64, String>,
    /// Copies found missing: their files read through the mount from then on (were one to come
    /// back, an open through it could meet a handle of the same file in the page-cache mode).
    missing: HashSet<String>,
}

impl Backings {
    pub fn grant(&self) {
        self.granted.store(true, Ordering::Relaxed);
    }

    pub fn granted(&self) -> bool {
        self.granted.load(Ordering::Relaxed)
    }

    /// Answer an open through `backing`; false if it cannot be (then the caller answers it
    /// as a plain open).
    pub fn reply(&self, reply: &mut Option<ReplyOpen>, fh: u64, backing: &Backing) -> bool {
        if !self.granted() {
            return false;
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let Open { ids, handles, missing } = &mut *open;
        if missing.contains(&backing.path) {
            return false;
        }
        if !ids.contains_key(&backing.path) {
            let Some(r) = reply.as_ref() else { return false };
            let file = match File::open(&backing.path) {
                Ok(file) => file,
                Err(e) => {
                    // Removed behind core's back (another mount of the cache dir made room):
                    // the file reads through the mount.
                    tracing::debug!("local copy {} unavailable ({e}); the file reads through the mount", backing.path);
                    missing.insert(backing.path.clone());
                    return false;
                }
            };
            match r.open_backing(&file) {
                Ok(id) => {
                    ids.insert(backing.path.clone(), (id, 0));
                }
                Err(e) => {
                    // From now on every open reads through the mount: an inode must not be
                    // open through a copy and through the page cache at once.
                    self.granted.store(false, Ordering::Relaxed);
                    tracing::warn!("passthrough to {} refused ({e}); files read through the mount", backing.path);
                    return false;
                }
            }
        }
        let Some((id, users)) = ids.get_mut(&backing.path) else { return false };
        let Some(r) = reply.take() else { return false };
        *users += 1;
        handles.insert(fh, backing.path.clone());
        let flags = if backing.direct_io { FopenFlags::FOPEN_DIRECT_IO } else { FopenFlags::empty() };
        r.opened_passthrough(FileHandle(fh), flags, id);
        true
    }

    /// Handle `fh` is released: its copy is unregistered with its last handle.
    pub fn released(&self, fh: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = open.handles.remove(&fh) else { return };
        if let Some((_, users)) = open.ids.get_mut(&path) {
            *users -= 1;
            if *users == 0 {
                open.ids.remove(&path);
            }
        }
    }
}

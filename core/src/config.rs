//! What a mount is: which repo, at which pinned commit, which subfolder, and its policies.

use std::time::Duration;

use crate::hub::{HubUrls, RepoRef};

#[derive(Clone, Debug)]
pub struct MountConfig {
    pub urls: HubUrls,
    pub repo: RepoRef,
    /// The 40-hex commit the mount shows; immutable, so listings and bytes never go stale.
    pub commit: String,
    /// Repo path shown at the mount root ("" = whole repo).
    pub subfolder: String,
    pub uid: u32,
    pub gid: u32,
    /// Entry/attr TTL handed to the kernel.
    pub metadata_ttl: Duration,
    /// mtime of every file and directory (the commit date; the tree API gives none per file).
    pub mtime_secs: i64,
    pub policy: ReadPolicy,
}

/// Read-path knobs; defaults are what the benchmark was tuned with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPolicy {
    /// Bytes of fetched file data core keeps in memory (LRU over all files).
    pub cache_bytes: u64,
    /// First read-ahead window after a sequential access is detected.
    pub initial_window: u64,
    /// Read-ahead never grows past this.
    pub max_window: u64,
    /// A fetch effect never asks for more than this; larger gaps become several effects that
    /// run concurrently.
    pub max_fetch: u64,
    /// Page size requested from the tree API.
    pub tree_page_limit: u32,
}

impl Default for ReadPolicy {
    fn default() -> Self {
        ReadPolicy {
            cache_bytes: 64 << 20,
            initial_window: 1 << 20,
            max_window: 32 << 20,
            max_fetch: 8 << 20,
            tree_page_limit: 1000,
        }
    }
}

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
    /// Bytes a reader must read back to back before anything is read ahead (larger than one
    /// big random read, which the kernel splits into sequential requests).
    pub sequential_threshold: u64,
    /// Smallest read-ahead window once a reader is sequential.
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
            cache_bytes: 32 << 20,
            sequential_threshold: 4 << 20,
            initial_window: 4 << 20,
            max_window: 16 << 20,
            max_fetch: 4 << 20,
            tree_page_limit: 1000,
        }
    }
}

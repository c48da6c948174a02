//! What a mount is: a repo at a pinned commit or a bucket, which subfolder, and its policies.

use std::time::Duration;

use crate::hub::{HubUrls, RepoRef};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A repo at a 40-hex commit: immutable, so listings and bytes never go stale. When the
    /// mount was asked for a branch (or tag), `follow` names it: the poll resolves it again and
    /// moves the mount to its new commit.
    Repo { repo: RepoRef, commit: String, follow: Option<String> },
    /// A bucket (`ns/name`): mutable, re-checked after the metadata TTL and by the poll.
    Bucket { id: String },
}

#[derive(Clone, Debug)]
pub struct MountConfig {
    pub urls: HubUrls,
    pub source: Source,
    /// Path shown at the mount root ("" = everything).
    pub subfolder: String,
    pub uid: u32,
    pub gid: u32,
    /// Entry/attr TTL handed to the kernel, and how long a bucket listing is trusted.
    pub metadata_ttl: Duration,
    /// mtime of directories and of files whose listing gives none.
    pub mtime_secs: i64,
    pub policy: ReadPolicy,
    pub writes: WritePolicy,
    /// Wall-clock milliseconds since the epoch at the runtime's `Instant::ZERO` (for the
    /// mtimes the mount writes).
    pub wall_ms_at_zero: i64,
    /// How often a bucket (its `updatedAt`) or a followed repo revision (its commit) is probed
    /// for remote changes; `None` = never.
    pub poll_interval: Option<Duration>,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    ReadOnly,
    /// Append-only writes of new or truncated files, buffered in memory (spilling to a
    /// staging file past `memory_limit`), uploaded and committed on close.
    Streaming,
    /// A staging file per written file: random writes, truncate, read-your-writes; uploads
    /// debounced after the last close and committed in batches.
    Advanced,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritePolicy {
    pub mode: WriteMode,
    /// Advanced mode: a closed file is uploaded this long after its last write or close.
    pub flush_debounce: Duration,
    /// Advanced mode: and at the latest this long after it first became dirty.
    pub flush_max_batch_window: Duration,
    /// Streaming mode: bytes of one file kept in memory before it spills to a staging file.
    pub memory_limit: u64,
    /// Streaming mode: a new file this large starts uploading while it is written (smaller
    /// files are uploaded whole at close, many to a session). Must not exceed `memory_limit`.
    pub stream_threshold: u64,
    /// Directory (with trailing `/`) where staging files are named.
    pub staging_dir: String,
    /// How long a failed commit waits before it is tried again.
    pub commit_retry: Duration,
}

impl Default for WritePolicy {
    fn default() -> Self {
        WritePolicy {
            mode: WriteMode::ReadOnly,
            flush_debounce: Duration::from_millis(2000),
            flush_max_batch_window: Duration::from_millis(30000),
            memory_limit: 64 << 20,
            stream_threshold: 8 << 20,
            staging_dir: "/tmp/hf-mount-staging/".to_string(),
            commit_retry: Duration::from_secs(10),
        }
    }
}

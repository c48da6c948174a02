//! What a mount is: a repo at a revision or a bucket, which subfolder, and its policies. Core
//! resolves the source against the Hub when it starts (see `fs::mount`).

use std::time::Duration;

use crate::hub::{HubUrls, RepoRef};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A repo at `revision`: a commit sha is pinned for good; a branch or tag is resolved to
    /// its commit at mount time and followed (the poll resolves it again).
    Repo { repo: RepoRef, revision: String },
    /// A bucket (`ns/name`): mutable, re-checked after the metadata TTL and by the poll.
    Bucket { id: String },
}

impl Source {
    /// What identifies the source for stable inode numbers (`identity::mount_seed`).
    pub fn identity_key(&self) -> String {
        match self {
            Source::Repo { repo, .. } => format!("{}:{}", repo.kind.api_segment(), repo.id),
            Source::Bucket { id } => format!("bucket:{id}"),
        }
    }
}

/// What the frontend leaves to core: permission checks (FUSE lets the kernel check them with
/// `default_permissions`; NFS cannot) and whom new files belong to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Check every request's caller against modes and owners.
    pub check: bool,
    /// New files are owned by their creator (the kernel vouches for it); otherwise by the
    /// mount's `uid`/`gid` (NFS: AUTH_SYS identities are not trusted for ownership).
    pub owner_from_caller: bool,
}

#[derive(Clone, Debug)]
pub struct MountConfig {
    pub urls: HubUrls,
    pub source: Source,
    /// Path shown at the mount root ("" = everything).
    pub subfolder: String,
    /// Whether a Hub token is sent (mount-time errors say what to try).
    pub has_token: bool,
    pub uid: u32,
    pub gid: u32,
    pub access: AccessPolicy,
    /// Entry/attr TTL handed to the kernel, and how long a bucket listing is trusted.
    pub metadata_ttl: Duration,
    pub policy: ReadPolicy,
    pub writes: WritePolicy,
    pub timeouts: Timeouts,
    /// Wall-clock milliseconds since the epoch at the runtime's `Instant::ZERO` (for the
    /// mtimes the mount writes).
    pub wall_ms_at_zero: i64,
    /// How often a bucket (its `updatedAt`) or a followed repo revision (its commit) is probed
    /// for remote changes; `None` = never.
    pub poll_interval: Option<Duration>,
    /// Seeds core's random generator (retry jitter).
    pub seed: u64,
    /// Write verifier: a different value every time the mount starts.
    pub verifier: u64,
    /// Refuse to create OS metadata files (`osjunk`) and hide them in bucket listings.
    pub filter_os_files: bool,
    /// Most directories a poll that saw a remote change re-lists at once.
    pub poll_listing_concurrency: usize,
    /// Keep the inode table near this many entries (`None`: unbounded), swept this often.
    pub inode_soft_limit: Option<usize>,
    pub lru_sweep_interval: Duration,
    /// The frontend forgets every entry it was given (FUSE `FORGET`), so a lookup count of 0
    /// means the kernel holds nothing; NFS clients never forget, and keep handles instead.
    pub kernel_forgets: bool,
    /// `--overlay`: the mount point's own directory is a writable local layer over the
    /// remote, which is never written (`fs::overlay`).
    pub overlay: bool,
    /// Keep local copies of large files read whole and open them through the kernel's FUSE
    /// passthrough (`fs::copies`); `None`: every open reads through the mount.
    pub copies: Option<CopyPolicy>,
}

/// Where whole-file copies go and how much they may take (`fs::copies`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPolicy {
    /// Prefix of every complete copy's path (a directory shared by the mounts of one cache
    /// directory, ending in `/`); a copy is named by its content (`fs::copy_name_size`).
    pub dir: String,
    /// Prefix of copies being written (a directory of this mount's own, ending in `/`).
    pub partial_dir: String,
    /// Smaller files are never copied (the page cache serves them as well).
    pub min_size: u64,
    /// Most bytes the copies may hold together; the least recently opened go first.
    pub max_bytes: u64,
    /// Copies already in `dir` (name, size on disk), least recently used first.
    pub stored: Vec<(String, u64)>,
}

impl MountConfig {
    /// A configuration with defaults for everything but what is mounted (tests, simulations).
    pub fn new(urls: HubUrls, source: Source) -> Self {
        MountConfig {
            urls,
            source,
            subfolder: String::new(),
            has_token: false,
            uid: 0,
            gid: 0,
            access: AccessPolicy::default(),
            metadata_ttl: Duration::from_secs(10),
            policy: ReadPolicy::default(),
            writes: WritePolicy::default(),
            timeouts: Timeouts::default(),
            wall_ms_at_zero: 0,
            poll_interval: None,
            seed: 0,
            verifier: 0,
            filter_os_files: true,
            poll_listing_concurrency: 4,
            inode_soft_limit: None,
            lru_sweep_interval: Duration::from_secs(5),
            kernel_forgets: true,
            overlay: false,
            copies: None,
        }
    }
}

/// How long one attempt of each kind of effect may take before core stops waiting for it and
/// follows the retry policy, and how long a read may wait for its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A Hub API call, or a ranged GET of a git file.
    pub hub_call: Duration,
    /// A read whose bytes have not arrived within this fails with `EIO`
    /// (`--read-fetch-timeout-ms`; `None` waits as long as it takes). Also bounds each CAS
    /// fetch attempt.
    pub read_fetch: Option<Duration>,
    /// An upload, an upload stream step or the fill of a staging file: this, plus
    /// `transfer_per_mib` for every MiB it moves.
    pub transfer_base: Duration,
    pub transfer_per_mib: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            hub_call: Duration::from_secs(30),
            read_fetch: Some(Duration::from_secs(30)),
            transfer_base: Duration::from_secs(60),
            transfer_per_mib: Duration::from_secs(1),
        }
    }
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
    /// Bytes all staging files together may hold (`None`: as much as the disk takes). A write
    /// that would grow them past it gets `ENOSPC`; files whose content the bucket has are not
    /// counted once their write state goes.
    pub max_staging: Option<u64>,
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
            max_staging: None,
        }
    }
}

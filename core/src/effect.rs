//! Effects: what core asks the outside world to do, and the completions that come back.
//!
//! Effects are plain values. Runtimes execute them (in any order, concurrently) and feed the
//! result back with the same `EffectId`. Core never learns how they were executed. Effects that
//! reach CAS name the Hub URL of the xet token that grants access (`token_url`): executors keep
//! one CAS session per token URL.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EffectId(pub u64);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// GET a Hub API URL (built by `core::hub`); the completion is `Completion::Http`.
    HubGet { url: String },
    /// GET `range` of a regular (non-xet) file through its resolve URL; completion is `Bytes`.
    HubRange { url: String, range: Range<u64> },
    /// Reconstruct `range` of a xet-stored file through CAS; completion is `Bytes`. Without
    /// `chunk_cache` the bytes are not kept in the disk chunk cache (they go to a local copy).
    CasRange { token_url: Arc<str>, xet_hash: String, file_size: u64, range: Range<u64>, chunk_cache: bool },
    /// POST `body` to a Hub API URL; the completion is `Completion::Http`.
    HubPost { url: String, content_type: &'static str, body: Bytes },
    /// A step of an upload stream (upload while writing); `Done`, or `Uploaded` for `Finish`.
    /// Failures are final: a stream is never retried, its file is uploaded whole instead.
    Stream(StreamOp),
    /// A local staging-file operation; the completion is `Done` (or `Bytes` for reads).
    Stage(StageOp),
    /// Upload files to CAS, in one session finalized at the end (xorbs and shard); the
    /// completion is `Uploaded`, one entry per source, in order.
    Upload { token_url: Arc<str>, sources: Vec<UploadSource> },
    /// An operation on the overlay's local layer (`--overlay`).
    Layer(LayerOp),
}

/// Operations on the overlay's local layer: the mount point's own directory, opened before
/// mounting. Paths are relative to the layer, made of names core checked ('/'-separated, never
/// empty, `.` or `..`); effects resolve every one beneath the layer without following symlinks,
/// so no name can reach outside it. `make_parents` lists directories (outermost first, with
/// their modes) to create before the operation when missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerOp {
    /// Every directory and regular file in the layer (symlinks and special files are hidden);
    /// the completion is `Listed`.
    Walk,
    /// Read `range` of a file; the completion is `Bytes` (short at end of file).
    Read {
        path: String,
        range: Range<u64>,
    },
    /// Write `data` at `offset`; with `sync`, on the disk before the completion.
    Write {
        path: String,
        offset: u64,
        data: Bytes,
        sync: bool,
    },
    /// Create an empty regular file (`EEXIST` if the name is taken) or a directory with
    /// exactly `mode`, owned by `owner` where the process may give it away; the completion is
    /// `Listed` with the new entry.
    Create {
        path: String,
        dir: bool,
        mode: u16,
        owner: Option<(u32, u32)>,
        make_parents: Vec<(String, u16)>,
    },
    /// Change size, mode, owner or times (`None` leaves it); the completion is `Listed` with
    /// the entry after.
    SetAttr {
        path: String,
        change: LayerChange,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    /// Rename `from` to `to`, replacing `to` unless `no_replace`.
    Rename {
        from: String,
        to: String,
        no_replace: bool,
        make_parents: Vec<(String, u16)>,
    },
    /// Flush a file's data to the disk.
    Sync {
        path: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerChange {
    pub size: Option<u64>,
    pub mode: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Nanoseconds since the epoch.
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
}

/// A directory or regular file of the local layer, as `stat` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Relative to the layer.
    pub path: String,
    pub dir: bool,
    pub size: u64,
    /// Permission bits.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// Staging files hold the content of files being written, named by core, owned by effects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageOp {
    /// Create (or empty) the file.
    Create {
        path: String,
    },
    /// Fill the file with the whole content of a xet file (before it is edited in place).
    Fill {
        path: String,
        token_url: Arc<str>,
        xet_hash: String,
        size: u64,
    },
    /// Apply `edits` in order (the file is created if missing).
    Edit {
        path: String,
        edits: Vec<StageEdit>,
    },
    Read {
        path: String,
        range: Range<u64>,
    },
    Remove {
        path: String,
    },
    /// Put a complete file in its place: sync `from` to the disk, then rename it to `to`
    /// (replacing what is there), so `to` is never seen with part of its bytes.
    Publish {
        from: String,
        to: String,
    },
    /// Write a journal record `record` atomically (a crash leaves the old record or the new
    /// one, never a mix), or remove it when `body` is `None`; then remove the `staging` files
    /// listed (their content is in the bucket).
    Journal {
        record: String,
        body: Option<Bytes>,
        remove: Vec<String>,
    },
}

/// Upload streams are named by core; effects keep their xet-core state between steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamOp {
    /// Feed the next bytes (the stream is created on its first append).
    Append { stream: u64, token_url: Arc<str>, data: Vec<Bytes> },
    /// Finish the file and finalize its session.
    Finish { stream: u64 },
    /// Drop the stream.
    Abort { stream: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageEdit {
    Write { offset: u64, data: Bytes },
    Truncate { size: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadSource {
    /// Content held by core, in order.
    Memory(Vec<Bytes>),
    /// A staging file's whole content.
    File(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Worth retrying: transport error, timeout, 408/429/5xx.
    Transient,
    /// Retrying cannot help: malformed response, 4xx other than below.
    Permanent,
    /// 401/403.
    Auth,
    /// 404 / unknown object.
    NotFound,
    /// A local file operation failed (staging files); never retried.
    Local(LocalError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalError {
    /// The local disk is full.
    NoSpace,
    Io,
    /// The overlay's local layer refused the operation with this errno (`EEXIST`,
    /// `ENOTEMPTY`, `EACCES` for a name that would leave the layer, ...).
    Refused(crate::error::Errno),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectFailure {
    pub kind: FailureKind,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    pub message: String,
    /// Server-requested delay (429 `RateLimit` / `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl EffectFailure {
    pub fn new(kind: FailureKind, status: Option<u16>, message: impl Into<String>) -> Self {
        EffectFailure { kind, status, message: message.into(), retry_after: None }
    }

    /// Classify an HTTP status that is not a success.
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            401 | 403 => FailureKind::Auth,
            404 | 410 => FailureKind::NotFound,
            408 | 429 | 500..=599 => FailureKind::Transient,
            _ => FailureKind::Permanent,
        };
        EffectFailure::new(kind, Some(status), message)
    }

    pub fn local(error: LocalError, message: impl Into<String>) -> Self {
        EffectFailure::new(FailureKind::Local(error), None, message)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    Http(HttpResponse),
    /// File bytes, in order, as one or more consecutive pieces (no copy to join them).
    Bytes(Vec<Bytes>),
    /// A staging operation without data to return succeeded.
    Done,
    /// An upload succeeded: each file's xet hash and size, in the order of the sources.
    Uploaded(Vec<(String, u64)>),
    /// Entries of the overlay's local layer.
    Listed(Vec<LayerEntry>),
    Failed(EffectFailure),
}

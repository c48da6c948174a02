//! hfm-core: the whole filesystem as a pure, deterministic state machine.
//!
//! Requests, effect completions and `now` go in; replies, effects, kernel notifications and the
//! next timeout come out. Nothing in this crate performs IO, reads a clock, spawns or sleeps.

pub mod commits;
pub mod config;
pub mod effect;
pub mod error;
pub mod fs;
pub mod hub;
pub mod inode;
pub mod listing;
mod namespace;
pub mod prefetch;
pub mod readcache;
mod refresh;
pub mod request;
pub mod retry;
mod stream;
pub mod time;
mod writes;

pub use config::MountConfig;
pub use effect::{
    Completion, Effect, EffectFailure, EffectId, FailureKind, HttpResponse, StageEdit, StageOp, StreamOp, UploadSource,
};
pub use error::{Errno, FsError};
pub use fs::{DrainOutcome, Filesystem};
pub use inode::{Ino, ROOT_INO};
pub use request::{Attr, DirEntry, FileKind, KernelNotify, Reply, Request, RequestId, SetAttr, StatFs};
pub use time::Instant;

//! hfm-core: the whole filesystem as a pure, deterministic state machine.
//!
//! Requests, effect completions and `now` go in; replies, effects, kernel notifications and the
//! next timeout come out. Nothing in this crate performs IO, reads a clock, spawns or sleeps,
//! and no output depends on a per-process random seed.

pub mod collections;
pub mod commits;
pub mod config;
pub mod effect;
pub mod error;
pub mod fs;
pub mod hub;
pub mod identity;
pub mod inode;
pub mod listing;
pub mod osjunk;
pub mod prefetch;
pub mod readcache;
pub mod request;
pub mod retry;
pub mod rng;
pub mod time;

pub use config::MountConfig;
pub use effect::{
    Completion, Effect, EffectFailure, EffectId, FailureKind, HttpResponse, LayerChange, LayerEntry, LayerOp,
    LocalError, StageEdit, StageOp, StreamOp, UploadSource,
};
pub use error::{Errno, FsError};
pub use fs::{DrainOutcome, Filesystem, MountInfo, Stats};
pub use inode::{Ino, ROOT_INO};
pub use request::{
    Attr, Backing, Caller, Change, CreateHow, DirBudget, DirEntry, FallocMode, FileKind, KernelNotify, Reply, Request,
    RequestId, SetAttr, Stability, StatFs, TimeSet, WccAttr,
};
pub use time::Instant;

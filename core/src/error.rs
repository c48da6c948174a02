//! The typed filesystem error: one errno, a stable label for logs and metrics, and a detail.
//!
//! Errno values are Linux's; frontends pass `Errno::code()` to the kernel, and NFS maps each
//! variant (and, for transient Hub failures, the label) to its NFS3ERR_* code.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    Perm,
    NoEnt,
    Io,
    BadF,
    Again,
    Acces,
    Exist,
    NotDir,
    IsDir,
    Inval,
    NoSpc,
    RoFs,
    NameTooLong,
    NoSys,
    NotEmpty,
    NotSup,
    FBig,
    /// The identity no longer names a file (NFS3ERR_STALE).
    Stale,
    /// A setattr guard did not match (NFS3ERR_NOT_SYNC; `EINVAL` for Linux).
    NotSync,
    /// Not even one directory entry fits the reply budget (NFS3ERR_TOOSMALL; `EINVAL`).
    TooSmall,
}

impl Errno {
    /// The Linux errno number.
    pub fn code(self) -> i32 {
        match self {
            Errno::Perm => 1,
            Errno::NoEnt => 2,
            Errno::Io => 5,
            Errno::BadF => 9,
            Errno::Again => 11,
            Errno::Acces => 13,
            Errno::Exist => 17,
            Errno::NotDir => 20,
            Errno::IsDir => 21,
            Errno::Inval => 22,
            Errno::NoSpc => 28,
            Errno::RoFs => 30,
            Errno::NameTooLong => 36,
            Errno::NoSys => 38,
            Errno::NotEmpty => 39,
            Errno::NotSup => 95,
            Errno::FBig => 27,
            Errno::Stale => 116,
            Errno::NotSync | Errno::TooSmall => 22,
        }
    }

    /// The variant of Linux errno `code`, if it has one (`EINVAL` maps to `Inval`).
    pub fn from_code(code: i32) -> Option<Errno> {
        use Errno::*;
        [
            Perm,
            NoEnt,
            Io,
            BadF,
            Again,
            Acces,
            Exist,
            NotDir,
            IsDir,
            Inval,
            NoSpc,
            RoFs,
            NameTooLong,
            NoSys,
            NotEmpty,
            NotSup,
            FBig,
            Stale,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

/// How loudly an error deserves to be logged once, at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Expected in normal use (a missing file, a write to a read-only mount).
    Debug,
    /// The remote side failed us; the user sees an error.
    Warn,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsError {
    pub errno: Errno,
    /// Stable, grep-able name of the failure (`not_found`, `read_only`, `hub_unavailable`, ...).
    pub label: &'static str,
    pub detail: String,
}

impl FsError {
    pub fn new(errno: Errno, label: &'static str, detail: impl Into<String>) -> Self {
        FsError { errno, label, detail: detail.into() }
    }

    pub fn not_found() -> Self {
        Self::new(Errno::NoEnt, "not_found", "")
    }

    pub fn is_a_directory() -> Self {
        Self::new(Errno::IsDir, "is_a_directory", "")
    }

    pub fn not_a_directory() -> Self {
        Self::new(Errno::NotDir, "not_a_directory", "")
    }

    pub fn exists() -> Self {
        Self::new(Errno::Exist, "exists", "")
    }

    pub fn level(&self) -> LogLevel {
        if self.label == "permission_denied" || self.label == "os_metadata_file" {
            return LogLevel::Debug;
        }
        match self.errno {
            Errno::NoEnt
            | Errno::RoFs
            | Errno::NotDir
            | Errno::IsDir
            | Errno::Inval
            | Errno::NoSys
            | Errno::Exist
            | Errno::NotEmpty
            | Errno::NameTooLong
            | Errno::Stale
            | Errno::NotSync
            | Errno::TooSmall
            | Errno::Perm
            | Errno::NotSup => LogLevel::Debug,
            _ => LogLevel::Warn,
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{} (errno {})", self.label, self.errno.code())
        } else {
            write!(f, "{} (errno {}): {}", self.label, self.errno.code(), self.detail)
        }
    }
}

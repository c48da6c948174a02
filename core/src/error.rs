//! The typed filesystem error: one errno, a stable label for logs and metrics, and a detail.
//!
//! Errno values are Linux's; frontends pass `Errno::code()` to the kernel or to NFS mapping.

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
        }
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

    pub fn read_only() -> Self {
        Self::new(Errno::RoFs, "read_only", "repo mounts are read-only")
    }

    pub fn level(&self) -> LogLevel {
        match self.errno {
            Errno::NoEnt | Errno::RoFs | Errno::NotDir | Errno::IsDir | Errno::Inval | Errno::NoSys => LogLevel::Debug,
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

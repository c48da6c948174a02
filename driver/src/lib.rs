//! hfm-driver: the one contract between core and every runtime and frontend.
//!
//! - `Driver` owns the core `Filesystem`, the reply sinks of requests core has not answered,
//!   the drain order after every input, kernel notifications, log lines and the unmount drain.
//! - `Executor` is how effects run: `hfm-effects` implements it for real, the simulation crate
//!   with a simulated Hub and CAS.
//! - `Handle` is what frontends hold to submit requests, whatever the runtime; `ReplySink` and
//!   `Notifier` are what they implement.
//!
//! A runtime only waits for the next input or deadline, runs effects through the executor and
//! feeds the results back: it holds no filesystem policy and no reply table of its own.

mod clock;
mod driver;
mod handle;

pub use clock::Clock;
pub use driver::{Driver, Flow};
pub use handle::{Handle, Inbox, Input, Report, Running};

pub use hfm_core::DrainOutcome;
use hfm_core::{Completion, Effect, KernelNotify, Reply};

/// Where a reply goes: a FUSE reply object, an NFS response slot, a test's channel.
pub trait ReplySink: Send + 'static {
    fn send(self: Box<Self>, reply: Reply);
}

/// Receives kernel cache invalidations. Must not block: the kernel may be waiting for a reply
/// from the thread that calls it.
pub trait Notifier: Send + 'static {
    fn notify(&self, n: KernelNotify);
}

/// Executes one effect, blocking until it completes; called from many threads at once.
pub trait Executor: Send + Sync + 'static {
    fn execute(&self, effect: Effect) -> Completion;
}

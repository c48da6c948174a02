//! `--runtime`: which runtime drives the mount, among those this build includes.

use std::sync::Arc;

use hfm_driver::{Clock, Driver, Executor, Running};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// One smol event loop; effects on the `blocking` thread pool (grows with demand).
    #[cfg(feature = "smol")]
    Smol,
    /// std threads only: the driver on one thread, effects on `--max-threads` worker threads.
    #[cfg(feature = "threads")]
    Threads,
}

impl RuntimeKind {
    /// The default: smol when built in, else threads.
    pub const DEFAULT: RuntimeKind = {
        #[cfg(feature = "smol")]
        {
            RuntimeKind::Smol
        }
        #[cfg(not(feature = "smol"))]
        {
            RuntimeKind::Threads
        }
    };
}

#[cfg(not(any(feature = "smol", feature = "threads")))]
compile_error!("build hf-mount with at least one runtime feature: `smol` or `threads`");

/// Start `driver` on the chosen runtime; `workers` sizes the threads runtime's effect pool.
pub fn spawn(
    kind: RuntimeKind,
    driver: Driver,
    executor: Arc<dyn Executor>,
    clock: Clock,
    workers: usize,
) -> std::io::Result<Running> {
    match kind {
        #[cfg(feature = "smol")]
        RuntimeKind::Smol => {
            let _ = workers;
            hfm_io_smol::spawn(driver, executor, clock)
        }
        #[cfg(feature = "threads")]
        RuntimeKind::Threads => hfm_io_threads::spawn(driver, executor, clock, workers),
    }
}

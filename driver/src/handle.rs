//! How other threads reach a running driver: `Input`s pushed into the runtime's inbox through
//! a cloneable `Handle`, and `Running`, the thread that owns the driver.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use hfm_core::{
    Caller, Completion, DrainOutcome, EffectId, Errno, Filesystem, FsError, MountInfo, Reply, Request, Stats,
};

use crate::ReplySink;

/// Everything a driver takes from outside its thread.
pub enum Input {
    Request {
        caller: Caller,
        req: Request,
        sink: Box<dyn ReplySink>,
    },
    Completion {
        id: EffectId,
        completion: Completion,
    },
    /// Report the outcome of mount-time resolution on `done` (at once if it is known).
    AwaitMounted {
        done: mpsc::Sender<Result<MountInfo, FsError>>,
    },
    /// Unmounting: save everything unsaved within `limit`, then report on `done`.
    Drain {
        limit: Duration,
        done: mpsc::Sender<DrainOutcome>,
    },
    /// Send the mount's live figures on `done` (`hf-mount status`).
    Report {
        done: mpsc::Sender<Report>,
    },
    /// Stop after this input; the thread returns the filesystem.
    Shutdown,
}

/// What a running mount says about itself.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub stats: Stats,
    /// Files written but not yet committed.
    pub unsaved_files: usize,
    /// Entries in the inode table.
    pub inodes: usize,
    /// The last warning logged (a failed request, upload or fetch), if any.
    pub last_error: Option<String>,
}

/// A runtime's queue of inputs.
pub trait Inbox: Send + Sync + 'static {
    /// Queue `input`; it comes back if the runtime is gone.
    fn push(&self, input: Input) -> Option<Input>;
}

/// Cheap, cloneable handle frontends use to submit requests. Never blocks on the network.
#[derive(Clone)]
pub struct Handle {
    inbox: Arc<dyn Inbox>,
}

impl Handle {
    pub fn new(inbox: Arc<dyn Inbox>) -> Self {
        Handle { inbox }
    }

    /// Submit a request from `caller`; its reply arrives on `sink`.
    pub fn submit(&self, caller: Caller, req: Request, sink: Box<dyn ReplySink>) {
        if let Some(Input::Request { sink, .. }) = self.inbox.push(Input::Request { caller, req, sink }) {
            // The runtime is gone (unmounting): answer so the caller is not left waiting.
            sink.send(Reply::Error(FsError::new(Errno::Io, "shutting_down", "the mount is stopping")));
        }
    }

    /// Feed an effect's completion back (runtimes' executor threads).
    pub fn complete(&self, id: EffectId, completion: Completion) {
        let _ = self.inbox.push(Input::Completion { id, completion });
    }

    /// Wait until the mount's source is resolved (what it is), or resolving it failed.
    pub fn wait_mounted(&self) -> Result<MountInfo, FsError> {
        let gone = || FsError::new(Errno::Io, "shutting_down", "the mount stopped before it was ready");
        let (done, outcome) = mpsc::channel();
        if self.inbox.push(Input::AwaitMounted { done }).is_some() {
            return Err(gone());
        }
        outcome.recv().unwrap_or_else(|_| Err(gone()))
    }

    /// Save everything written but not yet committed, waiting at most `limit`.
    pub fn drain(&self, limit: Duration) -> DrainOutcome {
        let (done, outcome) = mpsc::channel();
        if self.inbox.push(Input::Drain { limit, done }).is_some() {
            return DrainOutcome::GaveUp;
        }
        outcome.recv().unwrap_or(DrainOutcome::GaveUp)
    }

    /// The mount's live figures, or `None` if the runtime is gone.
    pub fn report(&self) -> Option<Report> {
        let (done, report) = mpsc::channel();
        if self.inbox.push(Input::Report { done }).is_some() {
            return None;
        }
        report.recv().ok()
    }

    pub fn shutdown(&self) {
        let _ = self.inbox.push(Input::Shutdown);
    }
}

/// A driver running on its own thread.
pub struct Running {
    pub handle: Handle,
    thread: JoinHandle<Filesystem>,
}

impl Running {
    pub fn new(handle: Handle, thread: JoinHandle<Filesystem>) -> Self {
        Running { handle, thread }
    }

    /// Stop the runtime and return the core (for its final stats).
    pub fn stop(self) -> Option<Filesystem> {
        self.handle.shutdown();
        self.thread.join().ok()
    }
}

//! The driver: core plus what every runtime would otherwise have to copy.
//!
//! Method classes, as in core: inputs `handle` (one `Input`) and `timeout`; outputs
//! `poll_effect` (for the runtime to execute) and `next_deadline`. After every input the driver
//! drains core in this order: replies to their sinks (errors logged once, here), kernel
//! notifications to the notifier, log lines to `tracing`, the mount and drain outcomes to their
//! waiters.

use std::collections::BTreeMap;
use std::sync::mpsc;

use hfm_core::error::LogLevel;
use hfm_core::{DrainOutcome, Effect, EffectId, Filesystem, FsError, Instant, MountInfo, Reply, RequestId};

use crate::handle::{Input, Report};
use crate::{Notifier, ReplySink};

/// Whether the runtime goes on after an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

pub struct Driver {
    fs: Filesystem,
    sinks: BTreeMap<RequestId, Box<dyn ReplySink>>,
    next_request: u64,
    notifier: Option<Box<dyn Notifier>>,
    drain_waiter: Option<mpsc::Sender<DrainOutcome>>,
    mounted: Option<Result<MountInfo, FsError>>,
    mount_waiters: Vec<mpsc::Sender<Result<MountInfo, FsError>>>,
    last_error: Option<String>,
}

impl Driver {
    pub fn new(fs: Filesystem, notifier: Option<Box<dyn Notifier>>) -> Self {
        let mut driver = Driver {
            fs,
            sinks: BTreeMap::new(),
            next_request: 0,
            notifier,
            drain_waiter: None,
            mounted: None,
            mount_waiters: Vec::new(),
            last_error: None,
        };
        driver.deliver();
        driver
    }

    pub fn filesystem(&self) -> &Filesystem {
        &self.fs
    }

    pub fn into_filesystem(self) -> Filesystem {
        self.fs
    }

    // ---- inputs --------------------------------------------------------------------------

    pub fn handle(&mut self, input: Input, now: Instant) -> Flow {
        match input {
            Input::Request { caller, req, sink } => {
                self.next_request += 1;
                let id = RequestId(self.next_request);
                self.sinks.insert(id, sink);
                self.fs.handle_request(id, caller, req, now);
            }
            Input::AwaitMounted { done } => self.mount_waiters.push(done),
            Input::Completion { id, completion } => self.fs.handle_completion(id, completion, now),
            Input::Drain { limit, done } => {
                self.drain_waiter = Some(done);
                self.fs.begin_drain(now, limit);
            }
            Input::Report { done } => {
                let _ = done.send(Report {
                    stats: self.fs.stats().clone(),
                    unsaved_files: self.fs.unsaved_files(),
                    inodes: self.fs.inode_count(),
                    last_error: self.last_error.clone(),
                });
            }
            Input::Shutdown => return Flow::Stop,
        }
        self.deliver();
        Flow::Continue
    }

    pub fn timeout(&mut self, now: Instant) {
        self.fs.handle_timeout(now);
        self.deliver();
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next effect to execute; its completion comes back as `Input::Completion`.
    pub fn poll_effect(&mut self) -> Option<(EffectId, Effect)> {
        self.fs.poll_effect()
    }

    /// The outcome of mount-time resolution, once known.
    pub fn mounted(&self) -> Option<&Result<MountInfo, FsError>> {
        self.mounted.as_ref()
    }

    /// When to call `timeout` next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.fs.poll_timeout()
    }

    fn deliver(&mut self) {
        while let Some((id, reply)) = self.fs.poll_reply() {
            if let Reply::Error(err) = &reply {
                match err.level() {
                    LogLevel::Debug => tracing::debug!("{err}"),
                    LogLevel::Warn => {
                        tracing::warn!("{err}");
                        self.last_error = Some(err.to_string());
                    }
                }
            }
            match self.sinks.remove(&id) {
                Some(sink) => sink.send(reply),
                None => tracing::error!("core answered unknown request {id:?}"),
            }
        }
        while let Some(n) = self.fs.poll_notify() {
            if let Some(notifier) = &self.notifier {
                notifier.notify(n);
            }
        }
        while let Some((level, line)) = self.fs.poll_log() {
            match level {
                LogLevel::Debug => tracing::debug!("{line}"),
                LogLevel::Warn => {
                    tracing::warn!("{line}");
                    self.last_error = Some(line);
                }
            }
        }
        if let Some(outcome) = self.fs.poll_mounted() {
            match &outcome {
                Ok(info) => tracing::info!("mounted {}", info.label),
                Err(e) => tracing::debug!("mount failed: {e}"),
            }
            self.mounted = Some(outcome);
        }
        if let Some(outcome) = &self.mounted {
            for waiter in self.mount_waiters.drain(..) {
                let _ = waiter.send(outcome.clone());
            }
        }
        if let Some(outcome) = self.fs.poll_drained() {
            if let Some(waiter) = self.drain_waiter.take() {
                let _ = waiter.send(outcome);
            }
        }
    }
}

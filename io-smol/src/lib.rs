//! hfm-io-smol: the CLI's runtime. One event-loop thread owns the core `Filesystem`, feeds it
//! requests, effect completions and timeouts, runs effects on the `blocking` pool and sends
//! replies back through each request's `ReplySink`. It holds no filesystem policy.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use hfm_core::{Completion, EffectId, Filesystem, Instant, KernelNotify, Reply, Request, RequestId};
use hfm_effects::Executor;

/// Where a reply goes: a FUSE reply object, an NFS response slot, a test channel.
pub trait ReplySink: Send + 'static {
    fn send(self: Box<Self>, reply: Reply);
}

/// Receives kernel invalidations (off the request path).
pub trait Notifier: Send + 'static {
    fn notify(&self, n: KernelNotify);
}

enum Event {
    Msg(Msg),
    Timeout,
    Closed,
}

enum Msg {
    Request(Request, Box<dyn ReplySink>),
    Completion(EffectId, Completion),
    /// Upload and commit everything unsaved, then signal on the sender (true = all saved).
    Drain(Duration, std::sync::mpsc::Sender<bool>),
    Shutdown,
}

/// Cheap, cloneable handle frontends use to submit requests.
#[derive(Clone)]
pub struct Handle {
    tx: Sender<Msg>,
}

impl Handle {
    /// Submit a request; its reply arrives on `sink`. Never blocks on the network.
    pub fn submit(&self, req: Request, sink: Box<dyn ReplySink>) {
        if let Err(e) = self.tx.try_send(Msg::Request(req, sink)) {
            // The loop is gone (unmounting): answer so the kernel is not left waiting.
            if let Msg::Request(_, sink) = e.into_inner() {
                sink.send(Reply::Error(hfm_core::FsError::new(hfm_core::Errno::Io, "shutting_down", "")));
            }
        }
    }

    /// Ask the loop to stop after the current message.
    pub fn shutdown(&self) {
        let _ = self.tx.try_send(Msg::Shutdown);
    }
}

/// A running event loop.
pub struct Runtime {
    pub handle: Handle,
    thread: Option<JoinHandle<Filesystem>>,
}

impl Runtime {
    pub fn start(fs: Filesystem, executor: Arc<Executor>, notifier: Option<Box<dyn Notifier>>) -> Self {
        let (tx, rx) = async_channel::unbounded();
        let loop_tx = tx.clone();
        let thread = std::thread::Builder::new()
            .name("hfm-core".into())
            .spawn(move || smol::block_on(event_loop(fs, executor, notifier, rx, loop_tx)))
            .expect("spawning the core thread");
        Runtime { handle: Handle { tx }, thread: Some(thread) }
    }

    /// Save everything written but not yet committed, waiting at most `limit`; true when
    /// nothing is left unsaved.
    pub fn drain(&self, limit: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.handle.tx.try_send(Msg::Drain(limit, tx)).is_err() {
            return false;
        }
        rx.recv().unwrap_or(false)
    }

    /// Stop the loop and return the core (for its final stats).
    pub fn stop(mut self) -> Option<Filesystem> {
        self.handle.shutdown();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

/// Reply sinks of requests core has not answered yet, by the id core knows them under.
#[derive(Default)]
struct SinkMap {
    next: u64,
    sinks: HashMap<RequestId, Box<dyn ReplySink>>,
}

impl SinkMap {
    fn insert(&mut self, sink: Box<dyn ReplySink>) -> RequestId {
        self.next += 1;
        let id = RequestId(self.next);
        self.sinks.insert(id, sink);
        id
    }

    fn take(&mut self, id: RequestId) -> Option<Box<dyn ReplySink>> {
        self.sinks.remove(&id)
    }
}

async fn event_loop(
    mut fs: Filesystem,
    executor: Arc<Executor>,
    notifier: Option<Box<dyn Notifier>>,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
) -> Filesystem {
    let origin = std::time::Instant::now();
    let now = || Instant::from_nanos(origin.elapsed().as_nanos() as u64);
    let mut sinks = SinkMap::default();
    let mut draining: Option<(Instant, std::sync::mpsc::Sender<bool>)> = None;
    loop {
        drain(&mut fs, &mut sinks, &executor, notifier.as_deref(), &tx);
        if let Some((deadline, done)) = draining.take() {
            let saved = !fs.has_unsaved();
            if saved || now() >= deadline {
                let _ = done.send(saved);
            } else {
                draining = Some((deadline, done));
            }
        }
        let recv = async { rx.recv().await.map_or(Event::Closed, Event::Msg) };
        let wake = [fs.poll_timeout(), draining.as_ref().map(|(d, _)| *d)].into_iter().flatten().min();
        let event = match wake {
            Some(at) => {
                let wait = Duration::from_nanos(at.as_nanos().saturating_sub(now().as_nanos()));
                let timer = async {
                    smol::Timer::after(wait).await;
                    Event::Timeout
                };
                smol::future::or(recv, timer).await
            }
            None => recv.await,
        };
        match event {
            Event::Timeout => fs.handle_timeout(now()),
            Event::Msg(Msg::Request(req, sink)) => {
                let id = sinks.insert(sink);
                fs.handle_request(id, req, now());
            }
            Event::Msg(Msg::Completion(id, c)) => fs.handle_completion(id, c, now()),
            Event::Msg(Msg::Drain(limit, done)) => {
                fs.begin_drain(now());
                draining = Some((now().saturating_add(limit), done));
            }
            Event::Msg(Msg::Shutdown) | Event::Closed => break,
        }
    }
    fs
}

fn drain(
    fs: &mut Filesystem,
    sinks: &mut SinkMap,
    executor: &Arc<Executor>,
    notifier: Option<&dyn Notifier>,
    tx: &Sender<Msg>,
) {
    while let Some((id, reply)) = fs.poll_reply() {
        if let Some(sink) = sinks.take(id) {
            sink.send(reply);
        }
    }
    while let Some((id, effect)) = fs.poll_effect() {
        let executor = executor.clone();
        let tx = tx.clone();
        blocking::unblock(move || {
            let completion = executor.execute(&effect);
            let _ = tx.send_blocking(Msg::Completion(id, completion));
        })
        .detach();
    }
    while let Some(n) = fs.poll_notify() {
        if let Some(notifier) = notifier {
            notifier.notify(n);
        }
    }
    while let Some((level, line)) = fs.poll_log() {
        match level {
            hfm_core::error::LogLevel::Debug => tracing::debug!("{line}"),
            hfm_core::error::LogLevel::Warn => tracing::warn!("{line}"),
        }
    }
}

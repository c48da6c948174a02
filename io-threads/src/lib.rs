//! hfm-io-threads: the minimal runtime, std threads and channels only. One thread runs the
//! driver, waiting on its input channel until the next deadline; a fixed pool of worker threads
//! runs effects and sends each completion back through the same channel. No async runtime of
//! its own (xet-core keeps its internal one).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};

use hfm_core::{Effect, EffectId, Filesystem};
use hfm_driver::{Clock, Driver, Executor, Flow, Handle, Inbox, Input, Running};

struct Channel(Sender<Input>);

impl Inbox for Channel {
    fn push(&self, input: Input) -> Option<Input> {
        self.0.send(input).err().map(|e| e.0)
    }
}

type Jobs = Arc<Mutex<Receiver<(EffectId, Effect)>>>;

/// Run `driver` on a new thread with `workers` effect threads (at least one).
pub fn spawn(driver: Driver, executor: Arc<dyn Executor>, clock: Clock, workers: usize) -> std::io::Result<Running> {
    let (tx, rx) = mpsc::channel();
    let handle = Handle::new(Arc::new(Channel(tx)));
    let (job_tx, job_rx) = mpsc::channel::<(EffectId, Effect)>();
    let jobs: Jobs = Arc::new(Mutex::new(job_rx));
    for n in 0..workers.max(1) {
        let (jobs, executor, handle) = (jobs.clone(), executor.clone(), handle.clone());
        std::thread::Builder::new().name(format!("hfm-effect-{n}")).spawn(move || work(&jobs, &*executor, &handle))?;
    }
    let thread = std::thread::Builder::new().name("hfm-core".into()).spawn(move || run(driver, clock, rx, job_tx))?;
    Ok(Running::new(handle, thread))
}

/// A worker: take the next effect, execute it, send the completion; ends when the driver does.
fn work(jobs: &Jobs, executor: &dyn Executor, handle: &Handle) {
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((id, effect)) = job else { return };
        handle.complete(id, executor.execute(effect));
    }
}

fn run(mut driver: Driver, clock: Clock, rx: Receiver<Input>, jobs: Sender<(EffectId, Effect)>) -> Filesystem {
    loop {
        while let Some(job) = driver.poll_effect() {
            if jobs.send(job).is_err() {
                // Every worker is gone (they only end when this loop does): nothing can run.
                return driver.into_filesystem();
            }
        }
        let input = match driver.next_deadline() {
            Some(at) => rx.recv_timeout(clock.until(at)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match input {
            Ok(input) => {
                if driver.handle(input, clock.now()) == Flow::Stop {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => driver.timeout(clock.now()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Dropping the job sender lets idle workers end; busy ones end after their effect.
    driver.into_filesystem()
}

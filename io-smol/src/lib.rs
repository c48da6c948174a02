//! hfm-io-smol: the CLI's default runtime. One event-loop thread runs the driver as one async
//! task: it waits for the next input or deadline, and runs each effect on the `blocking` pool,
//! whose result comes back through the same channel. It holds no filesystem policy.

use std::sync::Arc;

use async_channel::{Receiver, Sender};
use hfm_driver::{Clock, Driver, Executor, Flow, Handle, Inbox, Input, Running};

struct Channel(Sender<Input>);

impl Inbox for Channel {
    fn push(&self, input: Input) -> Option<Input> {
        self.0.try_send(input).err().map(|e| e.into_inner())
    }
}

/// Run `driver` on a new thread; effects go to `executor`.
pub fn spawn(driver: Driver, executor: Arc<dyn Executor>, clock: Clock) -> std::io::Result<Running> {
    let (tx, rx) = async_channel::unbounded();
    let handle = Handle::new(Arc::new(Channel(tx)));
    let loop_handle = handle.clone();
    let thread = std::thread::Builder::new()
        .name("hfm-core".into())
        .spawn(move || smol::block_on(event_loop(driver, executor, clock, rx, loop_handle)))?;
    Ok(Running::new(handle, thread))
}

async fn event_loop(
    mut driver: Driver,
    executor: Arc<dyn Executor>,
    clock: Clock,
    rx: Receiver<Input>,
    handle: Handle,
) -> hfm_core::Filesystem {
    loop {
        while let Some((id, effect)) = driver.poll_effect() {
            let (executor, handle) = (executor.clone(), handle.clone());
            blocking::unblock(move || handle.complete(id, executor.execute(effect))).detach();
        }
        let input = async { rx.recv().await.ok() };
        let input = match driver.next_deadline() {
            Some(at) => {
                let timer = async {
                    smol::Timer::after(clock.until(at)).await;
                    None
                };
                smol::future::or(async { Some(input.await) }, timer).await
            }
            None => Some(input.await),
        };
        match input {
            Some(Some(input)) => {
                if driver.handle(input, clock.now()) == Flow::Stop {
                    break;
                }
            }
            Some(None) => break,
            None => driver.timeout(clock.now()),
        }
    }
    driver.into_filesystem()
}

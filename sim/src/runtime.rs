//! `Sim`: a deterministic runtime around the real driver. Instead of threads it keeps the
//! effects core handed out, and on every tick completes one of them, picked at random, maybe
//! with an injected fault; then it moves the clock (sometimes by minutes) and fires core's
//! timers. Hub reads are answered from the world as it was when they were sent (their response
//! travels back later, maybe after a commit changed the bucket). Everything comes from the
//! seed, so a failing seed replays exactly: `run_seeds` prints the command.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hfm_core::rng::Rng;
use hfm_core::{
    Caller, Completion, DrainOutcome, Effect, EffectFailure, EffectId, FailureKind, Filesystem, FsError, Instant,
    MountConfig, MountInfo, Reply, Request, StreamOp,
};
use hfm_driver::{Driver, Input, ReplySink};

use crate::trace::Trace;
use crate::world::{SimExecutor, World};

/// Faults the world injects while `Sim::faults_on` is set.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Percent of Hub calls and uploads that fail transiently (each effect at most twice, so
    /// retries get them through).
    pub transient: u64,
    /// Percent of uploads and commits that fail on every attempt (background work the mount
    /// must keep and try again later).
    pub doomed: u64,
    /// Percent of upload stream steps that fail for good.
    pub stream: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { transient: 15, doomed: 3, stream: 5 }
    }
}

/// Replies delivered and not yet collected, and the trace of everything so far.
#[derive(Default)]
struct Shared {
    replies: Vec<(u64, Reply)>,
    trace: Trace,
}

struct SimSink {
    tag: u64,
    shared: Arc<Mutex<Shared>>,
}

impl ReplySink for SimSink {
    fn send(self: Box<Self>, reply: Reply) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.trace.reply(self.tag, &reply);
        shared.replies.push((self.tag, reply));
    }
}

pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    driver: Driver,
    pub exec: SimExecutor,
    pub now: Instant,
    /// Effects handed out and not completed, with the answer of those answered at send time.
    outstanding: Vec<(EffectId, Effect, Option<Completion>)>,
    /// Transient failures injected so far, per effect (every attempt of an effect alike).
    failures: BTreeMap<u64, u32>,
    /// Effects failing every attempt: the attempts still to fail.
    doomed: BTreeMap<u64, u32>,
    shared: Arc<Mutex<Shared>>,
    next_tag: u64,
    pub faults: Faults,
    pub faults_on: bool,
    /// Largest clock step per tick, and the percent of ticks that jump minutes instead.
    pub max_step: Duration,
    pub jump_percent: u64,
    /// Print every effect handed out (debugging a seed).
    pub verbose: bool,
}

impl Sim {
    /// A mount of `cfg` over `world`, resolved (panics if resolution fails).
    pub fn new(seed: u64, cfg: MountConfig, world: World) -> Sim {
        let mut sim = Sim::start(seed, cfg, world);
        match sim.wait_mounted() {
            Ok(_) => sim,
            Err(e) => panic!("seed {seed}: mount failed: {e}"),
        }
    }

    /// A mount that has not resolved its source yet.
    pub fn start(seed: u64, mut cfg: MountConfig, world: World) -> Sim {
        cfg.seed = seed;
        let driver = Driver::new(Filesystem::new(cfg), None);
        Sim {
            seed,
            rng: Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            driver,
            exec: SimExecutor::new(world),
            now: Instant::ZERO,
            outstanding: Vec::new(),
            failures: BTreeMap::new(),
            doomed: BTreeMap::new(),
            shared: Arc::default(),
            next_tag: 0,
            faults: Faults::default(),
            faults_on: false,
            max_step: Duration::from_millis(400),
            jump_percent: 0,
            verbose: false,
        }
    }

    /// Run until mount-time resolution has an outcome.
    pub fn wait_mounted(&mut self) -> Result<MountInfo, FsError> {
        for _ in 0..100_000 {
            if let Some(outcome) = self.driver.mounted() {
                return outcome.clone();
            }
            if !self.tick() {
                self.jump_to_timer();
            }
        }
        panic!("seed {}: the mount never resolved", self.seed);
    }

    pub fn filesystem(&self) -> &Filesystem {
        self.driver.filesystem()
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.exec.world()
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The digest of every effect and reply so far.
    pub fn trace(&self) -> Trace {
        self.shared().trace.clone()
    }

    /// Send a request; its reply is collected by `replies` (or awaited by `call`).
    pub fn submit(&mut self, caller: Caller, req: Request) -> u64 {
        self.next_tag += 1;
        let tag = self.next_tag;
        let sink = Box::new(SimSink { tag, shared: self.shared.clone() });
        self.driver.handle(Input::Request { caller, req, sink }, self.now);
        self.collect();
        tag
    }

    /// Replies delivered since the last call, in delivery order.
    pub fn replies(&mut self) -> Vec<(u64, Reply)> {
        std::mem::take(&mut self.shared().replies)
    }

    /// Send a request as root and run the world until it is answered.
    pub fn call(&mut self, req: Request) -> Reply {
        self.call_as(Caller::new(0, 0), req)
    }

    pub fn call_as(&mut self, caller: Caller, req: Request) -> Reply {
        let shown = format!("{req:?}");
        let tag = self.submit(caller, req);
        self.wait_for(tag)
            .unwrap_or_else(|| panic!("seed {}: {} never answered", self.seed, &shown[..shown.len().min(300)]))
    }

    /// Run the world until request `tag` is answered (`None` if it never is).
    pub fn wait_for(&mut self, tag: u64) -> Option<Reply> {
        let mut others = Vec::new();
        for _ in 0..200_000 {
            let mut got = None;
            for (t, reply) in self.replies() {
                if t == tag {
                    got = Some(reply);
                } else {
                    others.push((t, reply));
                }
            }
            if let Some(reply) = got {
                // Replies to other requests stay for whoever collects them.
                self.shared().replies.splice(0..0, others);
                return Some(reply);
            }
            if !self.tick() {
                self.jump_to_timer();
            }
        }
        None
    }

    /// Take the effects core handed out; Hub reads are answered now, as the world is.
    fn collect(&mut self) {
        while let Some((id, effect)) = self.driver.poll_effect() {
            if self.verbose {
                let shown = match &effect {
                    Effect::HubPost { body, .. } => {
                        format!("POST {}", String::from_utf8_lossy(body).replace('\n', " | "))
                    }
                    other => format!("{other:?}").chars().take(160).collect(),
                };
                eprintln!("  effect {} {shown}", id.0);
            }
            self.shared().trace.effect(id, &effect);
            let answer = matches!(effect, Effect::HubGet { .. }).then(|| self.exec.world().execute(&effect));
            self.outstanding.push((id, effect, answer));
        }
    }

    /// Complete one effect (random pick, maybe a fault), move the clock, fire due timers; false
    /// if nothing happened.
    pub fn tick(&mut self) -> bool {
        let mut acted = false;
        if !self.outstanding.is_empty() {
            let pick = self.rng.below(self.outstanding.len() as u64) as usize;
            let (id, effect, answer) = self.outstanding.swap_remove(pick);
            let completion = self.complete(&effect, answer);
            self.driver.handle(Input::Completion { id, completion }, self.now);
            acted = true;
        }
        let step = if self.jump_percent > 0 && self.rng.below(100) < self.jump_percent {
            Duration::from_millis(self.rng.below(300_000))
        } else {
            Duration::from_millis(self.rng.below(self.max_step.as_millis() as u64 + 1))
        };
        self.now = self.now.saturating_add(step);
        if self.driver.next_deadline().is_some_and(|t| t <= self.now) {
            self.driver.timeout(self.now);
            acted = true;
        }
        self.collect();
        acted
    }

    fn complete(&mut self, effect: &Effect, answer: Option<Completion>) -> Completion {
        if self.faults_on {
            let stream_step = matches!(effect, Effect::Stream(StreamOp::Append { .. } | StreamOp::Finish { .. }));
            if stream_step && self.rng.below(100) < self.faults.stream {
                // Stream failures are final; the file must still arrive (uploaded whole).
                if let Effect::Stream(StreamOp::Append { stream, .. } | StreamOp::Finish { stream }) = effect {
                    self.exec.world().streams.remove(stream);
                }
                return Completion::Failed(EffectFailure::new(FailureKind::Permanent, None, "injected stream failure"));
            }
            let remote = matches!(
                effect,
                Effect::Upload { .. }
                    | Effect::HubPost { .. }
                    | Effect::HubGet { .. }
                    | Effect::HubRange { .. }
                    | Effect::CasRange { .. }
            );
            let key = Trace::key_of(effect);
            let background = matches!(effect, Effect::Upload { .. } | Effect::HubPost { .. });
            if background && !self.doomed.contains_key(&key) && self.rng.below(100) < self.faults.doomed {
                self.doomed.insert(key, hfm_core::retry::MAX_ATTEMPTS);
            }
            if let Some(left) = self.doomed.get_mut(&key) {
                // Every attempt of this effect fails; the same change sent again later gets a
                // fresh chance.
                *left -= 1;
                if *left == 0 {
                    self.doomed.remove(&key);
                }
                return Completion::Failed(EffectFailure::from_status(503, "injected outage"));
            }
            let fails = self.failures.entry(key).or_default();
            if remote && *fails < 2 && self.rng.below(100) < self.faults.transient {
                *fails += 1;
                let status = [500u16, 503, 429][self.rng.below(3) as usize];
                return Completion::Failed(EffectFailure::from_status(status, "injected"));
            }
        }
        answer.unwrap_or_else(|| self.exec.world().execute(effect))
    }

    /// Nothing to complete: jump the clock to core's next timer (and fire it).
    pub fn jump_to_timer(&mut self) -> bool {
        let Some(at) = self.driver.next_deadline() else { return false };
        self.now = self.now.max(at);
        self.driver.timeout(self.now);
        self.collect();
        true
    }

    /// Complete everything outstanding and let every timer fire, until nothing is left (or
    /// only the poll's timer, which never ends).
    pub fn settle(&mut self) {
        for _ in 0..200_000 {
            if self.outstanding.is_empty() && !self.filesystem().has_unsaved() {
                return;
            }
            if !self.tick() && !self.jump_to_timer() {
                return;
            }
        }
        panic!("seed {}: the mount never settled", self.seed);
    }

    /// Unmount: drain everything unsaved within `limit`.
    pub fn drain(&mut self, limit: Duration) -> DrainOutcome {
        let (done, outcome) = std::sync::mpsc::channel();
        self.driver.handle(Input::Drain { limit, done }, self.now);
        self.collect();
        for _ in 0..200_000 {
            if let Ok(o) = outcome.try_recv() {
                return o;
            }
            if !self.tick() && !self.jump_to_timer() {
                break;
            }
        }
        outcome.try_recv().unwrap_or_else(|_| panic!("seed {}: the drain never ended", self.seed))
    }
}

/// Run `run(seed)` for every seed of this test: `SIM_SEED=n` runs just that one, else seeds
/// 1..=`count` (`SIM_SEEDS` overrides the count). A failing seed prints the command replaying it.
pub fn run_seeds(test: &str, count: u64, run: impl Fn(u64) + std::panic::RefUnwindSafe) {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(count);
            (1..=n).collect()
        }
    };
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(|| run(seed)) {
            eprintln!("{test}: seed {seed} failed; replay it with: SIM_SEED={seed} cargo test --release -p hfm-sim --test {test}");
            std::panic::resume_unwind(panic);
        }
    }
}

//! hfm-sim: the one deterministic simulation of hf-mount, used by every simulation test.
//!
//! - `World` is a simulated Hub (a repo with commits, a bucket), CAS and local disk that
//!   executes core's effects; `SimExecutor` puts it behind the driver's `Executor` trait, the
//!   same trait the real effects implement; its `layer` is the overlay's local directory.
//! - `Sim` is a deterministic runtime around the real `Driver`: it completes effects in a
//!   seeded random order with random latency, injects transient and final faults, jumps the
//!   clock, and records a digest of every effect and reply (`trace`), so a seed replays
//!   exactly in any process.

mod layer;
mod routes;
mod runtime;
mod trace;
mod world;

pub use runtime::{run_seeds, Faults, Sim};
pub use trace::Trace;
pub use world::{content_hash, SimBucket, SimExecutor, SimRepo, World, ENDPOINT};

//! The bucket mount simulation, in three flavours (see `workloads/bucket.rs`). Replay one seed
//! with `SIM_SEED=<n> cargo test --release -p hfm-sim --test bucket`.

mod workloads;

use workloads::bucket::{run, Flavour};

#[test]
fn simulated_bucket_writes_lose_nothing() {
    hfm_sim::run_seeds("bucket", 120, |seed| {
        run(seed, Flavour::Streaming);
        run(seed, Flavour::Advanced);
        run(seed, Flavour::Nfs);
    });
}

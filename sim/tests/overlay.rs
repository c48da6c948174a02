//! The overlay mount simulation (see `workloads/overlay.rs`). Replay one seed with
//! `SIM_SEED=<n> cargo test --release -p hfm-sim --test overlay`.

mod workloads;

#[test]
fn simulated_overlay_changes_only_the_layer() {
    hfm_sim::run_seeds("overlay", 60, |seed| {
        workloads::overlay::run(seed);
    });
}

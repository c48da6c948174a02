//! The repo mount simulation (see `workloads/repo.rs`). Replay one seed with
//! `SIM_SEED=<n> cargo test --release -p hfm-sim --test repo`.

mod workloads;

#[test]
fn simulated_repo_mount_answers_everything_correctly() {
    hfm_sim::run_seeds("repo", 150, |seed| {
        workloads::repo::run(seed);
    });
}

//! The same seed gives the same trace (every effect and reply, in order) in any process: each
//! seed runs twice here and once more in a child process, and all three digests must agree.
//! Nothing that reaches an output may depend on a randomly seeded hash map or on time.

mod workloads;

use std::process::Command;

use workloads::bucket::Flavour;

const SEEDS: u64 = 12;

fn digests(seed: u64) -> [u64; 4] {
    [
        workloads::repo::run(seed),
        workloads::bucket::run(seed, Flavour::Streaming),
        workloads::bucket::run(seed, Flavour::Advanced),
        workloads::bucket::run(seed, Flavour::Nfs),
    ]
}

/// Run by the parent test in a child process: prints each seed's digests.
#[test]
#[ignore = "run by same_seed_same_trace_in_two_processes"]
fn child_prints_traces() {
    for seed in 1..=SEEDS {
        println!("trace {seed} {:?}", digests(seed));
    }
}

#[test]
fn same_seed_same_trace_in_two_processes() {
    let here: Vec<String> = (1..=SEEDS)
        .map(|seed| {
            let (a, b) = (digests(seed), digests(seed));
            assert_eq!(a, b, "seed {seed}: two runs in one process differ");
            format!("trace {seed} {a:?}")
        })
        .collect();
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args(["--exact", "child_prints_traces", "--ignored", "--nocapture", "--test-threads", "1"])
        .env_remove("SIM_SEED")
        .output()
        .expect("running the child");
    assert!(out.status.success(), "the child failed: {}", String::from_utf8_lossy(&out.stderr));
    let there: Vec<String> =
        // libtest may print its own words before the first line on the same line.
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.find("trace ").map(|i| l[i..].to_string())).collect();
    assert_eq!(here, there, "a seed's trace differs between processes");
}

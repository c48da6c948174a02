//! `hf-mount-fuse`: parse flags, resolve the repo and revision against the Hub (any error here
//! is one line and a non-zero exit, before anything is mounted), then mount over FUSE and serve
//! until SIGINT/SIGTERM or an external unmount.

mod args;
mod runtime;
mod setup;

use clap::Parser;

fn main() {
    // Block the termination signals before any thread starts, so one thread can sigwait them.
    let signals = setup::block_termination_signals();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,fuser::mnt=error".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let cli = args::Cli::parse();
    if let Err(e) = setup::run(cli, signals) {
        eprintln!("hf-mount-fuse: {e}");
        std::process::exit(1);
    }
}

//! `hf-mount-fuse`: parse flags, resolve the repo and revision against the Hub (any error here
//! is one line and a non-zero exit, before anything is mounted), then mount over FUSE and serve
//! until SIGINT/SIGTERM or an external unmount.

mod args;
mod logging;
mod recovery;
mod runtime;
mod setup;

use clap::Parser;

fn main() {
    // Block the termination signals before any thread starts, so one thread can sigwait them.
    let signals = setup::block_termination_signals();
    logging::init();
    let cli = args::Cli::parse();
    if let Err(e) = setup::run(cli, signals) {
        logging::fatal(&e.to_string());
        std::process::exit(1);
    }
}

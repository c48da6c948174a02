//! hf-mount: the command-line programs. `hf-mount-fuse` and `hf-mount-nfs` parse the same
//! flags (plus their own), resolve the source against the Hub (any error there is one line and
//! a non-zero exit, before anything is mounted), serve the mount until SIGINT/SIGTERM or an
//! external unmount, then save what is unsaved. `hf-mount` (`launcher`) runs either as a
//! daemon.

mod args;
mod control;
mod daemon;
mod fuse_main;
mod launcher;
mod logging;
mod mount_helper;
mod nfs_main;
mod recovery;
mod runtime;
mod setup;

use args::{Cli, FuseOpts, NfsOpts};

fn main_of<F: clap::Args>(
    frontend: setup::Frontend,
    about: &'static str,
    run: fn(Cli<F>, libc::sigset_t) -> anyhow::Result<()>,
) {
    // Huge pages for the heap (see hfm-alloc): the program re-executes itself once, first.
    hfm_alloc::reexec_with_huge_pages();
    // Block the termination signals before any thread starts, so one thread can sigwait them.
    let signals = setup::block_termination_signals();
    daemon::adopt_from_env();
    logging::init();
    logging::raise_open_files_limit();
    let program = frontend.program();
    let cli = Cli::<F>::parse_as(program, about, std::env::args_os()).unwrap_or_else(|e| e.exit());
    let outcome = run(cli, signals);
    daemon::cleanup();
    if let Err(e) = outcome {
        logging::fatal(program, &e.to_string());
        std::process::exit(1);
    }
}

/// `hf-mount start | stop | status`; run as `mount.hf-mount` (a link to it), the mount helper.
pub fn launcher_main() {
    launcher::main();
}

pub fn fuse_main() {
    let about = "Mount a Hugging Face Hub repo (read-only) or bucket (read-write) as a local folder (FUSE)";
    main_of::<FuseOpts>(setup::Frontend::Fuse, about, fuse_main::run);
}

pub fn nfs_main() {
    let about =
        "Mount a Hugging Face Hub repo (read-only) or bucket (read-write) as a local folder (NFSv3 on loopback)";
    main_of::<NfsOpts>(setup::Frontend::Nfs, about, nfs_main::run);
}

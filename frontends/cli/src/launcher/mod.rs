//! `hf-mount`: the launcher. `start` runs `hf-mount-nfs` (or, with `--fuse`, `hf-mount-fuse`)
//! as a daemon and returns once its mount is live; `stop` ends one; `status` lists them with
//! their live figures. State lives under `~/.hf-mount` (`state`). Called as
//! `hf-mount bucket:NS/NAME DIR -o OPTIONS`, or through a link named `mount.hf-mount`, it is
//! the mount helper (`mount_helper`).

mod start;
mod state;
mod status;
mod stop;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use start::run as start;
pub use state::PidRecord;

#[derive(Parser, Debug)]
#[command(
    name = "hf-mount",
    version,
    about = "Mount Hugging Face Hub repos and buckets as local folders, in the background"
)]
struct Launcher {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a mount as a background daemon; returns once it is mounted.
    Start {
        /// Use the FUSE backend (default: NFS).
        #[arg(long)]
        fuse: bool,
        /// The backend's arguments: `[FLAGS] repo|bucket ID MOUNTPOINT [FLAGS]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<OsString>,
    },
    /// Unmount a daemon's mount, let it save what is unsaved, and stop it.
    Stop {
        /// The mount point given to `start`.
        mountpoint: PathBuf,
    },
    /// List running daemons with their live figures.
    Status {
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
}

pub fn main() {
    crate::logging::init();
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let argv: Vec<String> = args.collect();
    // `mount.hf-mount SPEC DIR -o ...` (mount -t hf-mount, through a link named so), or
    // `hf-mount SPEC DIR -o ...` (mount.fuse3 running an fstab line of type fuse).
    let as_helper = std::path::Path::new(&program).file_name().is_some_and(|n| n == "mount.hf-mount");
    let outcome = if as_helper || argv.first().is_some_and(|a| crate::mount_helper::is_spec(a)) {
        crate::mount_helper::run(&argv)
    } else {
        match Launcher::parse().cmd {
            Command::Start { fuse, args } => start::run(fuse, args),
            Command::Stop { mountpoint } => stop::run(&mountpoint),
            Command::Status { json } => status::run(json),
        }
    };
    if let Err(e) = outcome {
        crate::logging::fatal("hf-mount", &format!("{e:#}"));
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_passes_everything_after_it_to_the_backend() {
        let l =
            Launcher::try_parse_from(["hf-mount", "start", "--fuse", "--read-only", "bucket", "a/b", "/m"]).unwrap();
        let Command::Start { fuse, args } = l.cmd else { panic!("not start") };
        assert!(fuse);
        assert_eq!(args, ["--read-only", "bucket", "a/b", "/m"].map(OsString::from));
        assert!(Launcher::try_parse_from(["hf-mount", "start"]).is_err());
        assert!(Launcher::try_parse_from(["hf-mount", "stop"]).is_err());
        assert!(Launcher::try_parse_from(["hf-mount", "status", "--json"]).is_ok());
    }
}

//! The hf-mount command line: the same flags as the incumbent, accepted before or after the
//! subcommand (`hf-mount-fuse --hub-endpoint URL repo ID MNT --revision R`). Both backends
//! take `MountOpts`; each adds its own (`FuseOpts`, `NfsOpts`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::runtime::RuntimeKind;

#[derive(Parser, Debug)]
#[command(version)]
pub struct Cli<F: Args> {
    #[command(flatten)]
    pub opts: MountOpts,
    #[command(flatten)]
    pub frontend: F,
    #[command(subcommand)]
    pub cmd: Cmd,
}

impl<F: Args> Cli<F> {
    /// Parse `args` as the program `name`, described by `about`.
    pub fn parse_as<I, T>(name: &'static str, about: &'static str, args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().name(name).bin_name(name).about(about).try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

/// Flags only `hf-mount-fuse` takes.
#[derive(Args, Debug)]
pub struct FuseOpts {
    /// Bypass the kernel's page cache: every read reaches the mount (always current, no
    /// double caching); mmap still works on kernels that allow it (Linux 6.6+).
    #[arg(long, global = true)]
    pub direct_io: bool,
}

/// Flags only `hf-mount-nfs` takes.
#[derive(Args, Debug)]
pub struct NfsOpts {
    /// Address the NFS server listens on (port 0: any free port).
    #[arg(long, global = true, default_value = "127.0.0.1:0")]
    pub nfs_listen: SocketAddr,
    /// Serve only: print `nfs=ADDR:PORT export=/` once connections are accepted, and run until
    /// SIGTERM (mount it by hand, or test with userspace clients).
    #[arg(long, global = true)]
    pub no_kernel_mount: bool,
    /// Serve clients connecting from unprivileged ports (by default only privileged source
    /// ports are served, as the kernel client uses, so other local users cannot forge an
    /// AUTH_SYS identity).
    #[arg(long, global = true)]
    pub nfs_insecure_port: bool,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Mount a model, dataset or space repo read-only.
    Repo {
        /// `NS/NAME`, `datasets/NS/NAME` or `spaces/NS/NAME`, optionally followed by `/SUBFOLDER`.
        id: String,
        /// An existing, empty directory.
        mountpoint: PathBuf,
    },
    /// Mount a bucket, read-write unless `--read-only`.
    Bucket {
        /// `NS/NAME`, optionally followed by `/PREFIX` (a folder of the bucket).
        id: String,
        /// An existing, empty directory.
        mountpoint: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct MountOpts {
    /// Branch, tag or commit to mount; resolved to a commit once, at mount time.
    #[arg(long, global = true, default_value = "main")]
    pub revision: String,
    /// Hugging Face token (else `HF_TOKEN`, else the standard token file).
    #[arg(long, global = true)]
    pub hf_token: Option<String>,
    /// Read the Hugging Face token from this file, and again whenever it changes (rotated
    /// credentials apply without a remount).
    #[arg(long, global = true, conflicts_with = "hf_token")]
    pub token_file: Option<PathBuf>,
    /// Hub URL.
    #[arg(long, global = true, env = "HF_ENDPOINT", default_value = "https://huggingface.co")]
    pub hub_endpoint: String,
    /// Directory of the on-disk chunk cache (default `$XDG_CACHE_HOME/hf-mount` or `~/.cache/hf-mount`).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the chunk cache in bytes (suffixes K, M, G accepted); the local copies of
    /// files read whole (`copies/` in the cache dir) have a limit of the same size of their own.
    #[arg(long, global = true, default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// Do not use the on-disk chunk cache.
    #[arg(long, global = true)]
    pub no_disk_cache: bool,
    /// Keep no local copies of files read whole (read-only FUSE mounts run by root keep them
    /// by default and open them through the kernel's FUSE passthrough).
    #[arg(long, global = true)]
    pub no_local_copies: bool,
    /// Writable buckets: most bytes the staging files may hold together (suffixes K, M, G, T;
    /// default: as much as the disk takes). Writes that would pass it get ENOSPC; files already
    /// in the bucket free their share once closed.
    #[arg(long, global = true, value_parser = parse_size)]
    pub max_staging_size: Option<u64>,
    /// How long the kernel may cache names and attributes, in milliseconds.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub metadata_ttl_ms: u64,
    /// Owner uid of every file (default: the mounting user).
    #[arg(long, global = true)]
    pub uid: Option<u32>,
    /// Owner gid of every file (default: the mounting user's group).
    #[arg(long, global = true)]
    pub gid: Option<u32>,
    /// Only the mounting user may access the mount (no `allow_other`).
    #[arg(long, global = true)]
    pub fuse_owner_only: bool,
    /// Let other local users read a private repo or bucket through the mount (by default a
    /// private source is mounted for its owner only; a public one is open to every user).
    #[arg(long, global = true, conflicts_with = "fuse_owner_only")]
    pub allow_other: bool,
    /// Mount over a directory and keep its own files as a writable local layer over the
    /// remote, which is never written: local files win on a name clash; creating, writing,
    /// renaming, deleting and chmod happen in the layer; changing a remote file is refused.
    #[arg(long, global = true)]
    pub overlay: bool,
    /// FUSE worker threads, and the effect threads of `--runtime threads`.
    #[arg(long, global = true, default_value_t = 4)]
    pub max_threads: usize,
    /// The runtime that drives the mount (see README).
    #[arg(long, global = true, value_enum, env = "HF_MOUNT_RUNTIME", default_value_t = RuntimeKind::DEFAULT)]
    pub runtime: RuntimeKind,
    /// Re-check metadata with the Hub on every access (kernel TTL 0; slow, always current).
    #[arg(long, global = true)]
    pub metadata_ttl_minimal: bool,
    /// Seconds between probes of a bucket for remote changes (0 disables the poll).
    #[arg(long, global = true, default_value_t = 30)]
    pub poll_interval_secs: u64,
    /// Most directories re-listed at once after a poll saw a remote change.
    #[arg(long, global = true, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub poll_listing_concurrency: u64,
    /// Keep the inode table near this many entries (0: no limit): idle directory listings
    /// are dropped, least recently used first, and listed again when next used.
    #[arg(long, global = true, default_value_t = 0)]
    pub inode_soft_limit: usize,
    /// How often the inode table is checked against --inode-soft-limit.
    #[arg(long, global = true, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..))]
    pub lru_sweep_interval_ms: u64,
    /// Mount a bucket read-only.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Bucket writes through a local staging file: random writes, overwrite in place,
    /// truncate, read-your-writes; uploads debounced and batched.
    #[arg(long, global = true)]
    pub advanced_writes: bool,
    /// Advanced writes: upload a closed file this long after its last write or close.
    #[arg(long, global = true, default_value_t = 2000)]
    pub flush_debounce_ms: u64,
    /// Advanced writes: upload a dirty file at the latest this long after its first change.
    #[arg(long, global = true, default_value_t = 30_000)]
    pub flush_max_batch_window_ms: u64,
    /// A read whose bytes have not arrived from the Hub within this many milliseconds fails
    /// with EIO (0: wait as long as it takes).
    #[arg(long, global = true, default_value_t = 30_000)]
    pub read_fetch_timeout_ms: u64,
    /// Show and create OS metadata files (.DS_Store, ._*, Thumbs.db, desktop.ini, ...) on a
    /// bucket like any file (by default creating one is EACCES and listings hide them).
    #[arg(long, global = true)]
    pub no_filter_os_files: bool,
    /// On unmount, wait at most this long for unsaved writes to reach the bucket.
    #[arg(long, global = true, default_value_t = 120)]
    pub drain_timeout_secs: u64,
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let m = match s[i..].to_ascii_uppercase().trim_end_matches('B').trim_end_matches('I') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1u64 << 40,
                other => return Err(format!("unknown size unit {other:?} in {s:?}")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("invalid size {s:?}"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn flags_before_and_after_the_subcommand() {
        let parse = |args: &[&str]| Cli::<FuseOpts>::parse_as("hf-mount-fuse", "", args.iter().copied());
        let a = parse(&[
            "hf-mount-fuse",
            "--hub-endpoint",
            "http://h",
            "--hf-token",
            "t",
            "repo",
            "a/b",
            "/mnt",
            "--revision",
            "v1",
        ])
        .unwrap();
        assert_eq!(a.opts.hub_endpoint, "http://h");
        assert_eq!(a.opts.revision, "v1");
        assert_eq!(a.opts.hf_token.as_deref(), Some("t"));
        assert!(parse(&["hf-mount-fuse", "repo"]).is_err());
        assert!(parse(&["hf-mount-fuse", "--bogus", "repo", "a/b", "/m"]).is_err());
        assert!(parse(&["hf-mount-fuse", "--no-kernel-mount", "repo", "a/b", "/m"]).is_err());
        let nfs = |args: &[&str]| Cli::<NfsOpts>::parse_as("hf-mount-nfs", "", args.iter().copied());
        let n = nfs(&["hf-mount-nfs", "bucket", "a/b", "/m", "--no-kernel-mount", "--nfs-listen", "127.0.0.1:2049"])
            .unwrap();
        assert!(n.frontend.no_kernel_mount);
        assert_eq!(n.frontend.nfs_listen.port(), 2049);
        assert!(nfs(&["hf-mount-nfs", "--nfs-listen", "nowhere", "bucket", "a/b", "/m"]).is_err());
    }
}

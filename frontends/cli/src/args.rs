//! The hf-mount command line: the same flags as the incumbent, accepted before or after the
//! subcommand (`hf-mount-fuse --hub-endpoint URL repo ID MNT --revision R`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::runtime::RuntimeKind;

#[derive(Parser, Debug)]
#[command(
    name = "hf-mount-fuse",
    version,
    about = "Mount a Hugging Face Hub repo (read-only) or bucket (read-write) as a local folder (FUSE)"
)]
pub struct Cli {
    #[command(flatten)]
    pub opts: MountOpts,
    #[command(subcommand)]
    pub cmd: Cmd,
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
    /// Hub URL.
    #[arg(long, global = true, env = "HF_ENDPOINT", default_value = "https://huggingface.co")]
    pub hub_endpoint: String,
    /// Directory of the on-disk chunk cache (default `$XDG_CACHE_HOME/hf-mount` or `~/.cache/hf-mount`).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the chunk cache in bytes (suffixes K, M, G accepted).
    #[arg(long, global = true, default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// Do not use the on-disk chunk cache.
    #[arg(long, global = true)]
    pub no_disk_cache: bool,
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
    /// Mount over a non-empty directory (its files are hidden while mounted).
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
        let a = Cli::try_parse_from([
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
        assert!(Cli::try_parse_from(["hf-mount-fuse", "repo"]).is_err());
        assert!(Cli::try_parse_from(["hf-mount-fuse", "--bogus", "repo", "a/b", "/m"]).is_err());
    }
}

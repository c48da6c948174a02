//! Mount-time work both frontends share: token discovery, mountpoint checks, the mount's
//! configuration from the flags, wiring core, effects and runtime together, waiting for core
//! to resolve the source (any error there is one line, before anything is mounted), and, once
//! the frontend is done, the bounded drain of unsaved writes and the final report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hfm_core::config::{AccessPolicy, CopyPolicy, ReadPolicy, Source, WriteMode, WritePolicy};
use hfm_core::hub::{self, HubUrls};
use hfm_core::{Filesystem, MountConfig, MountInfo};
use hfm_driver::{Clock, DrainOutcome, Driver, Notifier, Running};
use hfm_effects::{CacheSettings, Credential, Executor, HubClient, Layer};

use crate::args::{Cmd, MountOpts};
use crate::{control, daemon, recovery};

pub fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-mask calls on a local, zero-initialised sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid signal set blocked in every thread (inherited from main).
    unsafe { libc::sigwait(&set, &mut sig) };
    sig
}

/// `$HOME`, else the user's home directory from the password database (a mount started by
/// `mount(8)` from `/etc/fstab` runs without `HOME`).
pub fn home_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: getpwuid_r writes into `pwd` and `buf` (of the length passed) only; `found` is
    // null or points to `pwd`, whose strings point into `buf`, which outlives their use here.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc != 0 || found.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pwd.pw_dir);
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
}

/// `--hf-token`, else `HF_TOKEN`, else `$HF_TOKEN_PATH`, `$HF_HOME/token` or
/// `~/.cache/huggingface/token`.
fn find_token(flag: Option<String>) -> Option<String> {
    let non_empty = |s: String| {
        let t = s.trim().to_string();
        (!t.is_empty()).then_some(t)
    };
    if let Some(t) = flag.and_then(non_empty) {
        return Some(t);
    }
    if let Some(t) = std::env::var("HF_TOKEN").ok().and_then(non_empty) {
        return Some(t);
    }
    let path = std::env::var_os("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
        let home = std::env::var_os("HF_HOME").map(PathBuf::from).or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| home_dir().map(|h| h.join(".cache")))?;
            Some(base.join("huggingface"))
        })?;
        Some(home.join("token"))
    })?;
    std::fs::read_to_string(path).ok().and_then(non_empty)
}

/// `--token-file` (watched), else the token `find_token` finds, else none.
fn credential(o: &MountOpts) -> Result<Credential> {
    match &o.token_file {
        Some(path) => Credential::file(path).map_err(|e| anyhow!(e)),
        None => Ok(find_token(o.hf_token.clone()).map_or(Credential::Anonymous, Credential::fixed)),
    }
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| home_dir().map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("hf-mount")
}

/// The mountpoint must be an empty directory that is not itself mounted on (a second mount
/// would be stacked on the first and hide it); `overlay` accepts a non-empty one.
fn check_mountpoint(p: &Path, overlay: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let shown = p.display();
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("mountpoint {shown} does not exist (create it first: mkdir -p {shown})")
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            bail!("mountpoint {shown}: a mount whose process ended is still there; unmount it first (fusermount3 -u {shown})")
        }
        Err(e) => bail!("mountpoint {shown}: {e}"),
    };
    if !meta.is_dir() {
        bail!("mountpoint {shown} is not a directory");
    }
    let parent = p.canonicalize().ok().and_then(|c| c.parent().map(Path::to_path_buf));
    let parent_dev = parent.and_then(|d| std::fs::metadata(d).ok()).map(|m| m.dev());
    if parent_dev.is_some_and(|dev| dev != meta.dev()) {
        bail!("{shown} is already a mount point; unmount it first (a second mount would hide the first)");
    }
    let non_empty = std::fs::read_dir(p).with_context(|| format!("mountpoint {shown}"))?.next().is_some();
    if non_empty && !overlay {
        bail!("mountpoint {shown} is not empty: mounting would hide its files (--overlay mounts over them anyway)");
    }
    Ok(())
}

/// Different on every start (retry jitter seed, NFS write verifier).
fn start_nonce() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

/// The mount's configuration from the command line; what it resolves to is core's to find out.
fn mount_config(frontend: Frontend, o: &MountOpts, cmd: &Cmd, has_token: bool, staging: &Path) -> Result<MountConfig> {
    let urls = HubUrls::new(&o.hub_endpoint);
    let (source, subfolder) = match cmd {
        Cmd::Repo { id, .. } => {
            let (repo, subfolder) = hub::parse_repo_arg(id).map_err(|e| anyhow!(e))?;
            (Source::Repo { repo, revision: o.revision.clone() }, subfolder)
        }
        Cmd::Bucket { id, .. } => {
            let (id, subfolder) = hub::parse_bucket_arg(id).map_err(|e| anyhow!(e))?;
            (Source::Bucket { id }, subfolder)
        }
    };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut cfg = MountConfig::new(urls, source);
    cfg.subfolder = subfolder;
    cfg.has_token = has_token;
    cfg.uid = o.uid.unwrap_or(uid);
    cfg.gid = o.gid.unwrap_or(gid);
    cfg.access = match frontend {
        // The kernel checks permissions (`default_permissions`) and vouches for who creates.
        Frontend::Fuse => AccessPolicy { check: false, owner_from_caller: true },
        // An NFS caller's identity is whatever its AUTH_SYS credential says: core checks each
        // request against the mode bits, and new files belong to the mount's owner.
        Frontend::Nfs => AccessPolicy { check: true, owner_from_caller: false },
    };
    cfg.metadata_ttl = if o.metadata_ttl_minimal { Duration::ZERO } else { Duration::from_millis(o.metadata_ttl_ms) };
    cfg.policy = ReadPolicy::default();
    cfg.timeouts.read_fetch = (o.read_fetch_timeout_ms > 0).then(|| Duration::from_millis(o.read_fetch_timeout_ms));
    cfg.poll_interval = (o.poll_interval_secs > 0).then(|| Duration::from_secs(o.poll_interval_secs));
    cfg.filter_os_files = !o.no_filter_os_files;
    cfg.poll_listing_concurrency = o.poll_listing_concurrency as usize;
    cfg.inode_soft_limit = (o.inode_soft_limit > 0).then_some(o.inode_soft_limit);
    cfg.lru_sweep_interval = Duration::from_millis(o.lru_sweep_interval_ms);
    // The kernel's FUSE client forgets what it was given; NFS clients keep handles instead.
    cfg.kernel_forgets = frontend == Frontend::Fuse;
    cfg.overlay = o.overlay;
    cfg.seed = start_nonce();
    cfg.verifier = start_nonce().rotate_left(17);
    cfg.writes = WritePolicy {
        // NFS clients write out of order: an NFS mount always stages.
        // With --overlay the remote is never written: the local layer takes every change.
        mode: match (
            matches!(cmd, Cmd::Bucket { .. }) && !o.read_only && !o.overlay,
            o.advanced_writes || frontend == Frontend::Nfs,
        ) {
            (false, _) => WriteMode::ReadOnly,
            (true, false) => WriteMode::Streaming,
            (true, true) => WriteMode::Advanced,
        },
        flush_debounce: Duration::from_millis(o.flush_debounce_ms),
        flush_max_batch_window: Duration::from_millis(o.flush_max_batch_window_ms),
        staging_dir: format!("{}/", staging.display()),
        max_staging: o.max_staging_size,
        ..WritePolicy::default()
    };
    Ok(cfg)
}

/// Files smaller than this are never copied: the FUSE page cache serves them as well.
const COPY_MIN_SIZE: u64 = 8 << 20;

/// Where local copies live: complete copies in `<cache>/copies/`, named by their content and
/// shared by the mounts of the cache dir, and this mount's partial ones in a fresh directory of
/// its own (`<cache>/copies/<pid>/`), after removing those of mounts that ended without
/// removing theirs. `None` (no copies) unless run by root (registering a backing file with the
/// kernel needs `CAP_SYS_ADMIN`) on Linux 6.9 or later (FUSE passthrough); the FUSE adapter
/// also says so if the kernel still refuses it at `init`.
fn copies_dirs(cache_dir: &Path) -> Option<(PathBuf, PathBuf)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || kernel_release().is_none_or(|v| v < (6, 9)) {
        return None;
    }
    let root = cache_dir.join("copies");
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let pid = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
        // SAFETY: kill with signal 0 only checks that the process exists.
        if pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } != 0) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let partial = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&partial);
    match std::fs::create_dir_all(&partial) {
        Ok(()) => Some((root, partial)),
        Err(e) => {
            tracing::warn!("no local copies ({}: {e}); files read through the mount", partial.display());
            None
        }
    }
}

/// The complete copies in `dir` (name, size), least recently used first. A file with a copy's
/// name but another size is removed (core would not use it).
fn stored_copies(dir: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let (Ok(meta), Some(name)) = (entry.metadata(), entry.file_name().to_str().map(str::to_string)) else {
            continue;
        };
        let Some(size) = hfm_core::fs::copy_name_size(&name).filter(|_| meta.is_file()) else { continue };
        if meta.len() != size {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        let used = |t: std::io::Result<std::time::SystemTime>| t.unwrap_or(std::time::UNIX_EPOCH);
        found.push((used(meta.accessed()).max(used(meta.modified())), name, size));
    }
    found.sort();
    found.into_iter().map(|(_, name, size)| (name, size)).collect()
}

/// The running kernel's major and minor version.
fn kernel_release() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Which frontend serves the mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    Fuse,
    Nfs,
}

impl Frontend {
    pub fn program(self) -> &'static str {
        match self {
            Frontend::Fuse => "hf-mount-fuse",
            Frontend::Nfs => "hf-mount-nfs",
        }
    }
}

/// A mount whose source is resolved and whose runtime runs, before any frontend serves it.
pub struct Started {
    pub frontend: Frontend,
    pub running: Running,
    pub info: MountInfo,
    pub executor: Arc<Executor>,
    pub mountpoint: PathBuf,
    pub is_bucket: bool,
    /// `--overlay`: the mount point's own files are the writable local layer.
    pub overlay: bool,
    /// Seed of the source's stable identities (NFS file handles).
    pub identity_seed: u64,
    pub started: std::time::Instant,
    staging: PathBuf,
    /// This mount's partial local copies (`MountConfig::copies`), removed when it ends.
    copies: Option<PathBuf>,
    instance: Option<recovery::Instance>,
    journal_root: Option<PathBuf>,
    bucket_id: Option<String>,
    hub_endpoint: String,
    drain_limit: Duration,
}

/// Resolve the source and start the runtime; `notifier` receives core's kernel invalidations.
/// `passthrough`: the frontend can open local copies through the kernel (FUSE without
/// `--direct-io`); copies are kept if the mount is read-only and run by root.
pub fn start(
    frontend: Frontend,
    o: &MountOpts,
    cmd: &Cmd,
    notifier: Option<Box<dyn Notifier>>,
    passthrough: bool,
) -> Result<Started> {
    let mountpoint = match cmd {
        Cmd::Repo { mountpoint, .. } | Cmd::Bucket { mountpoint, .. } => mountpoint.clone(),
    };
    if o.overlay && o.read_only {
        bail!("--overlay and --read-only contradict each other: the overlay's local layer is written (drop one)");
    }
    check_mountpoint(&mountpoint, o.overlay)?;
    // Taken before mounting: the mount will hide the directory it writes to.
    let layer = o.overlay.then(|| Layer::open(&mountpoint)).transpose().map_err(|e| anyhow!(e))?;
    let token = credential(o)?;
    let cache_dir = o.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let is_bucket = matches!(cmd, Cmd::Bucket { .. });
    // A writable bucket mount keeps its staging files and journal in a directory of its own,
    // which the next mount of the bucket recovers if this one ends without saving everything.
    let bucket_id = match cmd {
        Cmd::Bucket { id, .. } if !o.read_only && !o.overlay => {
            Some(hub::parse_bucket_arg(id).map_err(|e| anyhow!(e))?.0)
        }
        _ => None,
    };
    let journal_root = bucket_id.as_deref().map(|id| recovery::journal_root(&cache_dir, id));
    let instance = journal_root.as_deref().map(|root| recovery::Instance::claim(root, start_nonce())).transpose()?;
    let staging = instance.as_ref().map_or_else(|| cache_dir.join("staging"), |i| i.dir.clone());
    let mut cfg = mount_config(frontend, o, cmd, token.current().is_some(), &staging)?;
    let keep_copies =
        passthrough && cfg.writes.mode == WriteMode::ReadOnly && !o.overlay && !o.no_disk_cache && !o.no_local_copies;
    let copies = keep_copies.then(|| copies_dirs(&cache_dir)).flatten();
    cfg.copies = copies.as_ref().map(|(dir, partial)| CopyPolicy {
        dir: format!("{}/", dir.display()),
        partial_dir: format!("{}/", partial.display()),
        min_size: COPY_MIN_SIZE,
        max_bytes: o.cache_size,
        stored: stored_copies(dir),
    });
    let copies = copies.map(|(_, partial)| partial);
    // Subfolders of one source are different exports: their handles must not mix.
    let identity_seed = hfm_core::identity::mount_seed(&format!("{}/{}", cfg.source.identity_key(), cfg.subfolder));

    let started = std::time::Instant::now();
    let hub = HubClient::new(token, if frontend == Frontend::Fuse { "fuse" } else { "nfs" });
    let cache = CacheSettings {
        dir: (!o.no_disk_cache).then(|| cache_dir.clone()),
        size_bytes: o.cache_size,
        xet_dir: cache_dir.join("xet"),
    };
    let executor = Executor::new(hub, cache).map_err(|e| anyhow!(e))?;
    let executor = Arc::new(match layer {
        Some(layer) => executor.with_layer(layer),
        None => executor,
    });
    let clock = Clock::start();
    cfg.wall_ms_at_zero = clock.wall_ms_at_zero();
    let driver = Driver::new(Filesystem::new(cfg), notifier);
    let running = crate::runtime::spawn(o.runtime, driver, executor.clone(), clock, o.max_threads)
        .context("starting the runtime")?;
    // Core resolves the source (with its retry policy) before anything is mounted.
    let info = match running.handle.wait_mounted() {
        Ok(info) => info,
        Err(e) => {
            running.stop();
            bail!("{}", e.detail);
        }
    };
    Ok(Started {
        frontend,
        running,
        info,
        executor,
        mountpoint,
        is_bucket,
        overlay: o.overlay,
        identity_seed,
        started,
        staging,
        copies,
        instance,
        journal_root,
        bucket_id,
        hub_endpoint: o.hub_endpoint.clone(),
        drain_limit: Duration::from_secs(o.drain_timeout_secs),
    })
}

impl Started {
    /// "(read-write)", "(private: ...)" and the like, for the mount line.
    pub fn mode_note(&self, owner_only: bool) -> String {
        let mode = match (self.is_bucket, self.info.writable) {
            _ if self.overlay => " (overlay: local files read-write, the remote read-only)",
            (false, _) => "",
            (true, false) => " (read-only)",
            (true, true) => " (read-write)",
        };
        match (self.info.private, owner_only) {
            (true, true) => format!("{mode} (private: its owner only; --allow-other shares it)"),
            _ => mode.to_string(),
        }
    }

    /// Recover what earlier mounts of this bucket left unsaved, in the background.
    pub fn start_recovery(&self) -> Result<()> {
        if let (true, Some(root), Some(bucket)) =
            (self.info.writable, self.journal_root.clone(), self.bucket_id.clone())
        {
            let recovery =
                recovery::Recovery { executor: self.executor.clone(), urls: HubUrls::new(&self.hub_endpoint), bucket };
            let own = self.staging.clone();
            std::thread::Builder::new().name("recovery".into()).spawn(move || recovery.run(&root, &own))?;
        }
        Ok(())
    }

    /// The mount is live: serve the control socket if a launcher asked for one, and tell it.
    pub fn ready(&self) -> Result<()> {
        if let Some(path) = daemon::control_socket() {
            let live = control::Live {
                handle: self.running.handle.clone(),
                executor: self.executor.clone(),
                source: self.info.label.clone(),
                backend: if self.frontend == Frontend::Fuse { "fuse" } else { "nfs" }.into(),
                writable: self.info.writable,
                started: self.started,
            };
            control::serve(&path, live)?;
        }
        daemon::notify_ready();
        Ok(())
    }

    /// Core keeps local copies for passthrough opens.
    pub fn has_copies(&self) -> bool {
        self.copies.is_some()
    }

    pub fn drain_limit(&self) -> Duration {
        self.drain_limit
    }

    /// Save what is unsaved (bounded), stop the runtime, report.
    pub fn finish(self) -> Result<()> {
        let program = self.frontend.program();
        let limit = self.drain_limit;
        let unsaved = self.info.writable && self.running.handle.drain(limit) != DrainOutcome::Drained;
        if unsaved {
            eprintln!(
                "{program}: some writes could not be saved to the bucket within {limit:?}; they are kept in {} and the next mount of this bucket with this cache dir commits them",
                self.staging.display()
            );
        }
        if !unsaved && self.instance.is_some() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        let stopped = self.running.stop();
        if let Some(dir) = &self.copies {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(fs) = &stopped {
            let s = fs.stats();
            eprintln!(
                "{program}: unmounted; {} hub requests, {} fetches ({} retried), {} bytes fetched ({} from CAS) for {} bytes read; {} uploads ({} bytes, {} streamed), {} commits; {} local copies, {} opens through them",
                s.hub_requests,
                s.fetches,
                s.retries,
                s.bytes_fetched,
                self.executor.cas.transferred_bytes(),
                s.bytes_read,
                s.uploads,
                s.bytes_uploaded,
                s.bytes_streamed,
                s.commits,
                s.copies_made,
                s.opens_through_copies,
            );
        }
        if unsaved {
            bail!("unmounted with unsaved writes");
        }
        Ok(())
    }
}

/// Wait for SIGINT, SIGTERM or SIGHUP on a thread of its own; the signal's number arrives on
/// the returned channel.
pub fn on_signal(signals: libc::sigset_t) -> Result<std::sync::mpsc::Receiver<i32>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let sig = wait_for_signal(signals);
        tracing::info!("signal {sig}");
        let _ = tx.send(sig);
    })?;
    Ok(rx)
}

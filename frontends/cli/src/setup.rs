//! Mount-time work: token discovery, the mount's configuration from the flags, wiring core,
//! effects, runtime and the FUSE session together, waiting for core to resolve the source (any
//! error there is one line, before anything is mounted), and the unmount on a signal followed
//! by a bounded drain of unsaved writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hfm_core::config::{AccessPolicy, ReadPolicy, Source, WriteMode, WritePolicy};
use hfm_core::hub::{self, HubUrls};
use hfm_core::{Filesystem, MountConfig};
use hfm_driver::{Clock, DrainOutcome, Driver};
use hfm_effects::{CacheSettings, Executor, HubClient};
use hfm_fuse::{Config, FuseAdapter, FuseNotifier, MountOption, SessionACL};

use crate::args::{Cli, Cmd, MountOpts};
use crate::recovery;

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

/// The kernel offers FUSE only 128 KiB of readahead in INIT; raising the mount's BDI readahead
/// lets it send 1 MiB reads (fuser negotiates max_pages for that). It is set to 2 MiB, not 1:
/// an unaligned 1 MiB pread spans 257 pages, and with a window of exactly 256 the lone tail
/// page starts a second full window, doubling what random 1 MiB preads fetch (measured: 2.2x
/// at 1024 KiB, 1.0x at 2048 KiB). Best effort: needs root; without it reads stay at 128 KiB.
fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else { return };
    let dev = meta.dev();
    // SAFETY: major/minor only decode the number.
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, "2048") {
        tracing::info!("could not raise readahead ({path}): {e}");
    }
}

/// How long an unmount waits for programs to close their files before draining anyway.
const SESSION_END_WAIT: Duration = Duration::from_secs(2);

/// Detach the mount so the FUSE session ends: umount2 as root, else fusermount.
fn unmount(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    for tool in ["fusermount3", "fusermount"] {
        if let Ok(status) = std::process::Command::new(tool).arg("-u").arg("-z").arg(path).status() {
            if status.success() {
                return Ok(());
            }
        }
    }
    bail!("{}", std::io::Error::last_os_error())
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
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("huggingface"))
        })?;
        Some(home.join("token"))
    })?;
    std::fs::read_to_string(path).ok().and_then(non_empty)
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
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
fn mount_config(o: &MountOpts, cmd: &Cmd, has_token: bool, staging: &Path) -> Result<MountConfig> {
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
    // The kernel checks permissions (`default_permissions`) and vouches for who creates.
    cfg.access = AccessPolicy { check: false, owner_from_caller: true };
    cfg.metadata_ttl = if o.metadata_ttl_minimal { Duration::ZERO } else { Duration::from_millis(o.metadata_ttl_ms) };
    cfg.policy = ReadPolicy::default();
    cfg.timeouts.read_fetch = (o.read_fetch_timeout_ms > 0).then(|| Duration::from_millis(o.read_fetch_timeout_ms));
    cfg.poll_interval = (o.poll_interval_secs > 0).then(|| Duration::from_secs(o.poll_interval_secs));
    cfg.seed = start_nonce();
    cfg.verifier = start_nonce().rotate_left(17);
    cfg.writes = WritePolicy {
        mode: match (matches!(cmd, Cmd::Bucket { .. }) && !o.read_only, o.advanced_writes) {
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

pub fn run(cli: Cli, signals: libc::sigset_t) -> Result<()> {
    let o = cli.opts;
    let mountpoint = match &cli.cmd {
        Cmd::Repo { mountpoint, .. } | Cmd::Bucket { mountpoint, .. } => mountpoint.clone(),
    };
    check_mountpoint(&mountpoint, o.overlay)?;
    let token = find_token(o.hf_token.clone());
    let cache_dir = o.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let is_bucket = matches!(cli.cmd, Cmd::Bucket { .. });
    // A writable bucket mount keeps its staging files and journal in a directory of its own,
    // which the next mount of the bucket recovers if this one ends without saving everything.
    let bucket_id = match &cli.cmd {
        Cmd::Bucket { id, .. } if !o.read_only => Some(hub::parse_bucket_arg(id).map_err(|e| anyhow!(e))?.0),
        _ => None,
    };
    let journal_root = bucket_id.as_deref().map(|id| recovery::journal_root(&cache_dir, id));
    let instance = journal_root.as_deref().map(|root| recovery::Instance::claim(root, start_nonce())).transpose()?;
    let staging = instance.as_ref().map_or_else(|| cache_dir.join("staging"), |i| i.dir.clone());
    let mut cfg = mount_config(&o, &cli.cmd, token.is_some(), &staging)?;

    let started = std::time::Instant::now();
    let hub = HubClient::new(token, "fuse");
    let cache = CacheSettings {
        dir: (!o.no_disk_cache).then(|| cache_dir.clone()),
        size_bytes: o.cache_size,
        xet_dir: cache_dir.join("xet"),
    };
    let executor = Arc::new(Executor::new(hub, cache).map_err(|e| anyhow!(e))?);
    let (notifier, kernel_slot) = FuseNotifier::new();
    let clock = Clock::start();
    cfg.wall_ms_at_zero = clock.wall_ms_at_zero();
    let driver = Driver::new(Filesystem::new(cfg), Some(Box::new(notifier)));
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

    let mut options = vec![
        MountOption::FSName(format!("hf-mount:{}", info.label.trim_start_matches("bucket "))),
        MountOption::Subtype("hf-mount".into()),
        MountOption::NoAtime,
        // The kernel enforces the mode bits and owners core reports.
        MountOption::DefaultPermissions,
    ];
    options.push(if info.writable { MountOption::RW } else { MountOption::RO });
    // `SessionACL::All` is fuser's `allow_other`.
    // A private source stays with its owner unless sharing is asked for.
    let owner_only = o.fuse_owner_only || (info.private && !o.allow_other);
    let acl = if owner_only { SessionACL::Owner } else { SessionACL::All };

    let mut config = Config::default();
    config.mount_options = options;
    config.acl = acl;
    config.n_threads = Some(o.max_threads.max(1));
    let session = fuser::Session::new(FuseAdapter::new(running.handle.clone()), &mountpoint, &config)
        .with_context(|| format!("mounting at {}", mountpoint.display()))?;
    let _ = kernel_slot.set(session.notifier());
    let background = session.spawn().context("starting the FUSE session")?;
    let mode = match (is_bucket, info.writable) {
        (false, _) => "",
        (true, false) => " (read-only)",
        (true, true) => " (read-write)",
    };
    let mode = match (info.private, owner_only) {
        (true, true) => format!("{mode} (private: its owner only; --allow-other shares it)"),
        _ => mode.to_string(),
    };
    eprintln!(
        "hf-mount-fuse: mounted {}{mode} at {} in {:.0?} (runtime {:?})",
        info.label,
        mountpoint.display(),
        started.elapsed(),
        o.runtime
    );

    raise_readahead(&mountpoint);
    if let (true, Some(root), Some(bucket)) = (info.writable, journal_root.clone(), bucket_id.clone()) {
        let recovery = recovery::Recovery { executor: executor.clone(), urls: HubUrls::new(&o.hub_endpoint), bucket };
        let own = staging.clone();
        std::thread::Builder::new().name("recovery".into()).spawn(move || recovery.run(&root, &own))?;
    }
    // The mount ends on a signal (we detach it) or when it is unmounted from outside.
    let (ended, end) = std::sync::mpsc::channel::<&'static str>();
    let session_ended = ended.clone();
    std::thread::Builder::new().name("fuse-session".into()).spawn(move || {
        if let Err(e) = background.join() {
            tracing::warn!("FUSE session: {e}");
        }
        let _ = session_ended.send("session");
    })?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let sig = wait_for_signal(signals);
        tracing::info!("signal {sig}");
        let _ = ended.send("signal");
    })?;
    let limit = Duration::from_secs(o.drain_timeout_secs);
    if end.recv() == Ok("signal") {
        let started = std::time::Instant::now();
        if let Err(e) = unmount(&mountpoint) {
            eprintln!("hf-mount-fuse: unmount of {} failed: {e}", mountpoint.display());
        }
        // Detached: the session ends once the last open file is closed. Programs that hold
        // files open (a reader blocked on a dead Hub) do not hold up the exit: past a short
        // wait the drain runs anyway, and exiting ends their session.
        if end.recv_timeout(SESSION_END_WAIT.min(limit)).is_err() {
            tracing::warn!("files are still open in {}; they will see the mount end", mountpoint.display());
        }
        tracing::debug!("session ended or given up after {:?}", started.elapsed());
    }
    let unsaved = info.writable && running.handle.drain(limit) != DrainOutcome::Drained;
    if unsaved {
        eprintln!(
            "hf-mount-fuse: some writes could not be saved to the bucket within {limit:?}; they are kept in {} and the next mount of this bucket with this cache dir commits them",
            staging.display()
        );
    }
    if !unsaved && instance.is_some() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if let Some(fs) = running.stop() {
        let s = fs.stats();
        eprintln!(
            "hf-mount-fuse: unmounted; {} hub requests, {} fetches ({} retried), {} bytes fetched ({} from CAS) for {} bytes read; {} uploads ({} bytes), {} commits",
            s.hub_requests,
            s.fetches,
            s.retries,
            s.bytes_fetched,
            executor.cas.transferred_bytes(),
            s.bytes_read,
            s.uploads,
            s.bytes_uploaded,
            s.commits,
        );
    }
    if unsaved {
        bail!("unmounted with unsaved writes");
    }
    Ok(())
}

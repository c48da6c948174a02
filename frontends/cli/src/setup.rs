//! Mount-time work: token discovery, repo revision or bucket resolution, subfolder and write
//! access checks, wiring core, effects, runtime and the FUSE session together, and the unmount
//! on a signal followed by a bounded drain of unsaved writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hfm_core::config::{ReadPolicy, Source, WriteMode, WritePolicy};
use hfm_core::hub::{self, HubUrls};
use hfm_core::{Filesystem, MountConfig};
use hfm_driver::{Clock, DrainOutcome, Driver};
use hfm_effects::{CacheSettings, CasReader, CasWriter, Executor, HubClient};
use hfm_fuse::{Config, FuseAdapter, FuseNotifier, MountOption, SessionACL};

use crate::args::{Cli, Cmd, MountOpts};

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

/// A Hub GET that must succeed, with the Hub's message in the error. Transient failures are
/// retried with core's retry policy (the same one the mount uses).
fn hub_get_ok(hub: &HubClient, url: &str, what: &str) -> Result<hfm_core::HttpResponse> {
    let mut attempt = 1;
    loop {
        let failure = match hub.get(url) {
            Ok(resp) if (200..300).contains(&resp.status) => return Ok(resp),
            Ok(resp) => {
                let f = hub::failure_from_response(&resp);
                let hint = match resp.status {
                    401 if hub.token().is_some() => " (is the token valid?)",
                    401 => " (private or missing repo? pass --hf-token)",
                    _ => "",
                };
                (format!("{what}: HTTP {}: {}{hint}", resp.status, f.message), f)
            }
            Err(f) => (format!("{what}: {}", f.message), f),
        };
        match hfm_core::retry::next_delay(&failure.1, attempt) {
            Some(delay) => {
                tracing::info!("{}; retrying in {delay:?}", failure.0);
                std::thread::sleep(delay);
                attempt += 1;
            }
            None => bail!("{}", failure.0),
        }
    }
}

fn check_mountpoint(p: &Path) -> Result<()> {
    let meta = std::fs::metadata(p).with_context(|| format!("mountpoint {}", p.display()))?;
    if !meta.is_dir() {
        bail!("mountpoint {} is not a directory", p.display());
    }
    Ok(())
}

/// What is being mounted, resolved against the Hub before anything is mounted.
struct Target {
    cfg: MountConfig,
    /// Token URL for CAS reads, and for uploads when writable.
    read_token_url: String,
    write_token_url: Option<String>,
    /// `ns/name@rev` or `bucket ns/name`, for messages and the fs name.
    label: String,
}

fn base_config(o: &MountOpts, urls: &HubUrls, source: Source, subfolder: String, mtime_secs: i64) -> MountConfig {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let ttl = if o.metadata_ttl_minimal { Duration::ZERO } else { Duration::from_millis(o.metadata_ttl_ms) };
    MountConfig {
        urls: urls.clone(),
        source,
        subfolder,
        uid: o.uid.unwrap_or(uid),
        gid: o.gid.unwrap_or(gid),
        metadata_ttl: ttl,
        mtime_secs,
        policy: ReadPolicy::default(),
        writes: WritePolicy::default(),
        wall_ms_at_zero: 0,
        poll_interval: None,
    }
}

fn repo_target(o: &MountOpts, hub: &HubClient, urls: &HubUrls, id: &str) -> Result<Target> {
    let (repo, subfolder) = hub::parse_repo_arg(id).map_err(|e| anyhow!(e))?;
    hub::validate_revision(&o.revision).map_err(|e| anyhow!(e))?;
    let resp = hub_get_ok(
        hub,
        &urls.revision_info(&repo, &o.revision),
        &format!("resolving {} at {:?}", repo.id, o.revision),
    )?;
    let info = hub::parse_revision_info(&resp.body).map_err(|e| anyhow!("resolving {}: {e}", repo.id))?;
    if !subfolder.is_empty() {
        hub_get_ok(
            hub,
            &urls.tree(&repo, &info.sha, &subfolder, 1),
            &format!("subfolder {subfolder:?} of {}", repo.id),
        )?;
    }
    let repo = hub::RepoRef { kind: repo.kind, id: info.id.clone() };
    let read_token_url = urls.xet_read_token(&repo, &info.sha);
    let label = format!("{}@{}", info.id, &info.sha[..12]);
    // A branch or tag is followed (re-resolved by the poll); a commit sha is pinned for good.
    let pinned = o.revision.len() == 40 && o.revision.bytes().all(|b| b.is_ascii_hexdigit());
    let follow = (!pinned).then(|| o.revision.clone());
    let source = Source::Repo { repo, commit: info.sha, follow };
    let mut cfg = base_config(o, urls, source, subfolder, info.last_modified.unwrap_or(0));
    cfg.poll_interval = (o.poll_interval_secs > 0).then(|| Duration::from_secs(o.poll_interval_secs));
    Ok(Target { cfg, read_token_url, write_token_url: None, label })
}

fn bucket_target(o: &MountOpts, hub: &HubClient, urls: &HubUrls, arg: &str, staging: &Path) -> Result<Target> {
    let parts: Vec<&str> = arg.trim_matches('/').split('/').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        bail!("invalid bucket id {arg:?}: expected NAMESPACE/NAME[/PREFIX]");
    }
    let id = format!("{}/{}", parts[0], parts[1]);
    let subfolder = parts[2..].join("/");
    let resp = match hub_get_ok(hub, &urls.bucket_info(&id), &format!("bucket {id}")) {
        Ok(r) => r,
        Err(e) => {
            let is_repo = ["models", "datasets", "spaces"]
                .iter()
                .any(|k| hub.get(&format!("{}/api/{k}/{id}", urls.endpoint)).is_ok_and(|r| r.status == 200));
            if is_repo {
                bail!("{e}; {id} is a repo, mount it with `hf-mount-fuse repo {id} ...`");
            }
            return Err(e);
        }
    };
    let updated = hub::parse_bucket_updated_at(&resp.body).map_err(|e| anyhow!("bucket {id}: {e}"))?;
    let mtime = hub::parse_rfc3339(&updated).unwrap_or(0);
    let read_only = o.read_only;
    let write_token_url = (!read_only).then(|| urls.bucket_xet_token(&id, true));
    if let Some(url) = &write_token_url {
        hub_get_ok(hub, url, &format!("write access to bucket {id} (mount with --read-only to only read)"))?;
    }
    let mut cfg = base_config(o, urls, Source::Bucket { id: id.clone() }, subfolder, mtime);
    cfg.writes = WritePolicy {
        mode: match (read_only, o.advanced_writes) {
            (true, _) => WriteMode::ReadOnly,
            (false, false) => WriteMode::Streaming,
            (false, true) => WriteMode::Advanced,
        },
        flush_debounce: Duration::from_millis(o.flush_debounce_ms),
        flush_max_batch_window: Duration::from_millis(o.flush_max_batch_window_ms),
        staging_dir: format!("{}/", staging.display()),
        ..WritePolicy::default()
    };
    cfg.poll_interval = (o.poll_interval_secs > 0).then(|| Duration::from_secs(o.poll_interval_secs));
    Ok(Target {
        cfg,
        read_token_url: urls.bucket_xet_token(&id, false),
        write_token_url,
        label: format!("bucket {id}"),
    })
}

pub fn run(cli: Cli, signals: libc::sigset_t) -> Result<()> {
    let o = cli.opts;
    let (mountpoint, is_bucket) = match &cli.cmd {
        Cmd::Repo { mountpoint, .. } => (mountpoint.clone(), false),
        Cmd::Bucket { mountpoint, .. } => (mountpoint.clone(), true),
    };
    check_mountpoint(&mountpoint)?;
    let urls = HubUrls::new(&o.hub_endpoint);
    let hub = HubClient::new(find_token(o.hf_token.clone()), "fuse");
    let cache_dir = o.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let staging = cache_dir.join(format!("staging-{}", std::process::id()));

    let started = std::time::Instant::now();
    let mut target = match &cli.cmd {
        Cmd::Repo { id, .. } => repo_target(&o, &hub, &urls, id)?,
        Cmd::Bucket { id, .. } => bucket_target(&o, &hub, &urls, id, &staging)?,
    };
    let writable = target.cfg.writes.mode != WriteMode::ReadOnly;
    if writable {
        std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    }
    let cache = CacheSettings { dir: (!o.no_disk_cache).then(|| cache_dir.clone()), size_bytes: o.cache_size };
    let cas = CasReader::new(hub.clone(), target.read_token_url.clone(), cache).map_err(|e| anyhow!(e))?;
    let writer = match &target.write_token_url {
        Some(url) => Some(CasWriter::new(hub.clone(), url.clone()).map_err(|e| anyhow!(e))?),
        None => None,
    };
    let executor = Arc::new(Executor { hub, cas, writer });
    let (notifier, kernel_slot) = FuseNotifier::new();
    let clock = Clock::start();
    target.cfg.wall_ms_at_zero = clock.wall_ms_at_zero();
    let driver = Driver::new(Filesystem::new(target.cfg), Some(Box::new(notifier)));
    let running = crate::runtime::spawn(o.runtime, driver, executor.clone(), clock, o.max_threads)
        .context("starting the runtime")?;

    let mut options = vec![
        MountOption::FSName(format!("hf-mount:{}", target.label.trim_start_matches("bucket "))),
        MountOption::Subtype("hf-mount".into()),
        MountOption::NoAtime,
        // The kernel enforces the mode bits and owners core reports.
        MountOption::DefaultPermissions,
    ];
    options.push(if writable { MountOption::RW } else { MountOption::RO });
    // `SessionACL::All` is fuser's `allow_other`.
    let acl = if o.fuse_owner_only { SessionACL::Owner } else { SessionACL::All };
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = acl;
    config.n_threads = Some(o.max_threads.max(1));
    let session = fuser::Session::new(FuseAdapter::new(running.handle.clone()), &mountpoint, &config)
        .with_context(|| format!("mounting at {}", mountpoint.display()))?;
    let _ = kernel_slot.set(session.notifier());
    let background = session.spawn().context("starting the FUSE session")?;
    let mode = match (is_bucket, writable) {
        (false, _) => "",
        (true, false) => " (read-only)",
        (true, true) => " (read-write)",
    };
    eprintln!(
        "hf-mount-fuse: mounted {}{mode} at {} in {:.0?} (runtime {:?})",
        target.label,
        mountpoint.display(),
        started.elapsed(),
        o.runtime
    );

    raise_readahead(&mountpoint);
    let target_path = mountpoint.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let sig = wait_for_signal(signals);
        tracing::info!("signal {sig}: unmounting {}", target_path.display());
        if let Err(e) = unmount(&target_path) {
            eprintln!("hf-mount-fuse: unmount of {} failed: {e}", target_path.display());
        }
    })?;
    background.join().context("FUSE session")?;
    let mut unsaved = false;
    if writable {
        let limit = Duration::from_secs(o.drain_timeout_secs);
        if running.handle.drain(limit) != DrainOutcome::Drained {
            unsaved = true;
            eprintln!(
                "hf-mount-fuse: some writes could not be saved to the bucket within {limit:?}; their staging files are kept in {}",
                staging.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&staging);
        }
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

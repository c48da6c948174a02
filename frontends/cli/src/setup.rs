//! Mount-time work: token discovery, revision resolution, subfolder check, wiring core, effects,
//! runtime and the FUSE session together, and the unmount on a signal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hfm_core::config::ReadPolicy;
use hfm_core::hub::{self, HubUrls};
use hfm_core::{Filesystem, MountConfig};
use hfm_effects::{CacheSettings, CasReader, Executor, HubClient};
use hfm_fuse::{Config, FuseAdapter, MountOption, SessionACL};
use hfm_io_smol::Runtime;

use crate::args::{Cli, Cmd};

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

pub fn run(cli: Cli, signals: libc::sigset_t) -> Result<()> {
    let Cmd::Repo { id, mountpoint } = cli.cmd;
    let o = cli.opts;
    check_mountpoint(&mountpoint)?;
    let (repo, subfolder) = hub::parse_repo_arg(&id).map_err(|e| anyhow!(e))?;
    hub::validate_revision(&o.revision).map_err(|e| anyhow!(e))?;
    let urls = HubUrls::new(&o.hub_endpoint);
    let hub = HubClient::new(find_token(o.hf_token), "fuse");

    let started = std::time::Instant::now();
    let resp = hub_get_ok(
        &hub,
        &urls.revision_info(&repo, &o.revision),
        &format!("resolving {} at {:?}", repo.id, o.revision),
    )?;
    let info = hub::parse_revision_info(&resp.body).map_err(|e| anyhow!("resolving {}: {e}", repo.id))?;
    if !subfolder.is_empty() {
        hub_get_ok(
            &hub,
            &urls.tree(&repo, &info.sha, &subfolder, 1),
            &format!("subfolder {subfolder:?} of {}", repo.id),
        )?;
    }

    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let cfg = MountConfig {
        urls: urls.clone(),
        repo: hub::RepoRef { kind: repo.kind, id: info.id.clone() },
        commit: info.sha.clone(),
        subfolder,
        uid: o.uid.unwrap_or(uid),
        gid: o.gid.unwrap_or(gid),
        metadata_ttl: Duration::from_millis(o.metadata_ttl_ms),
        mtime_secs: info.last_modified.unwrap_or(0),
        policy: ReadPolicy::default(),
    };
    let cache = CacheSettings {
        dir: (!o.no_disk_cache).then(|| o.cache_dir.unwrap_or_else(default_cache_dir)),
        size_bytes: o.cache_size,
    };
    let token_url = urls.xet_read_token(&cfg.repo, &cfg.commit);
    let cas = CasReader::new(hub.clone(), token_url, cache).map_err(|e| anyhow!(e))?;
    let executor = Arc::new(Executor { hub, cas });
    let runtime = Runtime::start(Filesystem::new(cfg), executor.clone(), None);

    let options = vec![
        MountOption::RO,
        MountOption::FSName(format!("hf-mount:{}", info.id)),
        MountOption::Subtype("hf-mount".into()),
        MountOption::NoAtime,
    ];
    // `SessionACL::All` is fuser's `allow_other`.
    let acl = if o.fuse_owner_only { SessionACL::Owner } else { SessionACL::All };
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = acl;
    config.n_threads = Some(o.max_threads.max(1));
    let session = fuser::Session::new(FuseAdapter::new(runtime.handle.clone()), &mountpoint, &config)
        .with_context(|| format!("mounting at {}", mountpoint.display()))?;
    let background = session.spawn().context("starting the FUSE session")?;
    eprintln!(
        "hf-mount-fuse: mounted {}@{} at {} in {:.0?}",
        info.id,
        &info.sha[..12],
        mountpoint.display(),
        started.elapsed()
    );

    raise_readahead(&mountpoint);
    let target = mountpoint.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let sig = wait_for_signal(signals);
        tracing::info!("signal {sig}: unmounting {}", target.display());
        if let Err(e) = unmount(&target) {
            eprintln!("hf-mount-fuse: unmount of {} failed: {e}", target.display());
        }
    })?;
    background.join().context("FUSE session")?;
    if let Some(fs) = runtime.stop() {
        let s = fs.stats();
        eprintln!(
            "hf-mount-fuse: unmounted; {} hub requests, {} fetches ({} retried), {} bytes fetched ({} from CAS) for {} bytes read",
            s.hub_requests,
            s.fetches,
            s.retries,
            s.bytes_fetched,
            executor.cas.transferred_bytes(),
            s.bytes_read
        );
    }
    Ok(())
}

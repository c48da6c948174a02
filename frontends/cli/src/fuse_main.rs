//! `hf-mount-fuse`: the mount served by the kernel's FUSE, until a signal (we detach the
//! mount) or an unmount from outside.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hfm_fuse::{Config, FuseAdapter, FuseNotifier, MountOption, SessionACL};

use crate::args::{Cli, FuseOpts};
use crate::setup::{self, Frontend};

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

pub fn run(cli: Cli<FuseOpts>, signals: libc::sigset_t) -> Result<()> {
    let o = &cli.opts;
    let (notifier, kernel_slot) = FuseNotifier::new();
    let mount = setup::start(Frontend::Fuse, o, &cli.cmd, Some(Box::new(notifier)), !cli.frontend.direct_io)?;
    let info = &mount.info;
    let mountpoint = mount.mountpoint.clone();

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
    let session = fuser::Session::new(
        FuseAdapter::new(mount.running.handle.clone(), cli.frontend.direct_io, mount.has_copies()),
        &mountpoint,
        &config,
    )
    .with_context(|| format!("mounting at {}", mountpoint.display()))?;
    let _ = kernel_slot.set(session.notifier());
    let background = session.spawn().context("starting the FUSE session")?;
    eprintln!(
        "hf-mount-fuse: mounted {}{} at {} in {:.0?} (runtime {:?})",
        info.label,
        mount.mode_note(owner_only),
        mountpoint.display(),
        mount.started.elapsed(),
        o.runtime
    );

    raise_readahead(&mountpoint);
    mount.start_recovery()?;
    mount.ready()?;
    // The mount ends on a signal (we detach it) or when it is unmounted from outside.
    let (ended, end) = std::sync::mpsc::channel::<&'static str>();
    let session_ended = ended.clone();
    std::thread::Builder::new().name("fuse-session".into()).spawn(move || {
        if let Err(e) = background.join() {
            tracing::warn!("FUSE session: {e}");
        }
        let _ = session_ended.send("session");
    })?;
    let signal = setup::on_signal(signals)?;
    std::thread::Builder::new().name("signal-relay".into()).spawn(move || {
        if signal.recv().is_ok() {
            let _ = ended.send("signal");
        }
    })?;
    let limit = mount.drain_limit();
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
    mount.finish()
}

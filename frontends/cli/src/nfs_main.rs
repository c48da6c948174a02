//! `hf-mount-nfs`: the mount served over NFSv3 on loopback, then mounted with the system's NFS
//! client (or, with `--no-kernel-mount`, only served). A missing mount helper, a kernel without
//! NFS or a user who may not mount is a one-line error before anything is started.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hfm_core::Caller;
use hfm_nfs::{Handles, Server, ServerConfig, Session};

use crate::args::{Cli, NfsOpts};
use crate::setup::{self, Frontend};

/// Where the system's NFS mount helper lives, if it is installed.
fn mount_helper() -> Option<PathBuf> {
    let name = if cfg!(target_os = "macos") { "mount_nfs" } else { "mount.nfs" };
    ["/sbin", "/usr/sbin", "/bin", "/usr/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

/// Can this machine mount NFS at all? Checked before anything starts.
fn check_kernel_mount() -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("mounting NFS needs root (run with sudo, or use --no-kernel-mount to serve only and mount by hand)");
    }
    if mount_helper().is_none() {
        let fix = if cfg!(target_os = "macos") {
            "it ships with macOS"
        } else {
            "install nfs-common (Debian, Ubuntu) or nfs-utils (Fedora)"
        };
        bail!("no NFS mount helper found ({fix}), or use --no-kernel-mount to serve only");
    }
    if cfg!(target_os = "linux") {
        let listed = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        let module = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| Path::new("/lib/modules").join(r.trim()).join("kernel/fs/nfs").exists())
            .unwrap_or(false);
        if !listed.lines().any(|l| l.split_whitespace().last() == Some("nfs")) && !module {
            bail!("this kernel has no NFS client (load it with `modprobe nfs`, use hf-mount-fuse, or --no-kernel-mount to serve only)");
        }
    }
    Ok(())
}

fn kernel_mount(addr: SocketAddr, mountpoint: &Path, actimeo: u64) -> Result<()> {
    let port = addr.port();
    let ip = addr.ip();
    let status = if cfg!(target_os = "macos") {
        std::process::Command::new("mount_nfs")
            .arg("-o")
            .arg(format!("vers=3,tcp,locallocks,resvport,port={port},mountport={port},rsize=1048576,wsize=1048576,actimeo={actimeo}"))
            .arg(format!("{ip}:/"))
            .arg(mountpoint)
            .status()
    } else {
        std::process::Command::new("mount")
            .args(["-t", "nfs", "-o"])
            .arg(format!(
                "vers=3,tcp,nolock,port={port},mountport={port},rsize=1048576,wsize=1048576,actimeo={actimeo}"
            ))
            .arg(format!("{ip}:/"))
            .arg(mountpoint)
            .status()
    };
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("mount -t nfs of {} failed ({s})", mountpoint.display()),
        Err(e) => bail!("cannot run mount: {e}"),
    }
}

fn kernel_unmount(mountpoint: &Path) {
    let ok = std::process::Command::new("umount").arg(mountpoint).status().is_ok_and(|s| s.success());
    if !ok {
        // Busy: detach it; the kernel finishes with it once its files are closed.
        let lazy = std::process::Command::new("umount").arg("-l").arg(mountpoint).status();
        if !lazy.is_ok_and(|s| s.success()) {
            eprintln!("hf-mount-nfs: unmount of {} failed", mountpoint.display());
        }
    }
}

pub fn run(cli: Cli<NfsOpts>, signals: libc::sigset_t) -> Result<()> {
    let o = &cli.opts;
    let n = &cli.frontend;
    if !n.no_kernel_mount {
        check_kernel_mount()?;
    }
    let mount = setup::start(Frontend::Nfs, o, &cli.cmd, None, false)?;
    let session = Session::new(mount.running.handle.clone(), Handles::new(mount.identity_seed));
    let config = ServerConfig { insecure_ports: n.nfs_insecure_port, anonymous: Caller::new(65534, 65534) };
    let server = match Server::bind(n.nfs_listen, session, config) {
        Ok(s) => s,
        Err(e) => {
            mount.finish()?;
            bail!("cannot listen on {}: {e}", n.nfs_listen);
        }
    };
    let addr = server.local_addr().context("the server's address")?;
    std::thread::Builder::new().name("nfs-listen".into()).spawn(move || server.serve())?;
    let mountpoint = mount.mountpoint.clone();
    if n.no_kernel_mount {
        println!("nfs={addr} export=/");
        let _ = std::io::stdout().flush();
    } else {
        let actimeo = if o.metadata_ttl_minimal { 0 } else { o.metadata_ttl_ms.div_ceil(1000) };
        if let Err(e) = kernel_mount(addr, &mountpoint, actimeo) {
            mount.finish()?;
            return Err(e);
        }
    }
    eprintln!(
        "hf-mount-nfs: {} {}{} {} in {:.0?} (runtime {:?})",
        if n.no_kernel_mount { "serving" } else { "mounted" },
        mount.info.label,
        mount.mode_note(false),
        if n.no_kernel_mount { format!("on nfs://{addr}/") } else { format!("at {}", mountpoint.display()) },
        mount.started.elapsed(),
        o.runtime
    );
    mount.start_recovery()?;
    mount.ready()?;
    let signal = setup::on_signal(signals)?;
    let _ = signal.recv();
    if !n.no_kernel_mount {
        kernel_unmount(&mountpoint);
    }
    mount.finish()
}

//! `hf-mount stop MOUNTPOINT`: ask the daemon to unmount and save what is unsaved (SIGTERM,
//! which every backend handles that way), wait for it within its drain limit, and only past
//! that end it (its writes stay in the journal for the next mount). A daemon that is already
//! dead has its pid file removed and its mount, if one is left behind, detached.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::state::{self, StateDir};

/// Beyond the drain limit: the unmount itself and the final report.
const MARGIN: Duration = Duration::from_secs(15);
const KILL_WAIT: Duration = Duration::from_secs(5);

fn wait_gone(record: &state::PidRecord, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if !record.alive() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !record.alive()
}

/// Detach what a dead daemon left mounted (the kernel answers ENOTCONN there).
fn detach(path: &Path) {
    if !state::is_mounted(path) {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return };
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return;
    }
    let ok = std::process::Command::new("fusermount3").arg("-u").arg("-z").arg(path).status();
    if !ok.is_ok_and(|s| s.success()) {
        eprintln!("hf-mount: could not unmount {} (unmount it by hand: umount -l {})", path.display(), path.display());
    }
}

pub fn run(mountpoint: &Path) -> Result<()> {
    let mountpoint = state::canonical(mountpoint);
    let state = StateDir::new()?;
    let key = state::key(&mountpoint);
    let Some(record) = state.read(&key) else {
        bail!(
            "no daemon serves {} (no {}); a mount started by hand stops with Ctrl-C or an unmount",
            mountpoint.display(),
            state.pid_file(&key).display()
        );
    };
    if !record.alive() {
        state.remove(&key);
        detach(&record.mountpoint);
        eprintln!(
            "hf-mount: the daemon of {} (pid {}) was not running; its pid file is removed",
            mountpoint.display(),
            record.pid
        );
        return Ok(());
    }
    let limit = Duration::from_secs(record.drain_timeout_secs) + MARGIN;
    eprintln!(
        "hf-mount: stopping {} (pid {}); unsaved writes get up to {}s to reach the Hub",
        mountpoint.display(),
        record.pid,
        limit.as_secs()
    );
    let pid = record.pid as i32;
    // SAFETY: plain signal to a process we checked is our daemon.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if !wait_gone(&record, limit) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_gone(&record, KILL_WAIT);
        state.remove(&key);
        detach(&record.mountpoint);
        bail!(
            "the daemon did not finish within {}s and was killed; what it had not saved is kept in its journal and the next mount of the bucket commits it (log: {})",
            limit.as_secs(),
            state.log_file(&key).display()
        );
    }
    state.remove(&key);
    eprintln!("hf-mount: stopped {}", mountpoint.display());
    Ok(())
}

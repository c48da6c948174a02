//! A backend's side of being started by `hf-mount start`: the launcher passes, in the
//! environment, the write end of its readiness pipe (`HF_MOUNT_DAEMON_FD`), the pid file it
//! wrote (`HF_MOUNT_DAEMON_PID_FILE`) and where to serve the control socket
//! (`HF_MOUNT_CONTROL_SOCKET`). The backend writes `R` once the mount is live; if it exits
//! first, the launcher reads end-of-file and reports the failure. On exit the backend removes
//! its pid file and socket. A backend run by hand sees none of this.

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Mutex;

pub const READY_FD: &str = "HF_MOUNT_DAEMON_FD";
pub const PID_FILE: &str = "HF_MOUNT_DAEMON_PID_FILE";
pub const CONTROL_SOCKET: &str = "HF_MOUNT_CONTROL_SOCKET";

#[derive(Default)]
struct Daemon {
    ready: Option<File>,
    pid_file: Option<PathBuf>,
    control: Option<PathBuf>,
}

static DAEMON: Mutex<Option<Daemon>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Daemon) -> T) -> T {
    let mut guard = DAEMON.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Daemon::default))
}

/// Take what the launcher passed, before any thread starts (nothing the backend runs later,
/// such as `fusermount3` or `mount`, inherits the pipe or the variables).
pub fn adopt_from_env() {
    let take = |name: &str| {
        let value = std::env::var_os(name);
        std::env::remove_var(name);
        value
    };
    let fd = take(READY_FD).and_then(|v| v.to_str()?.parse::<i32>().ok()).filter(|fd| *fd > 2);
    let pid_file = take(PID_FILE).map(PathBuf::from);
    let control = take(CONTROL_SOCKET).map(PathBuf::from);
    let ready = fd.and_then(|fd| {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number; an invalid one fails with EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return None;
        }
        // SAFETY: as above; the descriptor is ours from here on (the launcher gave it to us).
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        // SAFETY: the descriptor is open and owned by nothing else in this process.
        Some(unsafe { File::from_raw_fd(fd) })
    });
    with(|d| *d = Daemon { ready, pid_file, control });
}

/// Where the launcher wants the control socket, if it started this backend.
pub fn control_socket() -> Option<PathBuf> {
    with(|d| d.control.clone())
}

/// The mount is live: let the launcher return.
pub fn notify_ready() {
    if let Some(mut pipe) = with(|d| d.ready.take()) {
        let _ = pipe.write_all(b"R");
    }
}

/// Remove the pid file (if it still names this process) and the control socket.
pub fn cleanup() {
    let (pid_file, control) = with(|d| (d.pid_file.take(), d.control.take()));
    if let Some(path) = pid_file {
        let mine = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| crate::launcher::PidRecord::parse(&s))
            .is_some_and(|r| r.pid == std::process::id());
        if mine {
            let _ = std::fs::remove_file(path);
        }
    }
    if let Some(path) = control {
        let _ = std::fs::remove_file(path);
    }
}

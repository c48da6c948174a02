//! `hf-mount start [--fuse] ARGS...`: check ARGS with the backend's own parser, then run the
//! backend detached (its own session, stdin from /dev/null, stdout and stderr appended to its
//! log) and return once it says the mount is live, or print why it is not.

use std::ffi::OsString;
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use super::state::{self, PidRecord, StateDir};
use crate::args::{Cli, Cmd, FuseOpts, MountOpts, NfsOpts};
use crate::daemon;
use crate::setup::Frontend;

/// What the launcher needs to know of the backend's arguments.
struct Target {
    mountpoint: PathBuf,
    source: String,
    drain_timeout_secs: u64,
}

fn target_of(cmd: &Cmd, o: &MountOpts) -> Target {
    let (kind, id, mountpoint) = match cmd {
        Cmd::Repo { id, mountpoint } => ("repo", id, mountpoint),
        Cmd::Bucket { id, mountpoint } => ("bucket", id, mountpoint),
    };
    Target { mountpoint: mountpoint.clone(), source: format!("{kind} {id}"), drain_timeout_secs: o.drain_timeout_secs }
}

/// Parse `args` as the backend would (a bad flag is clap's message and exit code, at once).
fn check_args(frontend: Frontend, args: &[OsString]) -> Target {
    let program = frontend.program();
    let argv = std::iter::once(OsString::from(program)).chain(args.iter().cloned());
    let parsed = match frontend {
        Frontend::Fuse => Cli::<FuseOpts>::parse_as(program, "", argv).map(|c| target_of(&c.cmd, &c.opts)),
        Frontend::Nfs => Cli::<NfsOpts>::parse_as(program, "", argv).map(|c| target_of(&c.cmd, &c.opts)),
    };
    parsed.unwrap_or_else(|e| e.exit())
}

/// The backend beside this program, else the one on `PATH`.
fn backend_path(program: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(program)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(program))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating the readiness pipe");
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn run(fuse: bool, args: Vec<OsString>) -> Result<()> {
    let frontend = if fuse { Frontend::Fuse } else { Frontend::Nfs };
    let target = check_args(frontend, &args);
    let mountpoint = state::canonical(&target.mountpoint);
    let state = StateDir::new()?;
    let key = state::key(&mountpoint);
    let _lock = state.lock(&key)?;
    if let Some(existing) = state.read(&key) {
        if existing.alive() {
            bail!(
                "a daemon (pid {}) already serves {}; stop it first: hf-mount stop {}",
                existing.pid,
                mountpoint.display(),
                mountpoint.display()
            );
        }
        state.remove(&key);
    }
    let log_path = state.log_file(&key);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log_start = log.seek(std::io::SeekFrom::End(0))?;
    let (ready_read, ready_write) = pipe()?;
    let child_fd = ready_write.as_raw_fd();

    let mut command = Command::new(backend_path(frontend.program()));
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env(daemon::READY_FD, child_fd.to_string())
        .env(daemon::PID_FILE, state.pid_file(&key))
        .env(daemon::CONTROL_SOCKET, state.control_socket(&key));
    // SAFETY: setsid and fcntl are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The backend inherits the pipe's write end (and only that).
            let flags = libc::fcntl(child_fd, libc::F_GETFD);
            libc::fcntl(child_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| anyhow!("cannot run {}: {e}", frontend.program()))?;
    drop(ready_write);
    let record = PidRecord {
        pid: child.id(),
        mountpoint: mountpoint.clone(),
        source: target.source.clone(),
        backend: if fuse { "fuse" } else { "nfs" }.into(),
        started_unix: unix_now(),
        drain_timeout_secs: target.drain_timeout_secs,
        proc_start: state::proc_start(child.id()),
    };
    state.write(&key, &record)?;

    // `R` once the mount is live; end-of-file if the backend exited first.
    let mut answer = [0u8; 1];
    let mut ready = std::fs::File::from(ready_read);
    let live = matches!(ready.read(&mut answer), Ok(1) if answer[0] == b'R');
    if live {
        eprintln!(
            "hf-mount: {} mounted at {} ({}, pid {})\n  log:  {}\n  stop: hf-mount stop {}",
            target.source,
            mountpoint.display(),
            record.backend,
            record.pid,
            log_path.display(),
            mountpoint.display()
        );
        return Ok(());
    }
    let mut child = child;
    let _ = child.wait();
    if state.read(&key).is_some_and(|r| r.pid == record.pid) {
        state.remove(&key);
    }
    eprint!("{}", log_since(&log_path, log_start));
    bail!("the mount did not start (log: {})", log_path.display())
}

/// What the backend wrote to its log since `start`.
fn log_since(path: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(std::io::SeekFrom::Start(start)).is_ok() {
            let _ = f.take(64 << 10).read_to_string(&mut text);
        }
    }
    text
}

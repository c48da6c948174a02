//! The launcher's state under `~/.hf-mount`: one pid file per daemon (`pids/<key>.pid`), its
//! log (`logs/<key>.log`) and control socket (`run/<key>.sock`), `<key>` being the canonical
//! mount path with `%` and `/` percent-encoded (the incumbent's naming, so the files line up).

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What `hf-mount start` records of a daemon.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PidRecord {
    pub pid: u32,
    pub mountpoint: PathBuf,
    /// `repo ns/name` or `bucket ns/name`, as given.
    pub source: String,
    /// `fuse` or `nfs`.
    pub backend: String,
    pub started_unix: u64,
    /// How long the daemon may take to save unsaved writes when stopped.
    pub drain_timeout_secs: u64,
    /// The process's start time in clock ticks since boot (tells a reused pid apart).
    pub proc_start: Option<u64>,
}

impl PidRecord {
    /// A record as `start` writes it, or the incumbent's three lines (pid, mount, source).
    pub fn parse(text: &str) -> Option<PidRecord> {
        if let Ok(r) = serde_json::from_str(text) {
            return Some(r);
        }
        let mut lines = text.lines().map(str::trim);
        let pid = lines.next()?.parse().ok()?;
        Some(PidRecord {
            pid,
            mountpoint: PathBuf::from(lines.next().unwrap_or_default()),
            source: lines.next().unwrap_or("?").to_string(),
            backend: "?".into(),
            started_unix: 0,
            drain_timeout_secs: 30,
            proc_start: None,
        })
    }

    /// Is the recorded process still the hf-mount daemon that was started?
    pub fn alive(&self) -> bool {
        let Ok(pid) = i32::try_from(self.pid) else { return false };
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
            return false;
        }
        // A zombie (killed, not yet reaped by an init that may never reap it) is gone.
        if proc_stat_field(self.pid, 0).is_some_and(|state| state == "Z" || state == "X") {
            return false;
        }
        let ours = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|exe| exe.file_name().is_some_and(|n| n.to_string_lossy().starts_with("hf-mount")))
            .unwrap_or(true);
        ours && (self.proc_start.is_none() || proc_start(self.pid) == self.proc_start)
    }
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
pub fn proc_start(pid: u32) -> Option<u64> {
    proc_stat_field(pid, 19)?.parse().ok()
}

/// Field `n` after the command name of `/proc/PID/stat` (0: the state).
fn proc_stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(n).map(str::to_string)
}

/// The mount path made absolute and canonical; a path that cannot be resolved (it does not
/// exist, or a dead FUSE mount sits on it) is normalized by hand below its resolved parent.
pub fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let absolute = std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf());
    let mut normal = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                normal.pop();
            }
            Component::Normal(name) => normal.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    match (normal.parent().and_then(|p| std::fs::canonicalize(p).ok()), normal.file_name()) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => normal,
    }
}

/// `<key>` of a canonical mount path.
pub fn key(mountpoint: &Path) -> String {
    let s = mountpoint.to_string_lossy();
    match s.trim_matches('/') {
        "" => "%2F".into(),
        trimmed => trimmed.replace('%', "%25").replace('/', "%2F"),
    }
}

pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new() -> Result<StateDir> {
        let home = crate::setup::home_dir().unwrap_or_else(|| PathBuf::from("/tmp"));
        let root = home.join(".hf-mount");
        for sub in ["pids", "logs", "run"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        Ok(StateDir { root })
    }

    pub fn pid_file(&self, key: &str) -> PathBuf {
        self.root.join("pids").join(format!("{key}.pid"))
    }

    pub fn log_file(&self, key: &str) -> PathBuf {
        self.root.join("logs").join(format!("{key}.log"))
    }

    pub fn control_socket(&self, key: &str) -> PathBuf {
        self.root.join("run").join(format!("{key}.sock"))
    }

    pub fn read(&self, key: &str) -> Option<PidRecord> {
        PidRecord::parse(&std::fs::read_to_string(self.pid_file(key)).ok()?)
    }

    pub fn write(&self, key: &str, record: &PidRecord) -> Result<()> {
        let path = self.pid_file(key);
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(record)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// Forget a daemon: its pid file and socket.
    pub fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.pid_file(key));
        let _ = std::fs::remove_file(self.control_socket(key));
    }

    /// Every recorded daemon, by key, in key order.
    pub fn records(&self) -> Vec<(String, PidRecord)> {
        let Ok(dir) = std::fs::read_dir(self.root.join("pids")) else { return Vec::new() };
        let mut out: Vec<(String, PidRecord)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(".pid")?.to_string();
                Some((key.clone(), self.read(&key)?))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Hold `pids/<key>.lock` exclusively while the returned file is open, so two launchers do
    /// not start daemons on one mount point at once.
    pub fn lock(&self, key: &str) -> Result<File> {
        use std::os::fd::AsRawFd;
        let path = self.root.join("pids").join(format!("{key}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("locking {}", path.display()));
        }
        Ok(file)
    }
}

/// Is something mounted at `path` (a canonical path)? From `/proc/self/mountinfo`.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let wanted = path.to_string_lossy();
    info.lines().filter_map(|l| l.split(' ').nth(4)).any(|m| unescape_octal(m) == wanted)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_incumbents_and_injective() {
        assert_eq!(key(Path::new("/mnt/a")), "mnt%2Fa");
        assert_eq!(key(Path::new("/mnt/a%2Fb")), "mnt%2Fa%252Fb");
        assert_ne!(key(Path::new("/mnt/a/b")), key(Path::new("/mnt/a%2Fb")));
        assert_eq!(key(Path::new("/")), "%2F");
    }

    #[test]
    fn records_round_trip_and_the_incumbents_parse() {
        let r = PidRecord {
            pid: 42,
            mountpoint: "/mnt/x".into(),
            source: "bucket a/b".into(),
            backend: "fuse".into(),
            started_unix: 1,
            drain_timeout_secs: 120,
            proc_start: Some(7),
        };
        assert_eq!(PidRecord::parse(&serde_json::to_string(&r).unwrap()), Some(r));
        let old = PidRecord::parse("123\n/mnt/y\nrepo gpt2\n").unwrap();
        assert_eq!((old.pid, old.mountpoint.to_str(), old.source.as_str()), (123, Some("/mnt/y"), "repo gpt2"));
        assert_eq!(PidRecord::parse("garbage"), None);
    }

    #[test]
    fn canonical_paths_without_the_path_existing() {
        assert_eq!(canonical(Path::new("/nonexistent-hfm/a/../b/./c")), PathBuf::from("/nonexistent-hfm/b/c"));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_octal(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_octal(r"/mnt/\\x"), r"/mnt/\\x");
    }

    #[test]
    fn this_process_is_not_an_hf_mount_daemon() {
        let me = PidRecord::parse(&format!("{}\n/x\n", std::process::id())).unwrap();
        // The test binary's name does not start with hf-mount... unless cargo named it so.
        let exe = std::env::current_exe().unwrap();
        let named = exe.file_name().unwrap().to_string_lossy().starts_with("hf-mount");
        assert_eq!(me.alive(), named);
        assert!(proc_start(std::process::id()).is_some());
    }
}

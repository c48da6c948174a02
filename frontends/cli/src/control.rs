//! The control socket between `hf-mount status` and a running mount: a Unix socket owned by
//! the mounting user (mode 0600, in a 0700 directory, peers of another uid refused). A client
//! sends one line (`status`) and reads one line of JSON back: `Figures`, or `{"error": ...}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hfm_driver::Handle;
use hfm_effects::Executor;
use serde::{Deserialize, Serialize};

/// What a running mount reports about itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    pub source: String,
    pub backend: String,
    pub writable: bool,
    pub uptime_secs: u64,
    /// Bytes programs read from remote content, and wrote.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Reads answered from what the mount held, without waiting for the Hub (0..=1; none yet: 1).
    pub cache_hit_rate: f64,
    /// Bytes fetched for reads, and of them the bytes that came over the network from CAS
    /// (the rest came from the disk chunk cache).
    pub bytes_fetched: u64,
    pub bytes_from_cas: u64,
    pub hub_requests: u64,
    pub uploads: u64,
    pub uploads_pending: u64,
    pub uploads_failed: u64,
    pub commits: u64,
    /// Entries in the inode table.
    pub inodes: u64,
    pub last_error: Option<String>,
}

/// The longest request line a mount accepts.
const MAX_REQUEST: u64 = 256;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What the control socket answers from.
pub struct Live {
    pub handle: Handle,
    pub executor: Arc<Executor>,
    pub source: String,
    pub backend: String,
    pub writable: bool,
    pub started: Instant,
}

impl Live {
    fn figures(&self) -> Option<Figures> {
        let report = self.handle.report()?;
        let s = &report.stats;
        let hit_rate = match s.reads {
            0 => 1.0,
            n => (n - s.reads_waited.min(n)) as f64 / n as f64,
        };
        Some(Figures {
            source: self.source.clone(),
            backend: self.backend.clone(),
            writable: self.writable,
            uptime_secs: self.started.elapsed().as_secs(),
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
            cache_hit_rate: hit_rate,
            bytes_fetched: s.bytes_fetched,
            bytes_from_cas: self.executor.cas.transferred_bytes(),
            hub_requests: s.hub_requests,
            uploads: s.uploads,
            uploads_pending: report.unsaved_files as u64,
            uploads_failed: s.upload_failures,
            commits: s.commits,
            inodes: report.inodes as u64,
            last_error: report.last_error,
        })
    }

    fn answer(&self, request: &str) -> String {
        let value = match request.trim() {
            "status" => match self.figures() {
                Some(f) => serde_json::to_value(f).unwrap_or_default(),
                None => serde_json::json!({"error": "the mount is stopping"}),
            },
            other => serde_json::json!({"error": format!("unknown request {other:?}")}),
        };
        value.to_string()
    }
}

/// Serve `live` on a socket at `path` (replacing a stale one) on a thread of its own.
pub fn serve(path: &Path, live: Live) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).with_context(|| format!("control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new().name("control".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(e) = answer_one(stream, &live) {
                tracing::debug!("control socket: {e}");
            }
        }
    })?;
    Ok(())
}

fn answer_one(stream: UnixStream, live: &Live) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if peer_uid(&stream)? != me {
        bail!("refused a peer of another user");
    }
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let mut out = live.answer(&line);
    out.push('\n');
    (&stream).write_all(out.as_bytes())?;
    Ok(())
}

fn peer_uid(stream: &UnixStream) -> Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        bail!("SO_PEERCRED: {}", std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Ask the mount behind `path` for its figures.
pub fn query(path: &PathBuf) -> Result<Figures> {
    let mut stream = UnixStream::connect(path).with_context(|| format!("connecting to {}", path.display()))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(b"status\n")?;
    let mut line = String::new();
    BufReader::new(stream.take(1 << 20)).read_line(&mut line)?;
    let value: serde_json::Value = serde_json::from_str(&line).context("the mount's answer")?;
    if let Some(e) = value.get("error").and_then(|e| e.as_str()) {
        bail!("{e}");
    }
    Ok(serde_json::from_value(value)?)
}

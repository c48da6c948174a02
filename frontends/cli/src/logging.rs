//! The process's log: `RUST_LOG` filtering (default: warnings), written to stderr as text or,
//! with `RUST_LOG_FORMAT=json`, one JSON object per line, with every known secret (the Hub
//! token, xet tokens) blanked out of each line. ureq's body dumps are
//! always off: they print bodies (tokens, file bytes) cut into hex rows no redaction can match.

use std::io::Write;

use hfm_effects::secrets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Directives added after the user's, whatever `RUST_LOG` says.
const ALWAYS: &[&str] = &["ureq_proto=info"];

pub fn init() {
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,fuser::mnt=error".into());
    let mut filter = EnvFilter::new(wanted);
    for directive in ALWAYS {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(RedactingStderr);
    match std::env::var("RUST_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        _ => builder.init(),
    }
}

/// Raise the soft limit on open files to the hard limit (a mount holds a descriptor per
/// staging file and per connection). Best effort.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::debug!("could not raise RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// Print a fatal error, redacted like the log.
pub fn fatal(program: &str, message: &str) {
    eprintln!("{program}: {}", secrets::redact(message));
}

/// Makes one `RedactedLine` per log event.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedLine;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine(Vec::new())
    }
}

/// Collects one formatted event and writes it to stderr, redacted, when dropped.
struct RedactedLine(Vec<u8>);

impl Write for RedactedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().lock().write_all(secrets::redact(&text).as_bytes());
    }
}

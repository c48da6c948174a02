//! The process's log: `RUST_LOG` filtering (default: warnings), written to stderr with every
//! known secret (the Hub token, xet tokens) blanked out of each line. ureq's body dumps are
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
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(RedactingStderr).init();
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

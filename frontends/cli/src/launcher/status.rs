//! `hf-mount status [--json]`: every live daemon with its source, mount point, backend and
//! uptime, and the figures it reports over its control socket. Pid files of dead daemons are
//! removed on the way.

use anyhow::Result;
use serde::Serialize;

use super::state::{PidRecord, StateDir};
use crate::control::{self, Figures};

#[derive(Serialize)]
struct Entry {
    pid: u32,
    mountpoint: String,
    source: String,
    backend: String,
    /// When `start` ran it (seconds since the epoch; 0 if another launcher wrote the pid file).
    started_unix: u64,
    log: String,
    /// The mount's own figures, or why it could not give them.
    #[serde(skip_serializing_if = "Option::is_none")]
    figures: Option<Figures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(json: bool) -> Result<()> {
    let state = StateDir::new()?;
    let mut entries = Vec::new();
    for (key, record) in state.records() {
        if !record.alive() {
            state.remove(&key);
            continue;
        }
        let answer = control::query(&state.control_socket(&key));
        entries.push(entry(&record, state.log_file(&key).display().to_string(), answer));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        println!("no hf-mount daemons are running");
    } else {
        for e in &entries {
            print!("{}", describe(e));
        }
    }
    Ok(())
}

fn entry(r: &PidRecord, log: String, answer: Result<Figures>) -> Entry {
    let (figures, error) = match answer {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Entry {
        pid: r.pid,
        mountpoint: r.mountpoint.display().to_string(),
        source: r.source.clone(),
        backend: r.backend.clone(),
        started_unix: r.started_unix,
        log,
        figures,
        error,
    }
}

fn describe(e: &Entry) -> String {
    let mut out = format!("{}  {}  ({}, pid {})\n", e.mountpoint, e.source, e.backend, e.pid);
    match (&e.figures, &e.error) {
        (Some(f), _) => {
            out += &format!(
                "  up {}; read {}, written {}; cache hits {:.1}%; {} Hub requests, {} from CAS\n",
                duration(f.uptime_secs),
                bytes(f.bytes_read),
                bytes(f.bytes_written),
                f.cache_hit_rate * 100.0,
                f.hub_requests,
                bytes(f.bytes_from_cas)
            );
            if f.writable {
                out += &format!(
                    "  uploads: {} done, {} pending, {} failed; {} commits\n",
                    f.uploads, f.uploads_pending, f.uploads_failed, f.commits
                );
            }
            out += &format!("  last error: {}\n", f.last_error.as_deref().unwrap_or("none"));
        }
        (None, Some(err)) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            if e.started_unix > 0 {
                out += &format!("  up {} (from its pid file)\n", duration(now.saturating_sub(e.started_unix)));
            }
            out += &format!("  no figures: {err}\n");
        }
        (None, None) => {}
    }
    out += &format!("  log: {}\n", e.log);
    out
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_say_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3725), "1h02m");
    }
}

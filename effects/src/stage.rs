//! Staging files: the local copy of a file being written (advanced mode, or a streaming file
//! past its memory limit), and the journal records that name them. Plain positional file IO on
//! paths core named.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use hfm_core::{Completion, EffectFailure, LocalError, StageEdit, StageOp};

use crate::cas::CasReader;

/// Local IO failures are typed (a full disk is `NoSpace`) and never retried.
fn io_failure(op: &str, path: &str, e: std::io::Error) -> EffectFailure {
    let kind = if e.kind() == std::io::ErrorKind::StorageFull { LocalError::NoSpace } else { LocalError::Io };
    EffectFailure::local(kind, format!("{op} staging file {path}: {e}"))
}

fn open_rw(path: &str) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

pub fn execute(op: &StageOp, cas: &CasReader) -> Result<Completion, EffectFailure> {
    match op {
        StageOp::Create { path } => {
            File::create(path).map_err(|e| io_failure("creating", path, e))?;
            Ok(Completion::Done)
        }
        StageOp::Fill { path, token_url, xet_hash, size } => {
            File::create(path).map_err(|e| io_failure("creating", path, e))?;
            if *size > 0 {
                cas.download_to(token_url, xet_hash, *size, Path::new(path))?;
            }
            Ok(Completion::Done)
        }
        StageOp::Edit { path, edits } => {
            let f = open_rw(path).map_err(|e| io_failure("opening", path, e))?;
            for edit in edits {
                match edit {
                    StageEdit::Write { offset, data } => {
                        f.write_all_at(data, *offset).map_err(|e| io_failure("writing", path, e))?
                    }
                    StageEdit::Truncate { size } => f.set_len(*size).map_err(|e| io_failure("truncating", path, e))?,
                }
            }
            Ok(Completion::Done)
        }
        StageOp::Read { path, range } => {
            let f = File::open(path).map_err(|e| io_failure("opening", path, e))?;
            let buf = read_range(&f, range.clone()).map_err(|e| io_failure("reading", path, e))?;
            Ok(Completion::Bytes(vec![Bytes::from(buf)]))
        }
        StageOp::Remove { path } => {
            remove(path)?;
            Ok(Completion::Done)
        }
        StageOp::Publish { from, to } => {
            File::open(from).and_then(|f| f.sync_data()).map_err(|e| io_failure("syncing", from, e))?;
            std::fs::rename(from, to).map_err(|e| io_failure("renaming", from, e))?;
            Ok(Completion::Done)
        }
        StageOp::Journal { record, body, remove: staging } => {
            match body {
                Some(body) => {
                    let tmp = format!("{record}.tmp");
                    std::fs::write(&tmp, body).map_err(|e| io_failure("writing", &tmp, e))?;
                    std::fs::rename(&tmp, record).map_err(|e| io_failure("renaming", &tmp, e))?;
                }
                None => remove(record)?,
            }
            staging.iter().try_for_each(|p| remove(p))?;
            Ok(Completion::Done)
        }
    }
}

/// The bytes of `range` of `f`, fewer at its end.
pub(crate) fn read_range(f: &File, range: std::ops::Range<u64>) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match f.read_at(&mut buf[filled..], range.start + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Remove a file; one already gone is fine.
fn remove(path: &str) -> Result<(), EffectFailure> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_failure("removing", path, e)),
    }
}

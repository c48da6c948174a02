//! The write journal on disk, and recovery from it. Each writable bucket mount owns an instance
//! directory under `<cache>/journal/<bucket>/`, locked (flock) for the life of the process,
//! where core keeps its staging files and the journal records naming them (see core's
//! `fs::journal`). A directory whose lock is free belongs to a mount that ended without saving
//! everything (killed, crashed, or its drain gave up): the next mount of the bucket recovers it
//! in the background. For each record, newest first per path: upload the staging file, and
//! commit it at its path if the bucket still has what the killed mount started from, or else
//! next to it under a name the log gives (both versions are kept). What cannot be saved now
//! (Hub down) stays for the mount after.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use hfm_core::hub::{self, BatchOp, HubUrls};
use hfm_core::UploadSource;
use hfm_effects::Executor;

/// This mount's journal directory, locked while the process lives.
pub struct Instance {
    pub dir: PathBuf,
    _lock: File,
}

/// Where the journals of mounts of `bucket` live under `cache_dir`.
pub fn journal_root(cache_dir: &Path, bucket: &str) -> PathBuf {
    cache_dir.join("journal").join(bucket.replace('/', "--"))
}

fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor we own; it is released when the file is closed.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn open_lock(dir: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))
}

impl Instance {
    /// A new instance directory under `root`, locked.
    pub fn claim(root: &Path, nonce: u64) -> Result<Instance> {
        let dir = root.join(format!("{}-{nonce:016x}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = open_lock(&dir).with_context(|| format!("creating the lock in {}", dir.display()))?;
        if !try_lock(&lock) {
            anyhow::bail!("{} is locked by another process", dir.display());
        }
        Ok(Instance { dir, _lock: lock })
    }
}

/// One journal record: `path` (in the bucket) has its content in `staging`, started from the
/// bucket's `base` version (`None`: the file did not exist).
#[derive(Debug)]
struct Record {
    file: PathBuf,
    path: String,
    staging: PathBuf,
    base: Option<String>,
    written: SystemTime,
}

fn read_record(file: &Path, dir: &Path) -> Result<Record, String> {
    let text = std::fs::read(file).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| format!("malformed: {e}"))?;
    let path = v["path"].as_str().filter(|p| hub::is_clean_path(p)).ok_or("no valid path")?;
    let staging = v["staging"].as_str().filter(|s| !s.contains('/') && !s.is_empty()).ok_or("no staging file")?;
    let written = std::fs::metadata(file).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Record {
        file: file.to_path_buf(),
        path: path.to_string(),
        staging: dir.join(staging),
        base: v["base"].as_str().map(str::to_string),
        written,
    })
}

/// Records per upload session, paths-info call and batch (the Hub takes 1000 per call).
const MAX_PER_CALL: usize = 1000;

/// What recovery did, for the closing log line.
#[derive(Default, Debug)]
struct Summary {
    committed: usize,
    renamed: usize,
    already: usize,
    kept: usize,
    bytes: u64,
}

pub struct Recovery {
    pub executor: std::sync::Arc<Executor>,
    pub urls: HubUrls,
    pub bucket: String,
}

impl Recovery {
    /// Recover every journal under `root` whose mount is gone (not `own`).
    pub fn run(&self, root: &Path, own: &Path) {
        let Ok(dirs) = std::fs::read_dir(root) else { return };
        let mut dead: Vec<(PathBuf, File)> = Vec::new();
        for dir in dirs.flatten().map(|d| d.path()).filter(|d| d != own && d.is_dir()) {
            match open_lock(&dir) {
                Ok(lock) if try_lock(&lock) => dead.push((dir, lock)),
                Ok(_) => {}
                Err(e) => tracing::warn!("journal {}: {e}", dir.display()),
            }
        }
        dead.sort_by(|a, b| a.0.cmp(&b.0));
        for (dir, _lock) in dead {
            self.recover_dir(&dir);
        }
    }

    fn recover_dir(&self, dir: &Path) {
        let mut records = Vec::new();
        for file in std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()) {
            if file.extension().is_some_and(|e| e == "record") {
                match read_record(&file, dir) {
                    Ok(r) => records.push(r),
                    Err(e) => tracing::warn!("journal record {}: {e}; left as it is", file.display()),
                }
            }
        }
        // The newest record of a path stands; older ones (content replaced since) go.
        records.sort_by(|a, b| a.path.cmp(&b.path).then(b.written.cmp(&a.written)).then(b.file.cmp(&a.file)));
        let mut newest: Vec<Record> = Vec::new();
        for record in records {
            if newest.last().is_some_and(|r| r.path == record.path) {
                let _ = std::fs::remove_file(&record.file);
            } else {
                newest.push(record);
            }
        }
        let mut summary = Summary::default();
        for chunk in newest.chunks(MAX_PER_CALL) {
            if let Err(e) = self.recover_chunk(chunk, &mut summary) {
                summary.kept += chunk.len();
                let shown: Vec<&str> = chunk.iter().take(3).map(|r| r.path.as_str()).collect();
                let more = chunk.len().saturating_sub(shown.len());
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                tracing::warn!(
                    "could not recover {}{more} yet ({e}); kept in {} for the next mount",
                    shown.join(", "),
                    dir.display()
                );
            }
        }
        if summary.kept == 0 {
            let _ = std::fs::remove_dir_all(dir);
        }
        let s = summary;
        if s.committed + s.renamed + s.already + s.kept > 0 {
            tracing::warn!(
                "recovery from {}: {} files committed ({} bytes), {} kept under new names, {} already in the bucket, {} left for the next mount",
                dir.display(),
                s.committed + s.renamed,
                s.bytes,
                s.renamed,
                s.already,
                s.kept
            );
        }
    }

    /// Recover up to `MAX_PER_CALL` records: one upload session, one paths-info call, one
    /// batch. On any error nothing of the chunk is removed (a later try uploads again; CAS
    /// deduplicates).
    fn recover_chunk(&self, records: &[Record], summary: &mut Summary) -> Result<(), String> {
        let mut present = Vec::new();
        for record in records {
            match std::fs::metadata(&record.staging) {
                Ok(meta) => present.push((record, meta)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!("journal: the staging file of {} is gone; nothing to recover", record.path);
                    let _ = std::fs::remove_file(&record.file);
                }
                Err(e) => return Err(format!("{}: {e}", record.staging.display())),
            }
        }
        let to_upload: Vec<UploadSource> = present
            .iter()
            .filter(|(_, m)| m.len() > 0)
            .map(|(r, _)| UploadSource::File(r.staging.display().to_string()))
            .collect();
        let mut uploaded = if to_upload.is_empty() {
            Vec::new()
        } else {
            let token_url = self.urls.bucket_xet_token(&self.bucket, true);
            self.executor.writer.upload(&token_url, &to_upload).map_err(|e| e.message)?
        }
        .into_iter();
        let paths: Vec<&str> = present.iter().map(|(r, _)| r.path.as_str()).collect();
        let remote = self.remote_hashes(&paths)?;
        let mut ops = Vec::new();
        let mut done = Vec::new();
        for (record, meta) in &present {
            let (hash, size) = match meta.len() {
                0 => (hub::EMPTY_FILE_HASH.to_string(), 0),
                _ => uploaded.next().ok_or("the upload reported fewer files than sent")?,
            };
            let theirs = remote.get(&record.path).cloned();
            if theirs.as_deref() == Some(hash.as_str()) {
                summary.already += 1;
                tracing::info!("recovery: {} is already in the bucket", record.path);
            } else {
                let target = if theirs == record.base {
                    record.path.clone()
                } else {
                    recovered_name(&record.path, SystemTime::now())
                };
                let mtime_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                ops.push(BatchOp::Add { path: target.clone(), xet_hash: hash, mtime_ms });
                done.push((record.path.clone(), target, size));
            }
        }
        if !ops.is_empty() {
            let url = self.urls.bucket_batch(&self.bucket);
            let resp =
                self.executor.hub.post(&url, "application/x-ndjson", &hub::batch_body(&ops)).map_err(|e| e.message)?;
            if !(200..300).contains(&resp.status) {
                return Err(hub::error_message(&resp));
            }
        }
        for (path, target, size) in done {
            summary.bytes += size;
            if target == path {
                summary.committed += 1;
                tracing::warn!("recovered {path} ({size} bytes) from the journal of a mount that ended first");
            } else {
                summary.renamed += 1;
                tracing::warn!(
                    "recovered {path} ({size} bytes), but the bucket's copy changed since that mount wrote it: the recovered version is saved as {target}"
                );
            }
        }
        for (record, _) in present {
            let _ = std::fs::remove_file(&record.file);
            let _ = std::fs::remove_file(&record.staging);
        }
        Ok(())
    }

    /// The bucket's current hash of each of `paths` it has as a file.
    fn remote_hashes(&self, paths: &[&str]) -> Result<std::collections::BTreeMap<String, String>, String> {
        let url = self.urls.bucket_paths_info(&self.bucket);
        let resp =
            self.executor.hub.post(&url, "application/json", &hub::paths_info_body(paths)).map_err(|e| e.message)?;
        if resp.status != 200 {
            return Err(hub::error_message(&resp));
        }
        let page = hub::parse_tree_page(&resp.body)?;
        Ok(page
            .entries
            .into_iter()
            .filter_map(|e| match e.kind {
                hub::TreeEntryKind::File { source: hub::ContentSource::Xet { hash }, .. } => Some((e.path, hash)),
                _ => None,
            })
            .collect())
    }
}

/// `dir/name.ext` -> `dir/name.recovered-YYYYMMDD-HHMMSS.ext`: next to the original, keeping
/// its extension so programs still know the file; within the name length limit.
fn recovered_name(path: &str, at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let stamp = format!("recovered-{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60);
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), path),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let room = 255usize.saturating_sub(stamp.len() + 1 + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{dir}{}.{stamp}{ext}", &stem[..cut])
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn recovered_names_sit_next_to_the_original_and_keep_its_extension() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_193_296); // 2026-12-02 06:34:56
        assert_eq!(recovered_name("ckpt/model.safetensors", at), "ckpt/model.recovered-20261202-063456.safetensors");
        assert_eq!(recovered_name("README", at), "README.recovered-20261202-063456");
        assert_eq!(recovered_name("d/.bashrc", at), "d/.bashrc.recovered-20261202-063456");
        let long = format!("{}.bin", "é".repeat(126));
        let name = recovered_name(&long, at);
        assert!(name.len() <= 255 && name.ends_with("-063456.bin"), "{name}");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}

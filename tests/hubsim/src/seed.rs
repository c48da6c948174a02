//! `hubsim seed`: commit a local directory to a hubsim repo. Files at or above the xet threshold
//! are uploaded to CAS through xet-core (real xet hashes, real reconstructions); smaller files
//! are sent as regular git blobs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Subcommand;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use xet_data::processing::configurations::TranslatorConfig;
use xet_data::processing::data_client::default_config;
use xet_data::processing::{get_cache, CacheConfig, FileDownloadSession, FileUploadSession, Sha256Policy, XetFileInfo};
use xet_runtime::core::XetContext;

#[derive(Subcommand)]
pub enum Target {
    /// Commit DIR as the whole tree of a new commit on a repo branch.
    Repo {
        /// `[models/|datasets/|spaces/]NS/NAME`
        id: String,
        #[arg(long)]
        from: PathBuf,
        #[arg(long, default_value = "main")]
        branch: String,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        private: bool,
        /// Files of at least this many bytes are stored in Xet.
        #[arg(long, default_value_t = 1 << 20)]
        xet_threshold: u64,
    },
    /// Create the bucket if needed and add every file of DIR to it (through CAS + batch).
    Bucket {
        /// `NS/NAME`
        id: String,
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        private: bool,
    },
}

fn walk(root: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let meta = std::fs::metadata(entry.path())?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                let rel = entry.path().strip_prefix(root)?.to_string_lossy().to_string();
                out.push((rel, entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A CAS configuration from the xet token at `token_url`.
fn cas_config(
    agent: &ureq::Agent,
    token_url: &str,
    token: Option<&str>,
) -> Result<(XetContext, Value, TranslatorConfig)> {
    let tok = get_json(agent, token_url, token)?;
    let cas_url = tok["casUrl"].as_str().context("token has no casUrl")?.to_string();
    let access = tok["accessToken"].as_str().context("token has no accessToken")?.to_string();
    let exp = tok["exp"].as_u64().context("token has no exp")?;
    let ctx = XetContext::default()?;
    let config = default_config(&ctx, cas_url, Some((access, exp)), None, None)?;
    Ok((ctx, tok, config))
}

/// Upload local files to CAS in one finalized session, as real clients do.
async fn upload_paths(
    agent: &ureq::Agent,
    token_url: &str,
    token: Option<&str>,
    paths: impl Iterator<Item = PathBuf> + Send,
) -> Result<Vec<XetFileInfo>> {
    let (_ctx, _, config) = cas_config(agent, token_url, token)?;
    let session = FileUploadSession::new(Arc::new(config)).await?;
    let infos = session.upload_files(paths.map(|p| (p, Sha256Policy::Skip))).await?;
    session.finalize().await?;
    Ok(infos)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(crate::state::hex(&h.finalize()))
}

fn get_json(agent: &ureq::Agent, url: &str, token: Option<&str>) -> Result<Value> {
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string()?;
    if !(200..300).contains(&status) {
        bail!("GET {url}: HTTP {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

pub async fn run(endpoint: &str, token: Option<&str>, target: Target) -> Result<()> {
    let endpoint = endpoint.trim_end_matches('/');
    let (id, from, branch, tag, private, xet_threshold) = match target {
        Target::Repo { id, from, branch, tag, private, xet_threshold } => {
            (id, from, branch, tag, private, xet_threshold)
        }
        Target::Bucket { id, from, private } => return seed_bucket(endpoint, token, &id, &from, private).await,
    };
    let (repo_type, repo_id) = match id.split_once('/') {
        Some(("models", rest)) => ("model", rest.to_string()),
        Some(("datasets", rest)) => ("dataset", rest.to_string()),
        Some(("spaces", rest)) => ("space", rest.to_string()),
        _ => ("model", id.clone()),
    };
    let files = walk(&from)?;
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();

    let xet_files: Vec<&(String, PathBuf, u64)> = files.iter().filter(|f| f.2 >= xet_threshold).collect();
    let mut xet_infos = Vec::new();
    if !xet_files.is_empty() {
        let token_url = format!("{endpoint}/_emulator/xet-write-token");
        let infos = upload_paths(&agent, &token_url, token, xet_files.iter().map(|f| f.1.clone())).await?;
        for (f, info) in xet_files.iter().zip(infos) {
            xet_infos.push((f.0.clone(), info.hash().to_string(), f.2, sha256_file(&f.1)?));
        }
    }

    let mut body_files = Vec::new();
    for (rel, abs, size) in &files {
        if *size >= xet_threshold {
            continue;
        }
        let data = std::fs::read(abs)?;
        body_files.push(json!({ "path": rel, "content_b64": base64::engine::general_purpose::STANDARD.encode(data) }));
    }
    for (rel, hash, size, sha) in xet_infos {
        body_files.push(json!({ "path": rel, "xet_hash": hash, "sha256": sha, "size": size }));
    }
    let body = json!({
        "repo_type": repo_type, "repo_id": repo_id, "branch": branch, "tag": tag, "private": private,
        "title": format!("seed from {}", from.display()), "files": body_files,
    });
    let mut req = agent.post(&format!("{endpoint}/_emulator/commit"));
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.header("content-type", "application/json").send(serde_json::to_vec(&body)?)?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    if status != 200 {
        bail!("commit failed: HTTP {status}: {text}");
    }
    let v: Value = serde_json::from_str(&text)?;
    println!("{}", v["commitOid"].as_str().context("no commitOid in response")?);
    Ok(())
}

fn send(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, String)> {
    let mut req = agent.post(url).header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.send(body).with_context(|| format!("POST {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_to_string()?))
}

async fn seed_bucket(endpoint: &str, token: Option<&str>, id: &str, from: &Path, private: bool) -> Result<()> {
    if id.split('/').count() != 2 || id.split('/').any(str::is_empty) {
        bail!("bucket id must be NS/NAME, got {id:?}");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let body = serde_json::to_vec(&json!({ "private": private }))?;
    let (status, text) = send(&agent, &format!("{endpoint}/api/buckets/{id}"), token, "application/json", body)?;
    if !(200..300).contains(&status) && status != 409 {
        bail!("creating bucket {id}: HTTP {status}: {text}");
    }
    let files = walk(from)?;
    if !files.is_empty() {
        let token_url = format!("{endpoint}/api/buckets/{id}/xet-write-token");
        let infos = upload_paths(&agent, &token_url, token, files.iter().map(|f| f.1.clone())).await?;
        let mtime = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        let lines: Vec<String> = files
            .iter()
            .zip(&infos)
            .map(|(f, info)| {
                json!({ "type": "addFile", "path": f.0, "xetHash": info.hash(), "mtime": mtime }).to_string()
            })
            .collect();
        for chunk in lines.chunks(1000) {
            let body = chunk.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
            let url = format!("{endpoint}/api/buckets/{id}/batch");
            let (status, text) = send(&agent, &url, token, "application/x-ndjson", body)?;
            if !(200..300).contains(&status) {
                bail!("batch to bucket {id}: HTTP {status}: {text}");
            }
        }
    }
    println!("bucket {id}: {} files", files.len());
    Ok(())
}

/// Upload `file` to CAS the way the mount does (one xet-core session, finalized) and print MB/s.
pub async fn cas_upload(endpoint: &str, file: &Path) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let token_url = format!("{}/_emulator/xet-write-token", endpoint.trim_end_matches('/'));
    let (_ctx, _, config) = cas_config(&agent, &token_url, None)?;
    let config = Arc::new(config);
    let size = std::fs::metadata(file)?.len();
    let started = std::time::Instant::now();
    let session = FileUploadSession::new(config).await?;
    let infos = session.upload_files([(file.to_path_buf(), Sha256Policy::Skip)]).await?;
    session.finalize().await?;
    let secs = started.elapsed().as_secs_f64();
    let hash = infos.first().map(|i| i.hash().to_string()).unwrap_or_default();
    println!("direct_upload_mb_s={:.1} seconds={secs:.3} hash={hash}", size as f64 / 1e6 / secs);
    Ok(())
}

/// Stream `hash` from CAS with xet-core's own download path (bytes discarded, like `dd` to
/// /dev/null on the mount) and print MB/s.
pub async fn cas_download(
    endpoint: &str,
    hash: &str,
    size: u64,
    cache_dir: Option<PathBuf>,
    out: Option<PathBuf>,
) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let token_url = format!("{}/_emulator/xet-write-token", endpoint.trim_end_matches('/'));
    let (ctx, tok, config) = cas_config(&agent, &token_url, None)?;
    let cache: Option<Arc<dyn xet_data::processing::ChunkCache>> = match cache_dir {
        Some(dir) => Some(get_cache(&ctx.config, &CacheConfig { cache_directory: dir, cache_size: 10 << 30 })?),
        None => None,
    };
    let cached = cache.is_some();
    let session = FileDownloadSession::new(Arc::new(config), cache).await?;
    let started = std::time::Instant::now();
    let info = XetFileInfo::new(hash.to_string(), size);
    if let Some(out) = &out {
        session.download_file(&info, out).await?;
        let secs = started.elapsed().as_secs_f64();
        println!("file_download_mb_s={:.1} seconds={secs:.3}", size as f64 / 1e6 / secs);
        return Ok(());
    }
    let (_id, mut stream) = session.download_stream(&info, None).await?;
    let mut got = 0u64;
    while let Some(b) = stream.next().await? {
        got += b.len() as u64;
    }
    if got != size {
        bail!("downloaded {got} bytes, expected {size}");
    }
    let secs = started.elapsed().as_secs_f64();
    println!("direct_download_mb_s={:.1} seconds={secs:.3}", size as f64 / 1e6 / secs);

    if cached {
        return Ok(());
    }
    // The transfer limit: the reconstruction's xorb byte ranges fetched raw (no decoding,
    // no hashing), 4 at a time, as fast as the CAS serves them.
    let url = format!("{}/v2/reconstructions/{hash}", tok["casUrl"].as_str().unwrap_or_default());
    let plan = get_json(&agent, &url, tok["accessToken"].as_str())?;
    let mut ranges: Vec<(String, u64, u64)> = Vec::new();
    for entries in plan["xorbs"].as_object().context("reconstruction has no xorbs")?.values() {
        for e in entries.as_array().into_iter().flatten() {
            let url = e["url"].as_str().context("xorb entry has no url")?;
            for r in e["ranges"].as_array().into_iter().flatten() {
                let (a, b) = (r["bytes"]["start"].as_u64(), r["bytes"]["end"].as_u64());
                ranges.push((url.to_string(), a.context("range start")?, b.context("range end")?));
            }
        }
    }
    let started = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while let Some((url, a, b)) = ranges.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    if let Ok(mut resp) = agent.get(url).header("range", &format!("bytes={a}-{b}")).call() {
                        let mut sink = std::io::sink();
                        let n = std::io::copy(&mut resp.body_mut().as_reader(), &mut sink).unwrap_or(0);
                        total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let bytes = total.load(std::sync::atomic::Ordering::Relaxed);
    println!("raw_transfer_mb_s={:.1} raw_bytes={bytes}", size as f64 / 1e6 / secs);
    Ok(())
}

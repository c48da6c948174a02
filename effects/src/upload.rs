//! CAS uploads through xet-core: each upload is its own `FileUploadSession`, finalized (xorbs
//! and shard uploaded) before the completion reports the file hash, so a hash core commits is
//! always reconstructible. Content comes from memory or from a staging file; SHA-256 is skipped
//! (buckets do not use it). One CAS configuration per xet write-token URL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use hfm_core::{Completion, EffectFailure, FailureKind, StreamOp, UploadSource};
use xet_data::processing::configurations::TranslatorConfig;
use xet_data::processing::{FileUploadSession, Sha256Policy, SingleFileCleaner, XetFileInfo};
use xet_runtime::core::XetContext;

use crate::cas::{cas_failure, translator_config};
use crate::http::HubClient;

pub struct CasWriter {
    ctx: XetContext,
    hub: HubClient,
    xet_dir: std::path::PathBuf,
    /// Configurations by the Hub URL of their token.
    configs: Mutex<BTreeMap<String, Arc<TranslatorConfig>>>,
    streams: Mutex<Streams>,
}

/// Upload streams between their steps. A cleaner is taken out while a step runs on it.
#[derive(Default)]
struct Streams {
    open: HashMap<u64, (Arc<FileUploadSession>, Option<SingleFileCleaner>)>,
    /// Aborted while a step was running: dropped when that step ends.
    aborted: HashSet<u64>,
}

/// Stream failures are final: core falls back to uploading the whole file.
fn stream_failure(e: impl std::fmt::Display) -> EffectFailure {
    EffectFailure::new(FailureKind::Permanent, None, format!("upload stream: {e}"))
}

impl CasWriter {
    /// `xet_dir`: where xet-core keeps its shard cache and upload staging.
    pub fn new(ctx: XetContext, hub: HubClient, xet_dir: std::path::PathBuf) -> Self {
        let (configs, streams) = (Mutex::new(BTreeMap::new()), Mutex::new(Streams::default()));
        CasWriter { ctx, hub, xet_dir, configs, streams }
    }

    /// An upload through `token_url` failed: the next one fetches a fresh token, and so learns
    /// the CAS address again (it may have moved).
    fn forget(&self, token_url: &str) {
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).remove(token_url);
    }

    fn config(&self, token_url: &str) -> Result<Arc<TranslatorConfig>, EffectFailure> {
        let mut guard = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = guard.get(token_url) {
            return Ok(c.clone());
        }
        let config = Arc::new(translator_config(&self.ctx, &self.hub, token_url, &self.xet_dir)?);
        guard.insert(token_url.to_string(), config.clone());
        Ok(config)
    }

    /// One step of an upload stream (see `StreamOp`).
    pub fn stream(&self, op: &StreamOp) -> Result<Completion, EffectFailure> {
        let lock = || self.streams.lock().unwrap_or_else(|e| e.into_inner());
        match op {
            StreamOp::Append { stream, token_url, data } => {
                if lock().aborted.remove(stream) {
                    return Ok(Completion::Done);
                }
                let existing = lock().open.get_mut(stream).map(|(s, c)| (s.clone(), c.take()));
                let (session, cleaner) = match existing {
                    Some((session, Some(cleaner))) => (session, cleaner),
                    Some((_, None)) => return Err(stream_failure("a step is already running")),
                    None => {
                        let config = self.config(token_url)?;
                        let task = async move {
                            let session = FileUploadSession::new(config).await.map_err(|e| e.to_string())?;
                            let (_, cleaner) =
                                session.start_clean(None, None, Sha256Policy::Skip).map_err(|e| e.to_string())?;
                            Ok::<_, String>((session, cleaner))
                        };
                        let (session, cleaner) = self.run(task)?;
                        lock().open.insert(*stream, (session.clone(), None));
                        (session, cleaner)
                    }
                };
                let data = data.clone();
                let task = async move {
                    let mut cleaner = cleaner;
                    for chunk in data {
                        cleaner.add_data_from_bytes(chunk).await.map_err(|e| e.to_string())?;
                    }
                    Ok::<_, String>(cleaner)
                };
                let result = self.run(task);
                let mut streams = lock();
                match result {
                    Ok(cleaner) if !streams.aborted.remove(stream) => {
                        streams.open.insert(*stream, (session, Some(cleaner)));
                        Ok(Completion::Done)
                    }
                    Ok(_) => Ok(Completion::Done),
                    Err(e) => {
                        streams.open.remove(stream);
                        drop(streams);
                        self.forget(token_url);
                        Err(e)
                    }
                }
            }
            StreamOp::Finish { stream } => {
                let Some((session, Some(cleaner))) = lock().open.remove(stream) else {
                    return Err(stream_failure("no such stream"));
                };
                let task = async move {
                    let (info, _) = cleaner.finish().await.map_err(|e| e.to_string())?;
                    session.finalize().await.map_err(|e| e.to_string())?;
                    Ok::<_, String>(info)
                };
                let info = self.run(task)?;
                Ok(Completion::Uploaded(vec![(info.hash().to_string(), info.file_size().unwrap_or_default())]))
            }
            StreamOp::Abort { stream } => {
                let mut streams = lock();
                // Dropped now if idle; otherwise (a step running, or not started yet) when
                // that step comes.
                if !matches!(streams.open.remove(stream), Some((_, Some(_)))) {
                    streams.aborted.insert(*stream);
                }
                Ok(Completion::Done)
            }
        }
    }

    fn run<T: Send + 'static>(
        &self,
        task: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, EffectFailure> {
        self.ctx.runtime.external_run_async_task(task).map_err(stream_failure)?.map_err(stream_failure)
    }

    /// Upload `sources` in one session and return each one's xet hash and size, in order,
    /// once CAS holds them durably (the session is finalized first).
    pub fn upload(&self, token_url: &str, sources: &[UploadSource]) -> Result<Vec<(String, u64)>, EffectFailure> {
        let config = self.config(token_url)?;
        let sources = sources.to_vec();
        let task = async move {
            let session = FileUploadSession::new(config).await.map_err(|e| e.to_string())?;
            let mut infos: Vec<XetFileInfo> = Vec::with_capacity(sources.len());
            for source in sources {
                infos.push(match source {
                    UploadSource::Memory(chunks) => {
                        let size = chunks.iter().map(Bytes::len).sum::<usize>() as u64;
                        let (_, mut cleaner) =
                            session.start_clean(None, Some(size), Sha256Policy::Skip).map_err(|e| e.to_string())?;
                        for chunk in chunks {
                            cleaner.add_data_from_bytes(chunk).await.map_err(|e| e.to_string())?;
                        }
                        cleaner.finish().await.map_err(|e| e.to_string())?.0
                    }
                    UploadSource::File(path) => session
                        .upload_files([(path, Sha256Policy::Skip)])
                        .await
                        .map_err(|e| e.to_string())?
                        .pop()
                        .ok_or("no file info returned")?,
                });
            }
            session.finalize().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(infos)
        };
        let infos = self
            .ctx
            .runtime
            .external_run_async_task(task)
            .map_err(|e| cas_failure("xet runtime", e))?
            .map_err(|e| cas_failure("uploading to CAS", e))
            .inspect_err(|_| self.forget(token_url))?;
        Ok(infos.iter().map(|i| (i.hash().to_string(), i.file_size().unwrap_or_default())).collect())
    }
}

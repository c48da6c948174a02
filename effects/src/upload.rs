//! CAS uploads through xet-core: each upload is its own `FileUploadSession`, finalized (xorbs
//! and shard uploaded) before the completion reports the file hash, so a hash core commits is
//! always reconstructible. Content comes from memory or from a staging file; SHA-256 is skipped
//! (buckets do not use it).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hfm_core::{EffectFailure, UploadSource};
use xet_data::processing::configurations::TranslatorConfig;
use xet_data::processing::data_client::default_config;
use xet_data::processing::{FileUploadSession, Sha256Policy, XetFileInfo};
use xet_runtime::core::XetContext;

use crate::cas::{cas_failure, fetch_token, HubTokenRefresher};
use crate::http::HubClient;

pub struct CasWriter {
    ctx: XetContext,
    hub: HubClient,
    token_url: String,
    config: Mutex<Option<Arc<TranslatorConfig>>>,
}

impl CasWriter {
    /// `token_url` is the Hub's xet write-token URL of the mounted bucket.
    pub fn new(hub: HubClient, token_url: String) -> Result<Self, String> {
        let ctx = XetContext::default().map_err(|e| format!("starting the xet runtime: {e}"))?;
        Ok(CasWriter { ctx, hub, token_url, config: Mutex::new(None) })
    }

    fn config(&self) -> Result<Arc<TranslatorConfig>, EffectFailure> {
        let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let token = fetch_token(&self.hub, &self.token_url)?;
        let refresher = Arc::new(HubTokenRefresher::new(self.hub.clone(), self.token_url.clone()));
        let config =
            default_config(&self.ctx, token.cas_url, Some((token.access_token, token.exp)), Some(refresher), None)
                .map_err(|e| cas_failure("configuring CAS", e))?;
        let config = Arc::new(config);
        *guard = Some(config.clone());
        Ok(config)
    }

    /// Upload `sources` in one session and return each one's xet hash and size, in order,
    /// once CAS holds them durably (the session is finalized first).
    pub fn upload(&self, sources: &[UploadSource]) -> Result<Vec<(String, u64)>, EffectFailure> {
        let config = self.config()?;
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
            .map_err(|e| cas_failure("uploading to CAS", e))?;
        Ok(infos.iter().map(|i| (i.hash().to_string(), i.file_size().unwrap_or_default())).collect())
    }
}

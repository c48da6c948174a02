//! CAS range reads through xet-core: one `FileDownloadSession` per xet token URL, created on
//! first use with a read token from the Hub (refreshed by xet-core through `HubTokenRefresher`),
//! sharing xet-core's disk chunk cache unless disabled.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hfm_core::hub::parse_xet_token;
use hfm_core::{EffectFailure, FailureKind};
use xet_client::cas_client::auth::AuthConfig;
use xet_client::cas_client::auth::{AuthError, TokenInfo, TokenRefresher};
use xet_data::processing::configurations::{SessionContext, TranslatorConfig};
use xet_data::processing::{get_cache, CacheConfig, FileDownloadSession, XetFileInfo};
use xet_runtime::core::XetContext;

use crate::http::HubClient;

#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// Chunk cache directory; `None` disables the disk cache.
    pub dir: Option<PathBuf>,
    pub size_bytes: u64,
    /// Where xet-core keeps its shard cache and upload staging (never outside the mount's
    /// cache directory).
    pub xet_dir: PathBuf,
}

pub struct CasReader {
    ctx: XetContext,
    hub: HubClient,
    cache: CacheSettings,
    /// Sessions by the Hub URL of their token, and whether they use the chunk cache.
    sessions: Mutex<BTreeMap<(String, bool), Arc<FileDownloadSession>>>,
}

pub(crate) struct HubTokenRefresher {
    hub: HubClient,
    url: String,
}

impl HubTokenRefresher {
    pub(crate) fn new(hub: HubClient, url: String) -> Self {
        HubTokenRefresher { hub, url }
    }
}

#[async_trait::async_trait]
impl TokenRefresher for HubTokenRefresher {
    async fn refresh(&self) -> Result<TokenInfo, AuthError> {
        let (hub, url) = (self.hub.clone(), self.url.clone());
        let token = tokio::task::spawn_blocking(move || fetch_token(&hub, &url))
            .await
            .map_err(AuthError::token_refresh_failure)?
            .map_err(|e| AuthError::token_refresh_failure(e.message))?;
        Ok((token.access_token, token.exp))
    }
}

pub(crate) fn fetch_token(hub: &HubClient, url: &str) -> Result<hfm_core::hub::XetToken, EffectFailure> {
    let resp = hub.get(url)?;
    if !(200..300).contains(&resp.status) {
        return Err(hfm_core::hub::failure_from_response(&resp));
    }
    let token =
        parse_xet_token(&resp.body).map_err(|e| EffectFailure::new(FailureKind::Permanent, Some(resp.status), e))?;
    crate::secrets::remember(&token.access_token);
    Ok(token)
}

/// A CAS configuration for the xet token at `token_url`, with xet-core's files in `xet_dir`.
pub(crate) fn translator_config(
    ctx: &XetContext,
    hub: &HubClient,
    token_url: &str,
    xet_dir: &std::path::Path,
) -> Result<TranslatorConfig, EffectFailure> {
    let token = fetch_token(hub, token_url)?;
    let refresher = Arc::new(HubTokenRefresher::new(hub.clone(), token_url.to_string()));
    let session = SessionContext {
        endpoint: token.cas_url,
        auth: AuthConfig::maybe_new(Some(token.access_token), Some(token.exp), Some(refresher)),
        custom_headers: None,
        repo_paths: vec![String::new()],
        session_id: None,
        cache_root: Some(xet_dir.to_path_buf()),
    };
    TranslatorConfig::new(ctx, session).map_err(|e| cas_failure("configuring CAS", e))
}

pub(crate) fn cas_failure(context: &str, e: impl std::fmt::Display) -> EffectFailure {
    EffectFailure::new(FailureKind::Transient, None, format!("{context}: {e}"))
}

impl CasReader {
    pub fn new(ctx: XetContext, hub: HubClient, cache: CacheSettings) -> Self {
        CasReader { ctx, hub, cache, sessions: Mutex::new(BTreeMap::new()) }
    }

    /// A call through `token_url`'s session failed: the next one builds a new session with a
    /// fresh token, and so learns the CAS address again (it may have moved).
    fn forget(&self, token_url: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).retain(|(url, _), _| url != token_url);
    }

    /// The session for xet token URL `token_url` (a repo at a commit, or a bucket), with the
    /// disk chunk cache (when the mount has one) or without.
    fn session(&self, token_url: &str, cached: bool) -> Result<Arc<FileDownloadSession>, EffectFailure> {
        let mut guard = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let key = (token_url.to_string(), cached);
        if let Some(s) = guard.get(&key) {
            return Ok(s.clone());
        }
        let config = translator_config(&self.ctx, &self.hub, token_url, &self.cache.xet_dir)?;
        let chunk_cache = match self.cache.dir.as_ref().filter(|_| cached) {
            Some(dir) => Some(
                get_cache(
                    &self.ctx.config,
                    &CacheConfig { cache_directory: dir.clone(), cache_size: self.cache.size_bytes },
                )
                .map_err(|e| {
                    EffectFailure::new(
                        FailureKind::Permanent,
                        None,
                        format!("opening chunk cache {}: {e}", dir.display()),
                    )
                })?,
            ),
            None => None,
        };
        let session = self
            .ctx
            .runtime
            .external_run_async_task(FileDownloadSession::new(Arc::new(config), chunk_cache))
            .map_err(|e| cas_failure("xet runtime", e))?
            .map_err(|e| cas_failure("opening CAS session", e))?;
        guard.insert(key, session.clone());
        Ok(session)
    }

    /// Bytes `range` of the xet file `hash` (of `file_size` bytes), exactly, in consecutive pieces.
    pub fn read_range(
        &self,
        token_url: &str,
        hash: &str,
        file_size: u64,
        range: Range<u64>,
        chunk_cache: bool,
    ) -> Result<Vec<Bytes>, EffectFailure> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let session = self.session(token_url, chunk_cache)?;
        let info = XetFileInfo::new(hash.to_string(), file_size);
        let task = async move {
            let (id, mut stream) = session.download_stream(&info, Some(range)).await.map_err(|e| e.to_string())?;
            // Pieces are handed to core as they came: no copy to join them.
            let mut pieces: Vec<Bytes> = Vec::new();
            let result = loop {
                match stream.next().await {
                    Ok(Some(b)) => pieces.push(b),
                    Ok(None) => break Ok(pieces),
                    Err(e) => break Err(e.to_string()),
                }
            };
            session.unregister_stream_abort_callback(id);
            result
        };
        let result = self
            .ctx
            .runtime
            .external_run_async_task(task)
            .map_err(|e| cas_failure("xet runtime", e))?
            .map_err(|e| cas_failure(&format!("reading xet file {hash}"), e));
        if result.is_err() {
            self.forget(token_url);
        }
        result
    }

    /// Download the whole xet file `hash` into `path` (a staging file about to be edited).
    pub fn download_to(
        &self,
        token_url: &str,
        hash: &str,
        file_size: u64,
        path: &std::path::Path,
    ) -> Result<(), EffectFailure> {
        let session = self.session(token_url, true)?;
        let info = XetFileInfo::new(hash.to_string(), file_size);
        let path = path.to_path_buf();
        let task = async move { session.download_file(&info, &path).await.map_err(|e| e.to_string()) };
        let result = self
            .ctx
            .runtime
            .external_run_async_task(task)
            .map_err(|e| cas_failure("xet runtime", e))?
            .map_err(|e| cas_failure(&format!("downloading xet file {hash}"), e));
        if result.is_err() {
            self.forget(token_url);
        }
        result.map(|_| ())
    }

    /// Bytes received from CAS so far (chunk-cache hits excluded): the network cost of reads.
    pub fn transferred_bytes(&self) -> u64 {
        let guard = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        guard.values().map(|s| s.report().total_transfer_bytes_completed).sum()
    }
}

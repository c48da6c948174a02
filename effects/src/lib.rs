//! hfm-effects: executes what core asks for. Hub HTTP with ureq (bytes built and parsed by
//! `hfm_core::hub`), CAS range reads and uploads with the xet-core crates (and their disk chunk
//! cache), staging-file IO, the overlay's local layer.
//!
//! Every method here is blocking and safe to call from many threads at once; runtimes decide
//! where it runs. No filesystem policy lives here: failures are classified and handed back.

mod cas;
mod http;
mod layer;
pub mod secrets;
mod stage;
mod token;
mod upload;

pub use cas::{CacheSettings, CasReader};
pub use http::HubClient;
pub use layer::Layer;
pub use token::Credential;
pub use upload::CasWriter;

use hfm_core::{Completion, Effect, EffectFailure, LocalError};
use xet_runtime::config::XetConfig;
use xet_runtime::core::XetContext;

/// Executes effects for one mount.
pub struct Executor {
    pub hub: HubClient,
    pub cas: CasReader,
    pub writer: CasWriter,
    /// The overlay's local layer (`--overlay`).
    pub layer: Option<Layer>,
}

impl Executor {
    /// The executor of one mount: one xet-core runtime shared by reads and uploads.
    pub fn new(hub: HubClient, cache: CacheSettings) -> Result<Self, String> {
        let ctx = xet_context()?;
        let xet_dir = cache.xet_dir.clone();
        Ok(Executor {
            cas: CasReader::new(ctx.clone(), hub.clone(), cache),
            writer: CasWriter::new(ctx, hub.clone(), xet_dir),
            hub,
            layer: None,
        })
    }

    /// Serve overlay effects from `layer`.
    pub fn with_layer(mut self, layer: Layer) -> Self {
        self.layer = Some(layer);
        self
    }
}

/// xet-core with its own retries off and short connection timeouts: core owns the retry
/// policy and the deadlines, so one failed call must come back promptly, not after xet-core's
/// minutes of retrying.
fn xet_context() -> Result<XetContext, String> {
    let config =
        [("client.retry_max_attempts", "1"), ("client.connect_timeout", "10s"), ("client.read_timeout", "60s")]
            .into_iter()
            .try_fold(XetConfig::new(), |c, (key, value)| c.with_config(key, value))
            .map_err(|e| format!("configuring xet-core: {e}"))?;
    XetContext::with_config(config).map_err(|e| format!("starting the xet runtime: {e}"))
}

impl hfm_driver::Executor for Executor {
    fn execute(&self, effect: Effect) -> Completion {
        let result = match &effect {
            Effect::HubGet { url } => self.hub.get(url).map(Completion::Http),
            Effect::HubRange { url, range } => {
                self.hub.get_range(url, range.clone()).map(|b| Completion::Bytes(vec![b]))
            }
            Effect::CasRange { token_url, xet_hash, file_size, range, chunk_cache } => {
                self.cas.read_range(token_url, xet_hash, *file_size, range.clone(), *chunk_cache).map(Completion::Bytes)
            }
            Effect::HubPost { url, content_type, body } => self.hub.post(url, content_type, body).map(Completion::Http),
            Effect::Stage(op) => stage::execute(op, &self.cas),
            Effect::Stream(op) => self.writer.stream(op),
            Effect::Upload { token_url, sources } => self.writer.upload(token_url, sources).map(Completion::Uploaded),
            Effect::Layer(op) => match &self.layer {
                Some(layer) => layer.execute(op),
                None => Err(EffectFailure::local(LocalError::Io, "this mount has no overlay layer")),
            },
        };
        result.unwrap_or_else(Completion::Failed)
    }
}

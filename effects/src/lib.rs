//! hfm-effects: executes what core asks for. Hub HTTP with ureq (bytes built and parsed by
//! `hfm_core::hub`), CAS range reads and uploads with the xet-core crates (and their disk chunk
//! cache), staging-file IO.
//!
//! Every method here is blocking and safe to call from many threads at once; runtimes decide
//! where it runs. No filesystem policy lives here: failures are classified and handed back.

mod cas;
mod http;
mod stage;
mod upload;

pub use cas::{CacheSettings, CasReader};
pub use http::HubClient;
pub use upload::CasWriter;

use hfm_core::{Completion, Effect};

/// Executes effects for one mount.
pub struct Executor {
    pub hub: HubClient,
    pub cas: CasReader,
    pub writer: CasWriter,
}

impl hfm_driver::Executor for Executor {
    fn execute(&self, effect: Effect) -> Completion {
        let result = match &effect {
            Effect::HubGet { url } => self.hub.get(url).map(Completion::Http),
            Effect::HubRange { url, range } => {
                self.hub.get_range(url, range.clone()).map(|b| Completion::Bytes(vec![b]))
            }
            Effect::CasRange { token_url, xet_hash, file_size, range } => {
                self.cas.read_range(token_url, xet_hash, *file_size, range.clone()).map(Completion::Bytes)
            }
            Effect::HubPost { url, content_type, body } => self.hub.post(url, content_type, body).map(Completion::Http),
            Effect::Stage(op) => stage::execute(op, &self.cas),
            Effect::Stream(op) => self.writer.stream(op),
            Effect::Upload { token_url, sources } => self.writer.upload(token_url, sources).map(Completion::Uploaded),
        };
        result.unwrap_or_else(Completion::Failed)
    }
}

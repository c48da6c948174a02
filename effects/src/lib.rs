//! hfm-effects: executes what core asks for. Hub HTTP with ureq (bytes built and parsed by
//! `hfm_core::hub`), CAS range reads with the xet-core crates and their disk chunk cache.
//!
//! Every method here is blocking and safe to call from many threads at once; runtimes decide
//! where it runs. No filesystem policy lives here: failures are classified and handed back.

mod cas;
mod http;

pub use cas::{CacheSettings, CasReader};
pub use http::HubClient;

use hfm_core::{Completion, Effect};

/// Executes effects for one mount.
pub struct Executor {
    pub hub: HubClient,
    pub cas: CasReader,
}

impl Executor {
    pub fn execute(&self, effect: &Effect) -> Completion {
        let result = match effect {
            Effect::HubGet { url } => self.hub.get(url).map(Completion::Http),
            Effect::HubRange { url, range } => {
                self.hub.get_range(url, range.clone()).map(|b| Completion::Bytes(vec![b]))
            }
            Effect::CasRange { xet_hash, file_size, range } => {
                self.cas.read_range(xet_hash, *file_size, range.clone()).map(Completion::Bytes)
            }
        };
        result.unwrap_or_else(Completion::Failed)
    }
}

//! Hub HTTP over ureq: GETs with the user's bearer token, returned as status + headers + body for
//! core to interpret, and ranged GETs of regular files.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hfm_core::hub::failure_from_response;
use hfm_core::{EffectFailure, FailureKind, HttpResponse};

use crate::token::Credential;

fn read_response(
    mut resp: ureq::http::Response<ureq::Body>,
    method: &str,
    url: &str,
) -> Result<HttpResponse, EffectFailure> {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
        .collect();
    let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(|e| {
        EffectFailure::new(FailureKind::Transient, Some(status), format!("{method} {url}: reading body: {e}"))
    })?;
    Ok(HttpResponse { status, headers, body: Bytes::from(body) })
}

/// Hub responses larger than this are refused (tree pages are a few hundred KiB).
const MAX_BODY: u64 = 256 << 20;

#[derive(Clone)]
pub struct HubClient {
    agent: ureq::Agent,
    token: Credential,
    user_agent: String,
}

impl HubClient {
    pub fn new(token: Credential, frontend: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .max_redirects(0)
            .build()
            .into();
        HubClient { agent, token, user_agent: format!("hf-mount/{}; fs/{frontend}", env!("CARGO_PKG_VERSION")) }
    }

    /// The Hub token to send now.
    pub fn token(&self) -> Option<Arc<str>> {
        self.token.current()
    }

    fn send(&self, url: &str, range: Option<&Range<u64>>) -> Result<HttpResponse, EffectFailure> {
        let mut req = self.agent.get(url).header("user-agent", &self.user_agent).header("accept-encoding", "identity");
        if let Some(t) = self.token() {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        if let Some(r) = range {
            req = req.header("range", &format!("bytes={}-{}", r.start, r.end - 1));
        }
        let resp =
            req.call().map_err(|e| EffectFailure::new(FailureKind::Transient, None, format!("GET {url}: {e}")))?;
        read_response(resp, "GET", url)
    }

    /// GET a Hub URL; any HTTP status is a success here (core classifies it).
    pub fn get(&self, url: &str) -> Result<HttpResponse, EffectFailure> {
        self.send(url, None)
    }

    /// POST `body` to a Hub URL; any HTTP status is a success here (core classifies it).
    pub fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<HttpResponse, EffectFailure> {
        let mut req = self.agent.post(url).header("user-agent", &self.user_agent).header("content-type", content_type);
        if let Some(t) = self.token() {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let resp =
            req.send(body).map_err(|e| EffectFailure::new(FailureKind::Transient, None, format!("POST {url}: {e}")))?;
        read_response(resp, "POST", url)
    }

    /// GET `range` of a regular file through its resolve URL.
    pub fn get_range(&self, url: &str, range: Range<u64>) -> Result<Bytes, EffectFailure> {
        let resp = self.send(url, Some(&range))?;
        let want = (range.end - range.start) as usize;
        match resp.status {
            206 if resp.body.len() == want => Ok(resp.body),
            // A server that ignores Range sends the whole file.
            200 if resp.body.len() as u64 >= range.end => Ok(resp.body.slice(range.start as usize..range.end as usize)),
            200 | 206 => Err(EffectFailure::new(
                FailureKind::Transient,
                Some(resp.status),
                format!("GET {url}: expected {want} bytes for {range:?}, got {}", resp.body.len()),
            )),
            _ => Err(failure_from_response(&resp)),
        }
    }
}

//! Arbitrary tree pages (and Link headers) fed to the filesystem core, of a repo mount or a
//! writable bucket mount: it must answer every request with some reply and never panic,
//! whatever the Hub sends.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use hfm_core::config::{ReadPolicy, Source, WriteMode, WritePolicy};
use hfm_core::hub::{HubUrls, RepoKind, RepoRef};
use hfm_core::{Completion, Filesystem, HttpResponse, Instant, MountConfig, Request, RequestId, ROOT_INO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, String, String, bool)| {
    let (body, link, name, bucket) = input;
    let (source, mode) = if bucket {
        (Source::Bucket { id: "a/b".into() }, WriteMode::Advanced)
    } else {
        let repo = RepoRef { kind: RepoKind::Model, id: "a/b".into() };
        (Source::Repo { repo, commit: "0".repeat(40), follow: None }, WriteMode::ReadOnly)
    };
    let cfg = MountConfig {
        urls: HubUrls::new("http://hub"),
        source,
        subfolder: String::new(),
        uid: 0,
        gid: 0,
        metadata_ttl: Duration::from_secs(1),
        mtime_secs: 0,
        policy: ReadPolicy::default(),
        writes: WritePolicy { mode, ..WritePolicy::default() },
        wall_ms_at_zero: 0,
        poll_interval: None,
    };
    let mut fs = Filesystem::new(cfg);
    fs.handle_request(RequestId(1), Request::ReadDir { ino: ROOT_INO, offset: 0, plus: true }, Instant::ZERO);
    fs.handle_request(RequestId(2), Request::Lookup { parent: ROOT_INO, name }, Instant::ZERO);
    let mut answered = 0;
    for round in 0..4 {
        let Some((id, _)) = fs.poll_effect() else { break };
        let headers = if round == 0 { vec![("link".to_string(), link.clone())] } else { vec![] };
        let resp = HttpResponse { status: 200, headers, body: Bytes::from(body.clone()) };
        fs.handle_completion(id, Completion::Http(resp), Instant::ZERO);
        while fs.poll_reply().is_some() {
            answered += 1;
        }
    }
    // Once no listing page is outstanding, both requests must have been answered (with entries
    // or an error), never dropped.
    if !fs.is_busy() {
        assert_eq!(answered, 2, "a request was left unanswered");
    }
});

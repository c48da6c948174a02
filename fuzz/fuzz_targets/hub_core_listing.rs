//! Arbitrary tree pages (and Link headers) fed to the filesystem core, of a repo mount or a
//! writable bucket mount: it must answer every request with some reply and never panic,
//! whatever the Hub sends.
#![no_main]

use bytes::Bytes;
use hfm_core::config::{Source, WriteMode, WritePolicy};
use hfm_core::hub::{HubUrls, RepoKind, RepoRef};
use hfm_core::{Caller, Completion, DirBudget, Effect, Filesystem, HttpResponse, Instant, MountConfig, Request, RequestId, ROOT_INO};
use libfuzzer_sys::fuzz_target;

fn ok(body: &str) -> Completion {
    Completion::Http(HttpResponse { status: 200, headers: vec![], body: Bytes::from(body.to_string()) })
}

fuzz_target!(|input: (Vec<u8>, String, String, bool)| {
    let (body, link, name, bucket) = input;
    let source = if bucket {
        Source::Bucket { id: "a/b".into() }
    } else {
        Source::Repo { repo: RepoRef { kind: RepoKind::Model, id: "a/b".into() }, revision: "main".into() }
    };
    let mut cfg = MountConfig::new(HubUrls::new("http://hub"), source);
    cfg.writes = WritePolicy { mode: if bucket { WriteMode::Advanced } else { WriteMode::ReadOnly }, ..WritePolicy::default() };
    let mut fs = Filesystem::new(cfg);
    // Resolve the mount with well-formed answers.
    while fs.poll_mounted().is_none() {
        let Some((id, effect)) = fs.poll_effect() else { return };
        let answer = match effect {
            Effect::HubGet { url } if url.ends_with("/revision/main") => {
                ok(r#"{"id":"a/b","sha":"0123456789012345678901234567890123456789"}"#)
            }
            Effect::HubGet { url } if url.ends_with("/api/buckets/a/b") => ok(r#"{"updatedAt":"2026-01-01T00:00:00.000Z"}"#),
            _ => ok("{}"),
        };
        fs.handle_completion(id, answer, Instant::ZERO);
    }
    let budget = DirBudget { bytes: 4096, entry_fixed: 152, name_align: 8 };
    fs.handle_request(RequestId(1), Caller::default(), Request::ReadDir { ino: ROOT_INO, offset: 0, plus: true, budget }, Instant::ZERO);
    fs.handle_request(RequestId(2), Caller::default(), Request::Lookup { parent: ROOT_INO, name }, Instant::ZERO);
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

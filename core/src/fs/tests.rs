//! Unit tests of the filesystem state machine, driven request by request.

use super::*;
use crate::config::{WriteMode, WritePolicy};

#[test]
fn subtract_ranges() {
    assert_eq!(subtract(0..10, &[2..4, 6..7]), vec![0..2, 4..6, 7..10]);
    assert_eq!(subtract(0..10, std::slice::from_ref(&(0..10))), Vec::<Range<u64>>::new());
    assert_eq!(subtract(5..10, &[0..6, 9..20]), vec![6..9]);
}

fn config(source: Source, mode: WriteMode) -> MountConfig {
    MountConfig {
        urls: hub::HubUrls::new("http://hub"),
        source,
        subfolder: String::new(),
        uid: 7,
        gid: 8,
        metadata_ttl: std::time::Duration::from_secs(1),
        mtime_secs: 0,
        policy: crate::config::ReadPolicy::default(),
        writes: WritePolicy { mode, ..WritePolicy::default() },
        wall_ms_at_zero: 0,
        poll_interval: None,
    }
}

fn fs() -> Filesystem {
    let repo = hub::RepoRef { kind: hub::RepoKind::Model, id: "a/b".into() };
    Filesystem::new(config(Source::Repo { repo, commit: "0".repeat(40), follow: None }, WriteMode::ReadOnly))
}

fn answer(fs: &mut Filesystem, req: Request) -> Reply {
    fs.handle_request(RequestId(1), req, Instant::ZERO);
    let (id, reply) = fs.poll_reply().expect("answered without any IO");
    assert_eq!(id, RequestId(1));
    reply
}

fn errno(reply: Reply) -> Errno {
    match reply {
        Reply::Error(e) => e.errno,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn writes_are_read_only_and_local_answers_need_no_io() {
    let mut fs = fs();
    assert_eq!(
        errno(answer(
            &mut fs,
            Request::Mkdir { parent: ROOT_INO, name: "d".into(), mode: 0o755, owner: Default::default() }
        )),
        Errno::RoFs
    );
    assert_eq!(errno(answer(&mut fs, Request::Access { ino: ROOT_INO, write: true })), Errno::RoFs);
    assert_eq!(answer(&mut fs, Request::Access { ino: ROOT_INO, write: false }), Reply::Empty);
    assert_eq!(answer(&mut fs, Request::Flush { ino: ROOT_INO, fh: 1 }), Reply::Empty);
    assert_eq!(errno(answer(&mut fs, Request::GetAttr { ino: 99 })), Errno::NoEnt);
    assert_eq!(errno(answer(&mut fs, Request::Open { ino: ROOT_INO, write: false, truncate: false })), Errno::IsDir);
    assert_eq!(errno(answer(&mut fs, Request::Read { ino: ROOT_INO, fh: None, offset: 0, size: 1 })), Errno::IsDir);
    match answer(&mut fs, Request::GetAttr { ino: ROOT_INO }) {
        Reply::Attr { attr, .. } => {
            assert_eq!((attr.kind, attr.perm, attr.uid, attr.gid), (FileKind::Directory, 0o555, 7, 8))
        }
        other => panic!("{other:?}"),
    }
    assert!(fs.poll_effect().is_none(), "none of these needs the Hub");
}

#[test]
fn lookup_waits_for_the_listing_then_answers() {
    let mut fs = fs();
    fs.handle_request(RequestId(1), Request::Lookup { parent: ROOT_INO, name: "f".into() }, Instant::ZERO);
    fs.handle_request(RequestId(2), Request::Lookup { parent: ROOT_INO, name: "nope".into() }, Instant::ZERO);
    assert!(fs.poll_reply().is_none());
    let (eid, effect) = fs.poll_effect().expect("one listing fetch");
    assert_eq!(effect, Effect::HubGet { url: format!("http://hub/api/models/a/b/tree/{}?limit=1000", "0".repeat(40)) });
    assert!(fs.poll_effect().is_none(), "the second lookup shares the first fetch");
    let body = br#"[{"type":"file","oid":"x","size":3,"path":"f"}]"#;
    let page = crate::effect::HttpResponse { status: 200, headers: vec![], body: Bytes::from_static(body) };
    fs.handle_completion(eid, Completion::Http(page), Instant::ZERO);
    assert!(matches!(fs.poll_reply(), Some((RequestId(1), Reply::Entry { attr, .. })) if attr.size == 3));
    assert!(matches!(fs.poll_reply(), Some((RequestId(2), Reply::Error(e))) if e.errno == Errno::NoEnt));
}

#[test]
fn child_names() {
    assert_eq!(child_name("", "a.txt"), Some("a.txt"));
    assert_eq!(child_name("d", "d/a"), Some("a"));
    assert_eq!(child_name("d", "d/a/b"), None);
    assert_eq!(child_name("d", "dx/a"), None);
    assert_eq!(child_name("", ".."), None);
}

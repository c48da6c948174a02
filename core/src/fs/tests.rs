//! Unit tests of the filesystem state machine, driven request by request with canned Hub
//! answers: the decisions core owns (mount-time resolution and its retries, pinned or followed
//! revisions, readdir filled to a byte budget, `.`/`..` attributes, `TimeSet::Now`, typed local
//! and auth failures, permission checks, creates without open, stable identities).

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::config::{AccessPolicy, WritePolicy};
use crate::effect::HttpResponse;
use crate::hub::{HubUrls, RepoKind};
use crate::request::{access, CreateHow, DirBudget, FileKind, SetAttr, Stability, TimeSet};
use crate::ROOT_INO;

const SHA: &str = "0123456789012345678901234567890123456789";

fn http(status: u16, body: &str) -> Completion {
    Completion::Http(HttpResponse { status, headers: vec![], body: Bytes::from(body.to_string()) })
}

fn repo_cfg(revision: &str) -> MountConfig {
    let repo = RepoRef { kind: RepoKind::Model, id: "a/b".into() };
    let mut cfg = MountConfig::new(HubUrls::new("http://hub"), Source::Repo { repo, revision: revision.into() });
    cfg.uid = 7;
    cfg.gid = 8;
    cfg.poll_interval = Some(Duration::from_secs(30));
    cfg
}

fn bucket_cfg(mode: WriteMode) -> MountConfig {
    let mut cfg = MountConfig::new(HubUrls::new("http://hub"), Source::Bucket { id: "n/b".into() });
    cfg.writes = WritePolicy { mode, staging_dir: "/s/".into(), ..WritePolicy::default() };
    cfg.wall_ms_at_zero = 1_000;
    cfg
}

/// The next effect, which must be a GET of `url`.
fn expect_get(fs: &mut Filesystem, url: &str) -> EffectId {
    match fs.poll_effect() {
        Some((id, Effect::HubGet { url: got })) if got == url => id,
        other => panic!("expected GET {url}, got {other:?}"),
    }
}

/// A repo mount at `revision`, resolved; the root listing holds `tree` (JSON).
fn repo_fs(revision: &str, tree: &str) -> Filesystem {
    repo_fs_with(repo_cfg(revision), revision, tree)
}

fn repo_fs_with(cfg: MountConfig, revision: &str, tree: &str) -> Filesystem {
    let mut fs = Filesystem::new(cfg);
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/revision/{revision}"));
    let info = format!(r#"{{"id":"a/b","sha":"{SHA}","lastModified":"2026-01-02T03:04:05.000Z"}}"#);
    fs.handle_completion(id, http(200, &info), Instant::ZERO);
    assert!(matches!(fs.poll_mounted(), Some(Ok(_))));
    fs.handle_request(RequestId(999), Caller::default(), Request::GetAttr { ino: ROOT_INO }, Instant::ZERO);
    fs.poll_reply();
    let list = Request::ReadDir { ino: ROOT_INO, offset: 0, plus: false, budget: fuse_budget(false) };
    fs.handle_request(RequestId(998), Caller::default(), list, Instant::ZERO);
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/tree/{SHA}?limit=1000"));
    fs.handle_completion(id, http(200, tree), Instant::ZERO);
    fs.poll_reply();
    fs
}

fn bucket_fs(mode: WriteMode, tree: &str) -> Filesystem {
    bucket_fs_with(bucket_cfg(mode), tree)
}

fn bucket_fs_with(cfg: MountConfig, tree: &str) -> Filesystem {
    let mode = cfg.writes.mode;
    let mut fs = Filesystem::new(cfg);
    let id = expect_get(&mut fs, "http://hub/api/buckets/n/b");
    fs.handle_completion(id, http(200, r#"{"updatedAt":"2026-01-01T00:00:00.000Z"}"#), Instant::ZERO);
    if mode != WriteMode::ReadOnly {
        let id = expect_get(&mut fs, "http://hub/api/buckets/n/b/xet-write-token");
        fs.handle_completion(id, http(200, r#"{"casUrl":"http://cas","accessToken":"t","exp":1}"#), Instant::ZERO);
    }
    assert!(matches!(fs.poll_mounted(), Some(Ok(_))));
    let list = Request::ReadDir { ino: ROOT_INO, offset: 0, plus: false, budget: fuse_budget(false) };
    fs.handle_request(RequestId(998), Caller::default(), list, Instant::ZERO);
    let id = expect_get(&mut fs, "http://hub/api/buckets/n/b/tree?recursive=false&limit=1000");
    fs.handle_completion(id, http(200, tree), Instant::ZERO);
    fs.poll_reply();
    fs
}

fn fuse_budget(plus: bool) -> DirBudget {
    DirBudget { bytes: 4096, entry_fixed: if plus { 152 } else { 24 }, name_align: 8 }
}

fn answer(fs: &mut Filesystem, req: Request) -> Reply {
    answer_as(fs, Caller::new(7, 8), req)
}

fn answer_as(fs: &mut Filesystem, caller: Caller, req: Request) -> Reply {
    fs.handle_request(RequestId(1), caller, req, Instant::ZERO);
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

fn entry(reply: Reply) -> crate::request::Attr {
    match reply {
        Reply::Entry { attr, .. } | Reply::Created { attr, .. } => attr,
        other => panic!("expected an entry, got {other:?}"),
    }
}

#[test]
fn subtract_ranges() {
    use super::read::subtract;
    assert_eq!(subtract(0..10, &[2..4, 6..7]), vec![0..2, 4..6, 7..10]);
    assert_eq!(subtract(0..10, std::slice::from_ref(&(0..10))), Vec::<std::ops::Range<u64>>::new());
    assert_eq!(subtract(5..10, &[0..6, 9..20]), vec![6..9]);
}

#[test]
fn requests_wait_for_the_mount_and_a_branch_is_followed() {
    let mut fs = Filesystem::new(repo_cfg("main"));
    fs.handle_request(RequestId(5), Caller::default(), Request::GetAttr { ino: ROOT_INO }, Instant::ZERO);
    assert!(fs.poll_reply().is_none(), "a request before the mount waits");
    let id = expect_get(&mut fs, "http://hub/api/models/a/b/revision/main");
    // A transient failure is retried with core's policy, on a timer.
    fs.handle_completion(id, http(503, "busy"), Instant::ZERO);
    let retry_at = fs.poll_timeout().expect("a retry timer");
    assert!(retry_at > Instant::ZERO);
    fs.handle_timeout(retry_at);
    let id = expect_get(&mut fs, "http://hub/api/models/a/b/revision/main");
    fs.handle_completion(id, http(200, &format!(r#"{{"id":"a/b","sha":"{SHA}"}}"#)), retry_at);
    let info = fs.poll_mounted().expect("an outcome").expect("mounted");
    assert_eq!(info.label, "a/b@012345678901");
    assert!(!info.writable);
    assert!(matches!(fs.poll_reply(), Some((RequestId(5), Reply::Attr { .. }))));
    // A branch is followed: the poll resolves it again.
    assert!(matches!(fs.remote, Remote::Repo { follow: Some(ref b), .. } if b == "main"));
    assert_eq!(fs.poll_timeout(), Some(retry_at.saturating_add(Duration::from_secs(30))));
}

#[test]
fn a_commit_sha_is_pinned_and_keeps_the_page_cache() {
    let tree = r#"[{"type":"file","oid":"x","size":3,"path":"f"}]"#;
    let mut fs = repo_fs(SHA, tree);
    assert!(matches!(fs.remote, Remote::Repo { follow: None, .. }));
    assert_eq!(fs.poll_timeout(), None, "a pinned commit is never polled");
    let f = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: "f".into() }));
    let open = Request::Open { ino: f.ino, write: false, truncate: false };
    assert!(matches!(answer(&mut fs, open.clone()), Reply::Open { keep_cache: false, .. }), "nothing cached yet");
    assert!(matches!(answer(&mut fs, open), Reply::Open { keep_cache: true, .. }), "the same content again");
}

#[test]
fn mount_failures_are_one_line_with_a_hint() {
    let mut fs = Filesystem::new(repo_cfg("nope"));
    fs.handle_request(RequestId(5), Caller::default(), Request::StatFs, Instant::ZERO);
    let id = expect_get(&mut fs, "http://hub/api/models/a/b/revision/nope");
    fs.handle_completion(id, http(401, r#"{"error":"who are you"}"#), Instant::ZERO);
    let err = fs.poll_mounted().expect("an outcome").expect_err("failed");
    assert_eq!(err.detail, "resolving a/b at \"nope\": HTTP 401: who are you (private or missing? pass --hf-token)");
    assert!(matches!(fs.poll_reply(), Some((RequestId(5), Reply::Error(_)))), "waiting requests fail too");
    let mut fs = Filesystem::new(repo_cfg("bad..rev"));
    let err = fs.poll_mounted().expect("an outcome").expect_err("refused");
    assert!(err.detail.contains("invalid revision"), "{err}");
    assert!(fs.poll_effect().is_none());
}

#[test]
fn a_bucket_that_is_a_repo_says_so() {
    let mut fs = Filesystem::new(bucket_cfg(WriteMode::Streaming));
    let id = expect_get(&mut fs, "http://hub/api/buckets/n/b");
    fs.handle_completion(id, http(404, r#"{"error":"RepoNotFound"}"#), Instant::ZERO);
    let probes: Vec<_> = std::iter::from_fn(|| fs.poll_effect()).collect();
    assert_eq!(probes.len(), 3);
    for (n, (id, _)) in probes.into_iter().enumerate() {
        let status = if n == 1 { 200 } else { 404 };
        fs.handle_completion(id, http(status, "{}"), Instant::ZERO);
    }
    let err = fs.poll_mounted().expect("an outcome").expect_err("failed");
    assert!(err.detail.starts_with("bucket n/b: HTTP 404"), "{err}");
    assert!(err.detail.ends_with("n/b is a repo: mount it with the `repo` command"), "{err}");
}

#[test]
fn read_only_answers_need_no_io() {
    let mut fs = repo_fs(SHA, "[]");
    let mkdir = Request::Mkdir { parent: ROOT_INO, name: "d".into(), mode: 0o755 };
    assert_eq!(errno(answer(&mut fs, mkdir)), Errno::RoFs);
    assert_eq!(answer(&mut fs, Request::Access { ino: ROOT_INO, mask: access::READ }), Reply::Access { allowed: 4 });
    assert_eq!(answer(&mut fs, Request::Flush { ino: ROOT_INO, fh: 1 }), Reply::Empty);
    assert_eq!(errno(answer(&mut fs, Request::GetAttr { ino: 99 })), Errno::NoEnt);
    assert_eq!(errno(answer(&mut fs, Request::Open { ino: ROOT_INO, write: false, truncate: false })), Errno::IsDir);
    match answer(&mut fs, Request::GetAttr { ino: ROOT_INO }) {
        Reply::Attr { attr, .. } => {
            assert_eq!((attr.kind, attr.perm, attr.uid, attr.gid), (FileKind::Directory, 0o555, 7, 8));
            assert_eq!(attr.mtime_ns, 1_767_323_045_000_000_000, "the commit date");
        }
        other => panic!("{other:?}"),
    }
    assert!(fs.poll_effect().is_none(), "none of these needs the Hub");
}

#[test]
fn readdir_fills_its_budget_and_counts_only_what_it_sent() {
    let names: Vec<String> =
        (0..100).map(|i| format!(r#"{{"type":"file","oid":"x","size":1,"path":"file-{i:03}"}}"#)).collect();
    let mut fs = repo_fs(SHA, &format!("[{}]", names.join(",")));
    let budget = fuse_budget(true);
    let mut offset = 0;
    let mut seen = Vec::new();
    loop {
        let r = answer(&mut fs, Request::ReadDir { ino: ROOT_INO, offset, plus: true, budget });
        let Reply::Dir { entries, eof, .. } = r else { panic!("{r:?}") };
        let used: u64 = entries.iter().map(|e| budget.entry_size(e.name.len())).sum();
        assert!(used <= u64::from(budget.bytes), "{used} bytes in a {}-byte budget", budget.bytes);
        for e in &entries {
            let attr = e.attr.as_ref().expect("plus entries carry attributes");
            match e.name.as_str() {
                // `.` and `..` get real attributes from core and are not lookups.
                "." | ".." => {
                    assert_eq!((attr.kind, attr.perm, attr.ino), (FileKind::Directory, 0o555, ROOT_INO));
                    assert!(!e.lookup);
                }
                _ => assert!(e.lookup),
            }
            offset = e.next_offset;
            seen.push(e.name.clone());
        }
        if eof {
            break;
        }
        assert!(!entries.is_empty());
    }
    assert_eq!(seen.len(), 102);
    let file = fs.inodes.child(ROOT_INO, "file-050").unwrap();
    assert_eq!(fs.inodes.get(file).unwrap().lookups, 1, "each delivered entry counted once");
    let tiny = DirBudget { bytes: 10, entry_fixed: 24, name_align: 8 };
    let r = answer(&mut fs, Request::ReadDir { ino: ROOT_INO, offset: 0, plus: false, budget: tiny });
    assert_eq!(errno(r), Errno::TooSmall);
}

#[test]
fn stable_identities_across_mounts() {
    let tree = r#"[{"type":"directory","oid":"t","size":0,"path":"d"}]"#;
    let mut a = repo_fs(SHA, tree);
    let mut b = repo_fs(SHA, tree);
    let da = entry(answer(&mut a, Request::Lookup { parent: ROOT_INO, name: "d".into() }));
    let db = entry(answer(&mut b, Request::Lookup { parent: ROOT_INO, name: "d".into() }));
    assert_eq!(da.ino, db.ino, "the same path has the same inode in another process");
    assert!(matches!(answer(&mut a, Request::Resolve { ino: da.ino }), Reply::Entry { .. }));
}

#[test]
fn an_identity_from_another_process_resolves_by_one_search() {
    let tree = r#"[{"type":"directory","oid":"t","size":0,"path":"d"}]"#;
    let mut fs = repo_fs(SHA, tree);
    // A handle made by an earlier process for d/e/f.txt, which this one never looked up, and
    // one that names nothing: both wait for one recursive listing.
    let target = fs.inodes.identity_of("d/e/f.txt");
    let caller = Caller::new(7, 8);
    fs.handle_request(RequestId(5), caller.clone(), Request::Resolve { ino: target }, Instant::ZERO);
    fs.handle_request(RequestId(6), caller, Request::Resolve { ino: 99 }, Instant::ZERO);
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/tree/{SHA}?limit=1000&recursive=true"));
    assert!(fs.poll_effect().is_none(), "one search for both");
    assert!(fs.poll_reply().is_none());
    let all = r#"[{"type":"directory","oid":"t","size":0,"path":"d"},
                  {"type":"directory","oid":"t","size":0,"path":"d/e"},
                  {"type":"file","oid":"o","size":3,"path":"d/e/f.txt"}]"#;
    fs.handle_completion(id, http(200, all), Instant::ZERO);
    assert_eq!(fs.poll_reply().map(|(id, r)| (id, errno(r))), Some((RequestId(6), Errno::Stale)));
    // The path is walked as lookups would: each listing on the way, then the entry.
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/tree/{SHA}/d?limit=1000"));
    fs.handle_completion(id, http(200, r#"[{"type":"directory","oid":"t","size":0,"path":"d/e"}]"#), Instant::ZERO);
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/tree/{SHA}/d/e?limit=1000"));
    fs.handle_completion(id, http(200, r#"[{"type":"file","oid":"o","size":3,"path":"d/e/f.txt"}]"#), Instant::ZERO);
    match fs.poll_reply() {
        Some((RequestId(5), Reply::Entry { attr, .. })) => assert_eq!((attr.ino, attr.size), (target, 3)),
        other => panic!("{other:?}"),
    }
    // Known now: no more IO; a number the search did not find stays stale without another.
    assert!(matches!(answer(&mut fs, Request::Resolve { ino: target }), Reply::Entry { .. }));
    assert_eq!(errno(answer(&mut fs, Request::Resolve { ino: 98 })), Errno::Stale);
}

#[test]
fn time_now_is_cores_wall_clock_and_guards_hold() {
    let mut fs = bucket_fs(
        WriteMode::Advanced,
        r#"[{"type":"file","path":"f","size":0,"xetHash":"0000000000000000000000000000000000000000000000000000000000000000"}]"#,
    );
    let f = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: "f".into() }));
    let set = SetAttr { mtime: Some(TimeSet::Now), ..Default::default() };
    fs.handle_request(
        RequestId(1),
        Caller::new(7, 8),
        Request::SetAttr { ino: f.ino, set, guard_ctime: None },
        Instant::from_nanos(5),
    );
    let Some((_, Reply::Attr { attr, before: Some(before), .. })) = fs.poll_reply() else { panic!("setattr") };
    assert_eq!(attr.mtime_ns, 1_000_000_000 + 5, "wall_ms_at_zero + now");
    assert_eq!(before.ctime_ns, f.ctime_ns);
    let set = SetAttr { mode: Some(0o600), ..Default::default() };
    let stale = Request::SetAttr { ino: f.ino, set, guard_ctime: Some(before.ctime_ns) };
    assert_eq!(errno(answer(&mut fs, stale)), Errno::NotSync);
}

#[test]
fn create_without_open_exclusive_and_permissions() {
    let mut cfg = bucket_cfg(WriteMode::Advanced);
    cfg.access = AccessPolicy { check: true, owner_from_caller: false };
    cfg.uid = 1000;
    cfg.gid = 1000;
    let mut fs = bucket_fs_with(cfg, "[]");
    let owner = Caller::new(1000, 1000);
    let how = CreateHow::Exclusive { verifier: 77 };
    let create = Request::Create { parent: ROOT_INO, name: "x".into(), mode: 0o600, how, open: false };
    let r = answer_as(&mut fs, owner.clone(), create.clone());
    let Reply::Created { attr, fh: None, .. } = r else { panic!("{r:?}") };
    // Owned by the mount's uid (NFS identities are not trusted for ownership), not opened.
    assert_eq!((attr.uid, attr.perm), (1000, 0o600));
    // A retransmission finds its file; another verifier does not.
    assert_eq!(entry(answer_as(&mut fs, owner.clone(), create)).ino, attr.ino);
    let other = Request::Create {
        parent: ROOT_INO,
        name: "x".into(),
        mode: 0o600,
        how: CreateHow::Exclusive { verifier: 1 },
        open: false,
    };
    assert_eq!(errno(answer_as(&mut fs, owner.clone(), other)), Errno::Exist);
    // Another user can neither read nor write a 0600 file; the owner can.
    let stranger = Caller::new(2000, 2000);
    let write = |who: Caller, fs: &mut Filesystem| {
        let req = Request::Write {
            ino: attr.ino,
            fh: None,
            offset: 0,
            data: Bytes::from_static(b"hi"),
            stable: Stability::Unstable,
        };
        fs.handle_request(RequestId(3), who, req, Instant::ZERO);
    };
    write(stranger.clone(), &mut fs);
    assert!(matches!(fs.poll_reply(), Some((_, Reply::Error(e))) if e.errno == Errno::Acces));
    assert_eq!(
        answer_as(&mut fs, stranger.clone(), Request::Access { ino: attr.ino, mask: 7 }),
        Reply::Access { allowed: 0 }
    );
    let chmod =
        Request::SetAttr { ino: attr.ino, set: SetAttr { mode: Some(0o777), ..Default::default() }, guard_ctime: None };
    assert_eq!(errno(answer_as(&mut fs, stranger, chmod)), Errno::Perm);
    // A file used as a directory is ENOTDIR, whatever its mode says about searching it.
    let inside = Request::Lookup { parent: attr.ino, name: "y".into() };
    assert_eq!(errno(answer_as(&mut fs, Caller::new(0, 0), inside)), Errno::NotDir);
    write(owner, &mut fs);
    // The owner's write waits for the staging file (prepared, named by a journal record,
    // written), then is acknowledged.
    for step in ["prepare", "record", "edit"] {
        assert!(fs.poll_reply().is_none(), "acknowledged before the {step}");
        let (stage, _) = fs.poll_effect().expect(step);
        fs.handle_completion(stage, Completion::Done, Instant::ZERO);
    }
    assert!(matches!(
        fs.poll_reply(),
        Some((RequestId(3), Reply::Written { size: 2, committed: Stability::Unstable, .. }))
    ));
}

#[test]
fn a_full_local_disk_is_enospc_on_the_next_fsync() {
    let mut fs = bucket_fs(WriteMode::Advanced, "[]");
    let create =
        Request::Create { parent: ROOT_INO, name: "f".into(), mode: 0o644, how: CreateHow::Guarded, open: true };
    let Reply::Created { attr, .. } = answer(&mut fs, create) else { panic!("create") };
    let (prepare, _) = fs.poll_effect().expect("prepare");
    fs.handle_completion(prepare, Completion::Done, Instant::ZERO);
    let write = Request::Write {
        ino: attr.ino,
        fh: None,
        offset: 0,
        data: Bytes::from_static(b"x"),
        stable: Stability::Unstable,
    };
    fs.handle_request(RequestId(2), Caller::new(7, 8), write, Instant::ZERO);
    // The journal record naming the staging file is written before the write reaches it.
    let (record, effect) = fs.poll_effect().expect("the journal record");
    assert!(matches!(effect, Effect::Stage(crate::effect::StageOp::Journal { body: Some(_), .. })), "{effect:?}");
    assert!(fs.poll_effect().is_none(), "the edit waits for the record");
    fs.handle_completion(record, Completion::Done, Instant::ZERO);
    let (edit, _) = fs.poll_effect().expect("the edit");
    assert!(fs.poll_reply().is_none(), "a write is acknowledged once the staging file has it");
    let full = EffectFailure::local(crate::effect::LocalError::NoSpace, "disk full");
    fs.handle_completion(edit, Completion::Failed(full), Instant::ZERO);
    assert!(matches!(fs.poll_reply(), Some((RequestId(2), Reply::Error(e))) if e.errno == Errno::NoSpc));
    assert_eq!(errno(answer(&mut fs, Request::Fsync { ino: attr.ino })), Errno::NoSpc);
}

#[test]
fn a_poll_refused_for_auth_backs_off() {
    let mut cfg = bucket_cfg(WriteMode::ReadOnly);
    cfg.poll_interval = Some(Duration::from_secs(10));
    let mut fs = Filesystem::new(cfg);
    let id = expect_get(&mut fs, "http://hub/api/buckets/n/b");
    fs.handle_completion(id, http(200, r#"{"updatedAt":"2026-01-01T00:00:00.000Z"}"#), Instant::ZERO);
    let first = fs.poll_timeout().expect("a poll");
    assert_eq!(first, Instant::ZERO.saturating_add(Duration::from_secs(10)));
    fs.handle_timeout(first);
    let id = expect_get(&mut fs, "http://hub/api/buckets/n/b");
    fs.handle_completion(id, http(401, "expired"), first);
    assert_eq!(fs.poll_timeout(), Some(first.saturating_add(Duration::from_secs(20))), "the interval doubles");
}

#[test]
fn child_names() {
    use super::lookup::child_name;
    assert_eq!(child_name("", "a.txt"), Some("a.txt"));
    assert_eq!(child_name("d", "d/a"), Some("a"));
    assert_eq!(child_name("d", "d/a/b"), None);
    assert_eq!(child_name("d", "dx/a"), None);
    assert_eq!(child_name("", ".."), None);
}

/// Complete every effect with a plain in-memory disk and CAS until nothing is left (streaming
/// upload paths included); returns the effects it completed.
fn run_world(fs: &mut Filesystem, disk: &mut std::collections::BTreeMap<String, Vec<u8>>) -> Vec<Effect> {
    run_world_at(fs, disk, Instant::ZERO)
}

/// `run_world` with every completion at `now`.
fn run_world_at(
    fs: &mut Filesystem,
    disk: &mut std::collections::BTreeMap<String, Vec<u8>>,
    now: Instant,
) -> Vec<Effect> {
    use crate::effect::{StageEdit, StageOp, StreamOp, UploadSource};
    let mut seen = Vec::new();
    for _ in 0..100_000 {
        let Some((id, effect)) = fs.poll_effect() else { break };
        seen.push(effect.clone());
        let done = match effect {
            Effect::Stage(StageOp::Edit { path, edits }) => {
                let f = disk.entry(path).or_default();
                for e in edits {
                    match e {
                        StageEdit::Write { offset, data } => {
                            let end = offset as usize + data.len();
                            if f.len() < end {
                                f.resize(end, 0);
                            }
                            f[offset as usize..end].copy_from_slice(&data);
                        }
                        StageEdit::Truncate { size } => f.resize(size as usize, 0),
                    }
                }
                Completion::Done
            }
            Effect::Stage(StageOp::Read { path, range }) => {
                let f = disk.get(&path).cloned().unwrap_or_default();
                Completion::Bytes(vec![Bytes::copy_from_slice(
                    &f[range.start as usize..(range.end as usize).min(f.len())],
                )])
            }
            Effect::Stream(StreamOp::Append { stream, data, .. }) => {
                // What a stream took is kept on the "disk" too, so it outlives this call.
                data.iter().for_each(|d| disk.entry(format!("stream {stream}")).or_default().extend_from_slice(d));
                Completion::Done
            }
            Effect::Stream(StreamOp::Finish { stream }) => {
                let len = disk.remove(&format!("stream {stream}")).map_or(0, |b| b.len());
                Completion::Uploaded(vec![(format!("{len:064x}"), len as u64)])
            }
            Effect::Upload { sources, .. } => Completion::Uploaded(
                sources
                    .iter()
                    .map(|s| {
                        let len = match s {
                            UploadSource::Memory(c) => c.iter().map(|b| b.len()).sum(),
                            UploadSource::File(p) => disk.get(p).map_or(0, Vec::len),
                        };
                        (format!("{len:064x}"), len as u64)
                    })
                    .collect(),
            ),
            _ => Completion::Done,
        };
        fs.handle_completion(id, done, now);
    }
    seen
}

#[test]
fn a_large_file_written_in_order_is_streamed_in_both_modes_and_a_small_one_uploaded_whole() {
    use crate::effect::{StreamOp, UploadSource};
    let mib = 1usize << 20;
    for mode in [WriteMode::Streaming, WriteMode::Advanced] {
        // "dup": `dd` closes its first descriptor of the file (a FUSE flush) before writing
        // through the second, and writes for longer than the debounce.
        for (name, mibs) in [("big", 80u64), ("dup", 80), ("small", 3)] {
            let mut fs = bucket_fs(mode, "[]");
            let mut disk = Default::default();
            let create = Request::Create {
                parent: ROOT_INO,
                name: name.into(),
                mode: 0o644,
                how: CreateHow::Guarded,
                open: true,
            };
            let Reply::Created { attr, fh: Some(fh), .. } = answer(&mut fs, create) else { panic!("create") };
            let mut effects = run_world(&mut fs, &mut disk);
            if name == "dup" {
                fs.handle_request(RequestId(9), Caller::default(), Request::Flush { ino: attr.ino, fh }, Instant::ZERO);
                effects.extend(run_world(&mut fs, &mut disk));
            }
            let at = |i: u64| Instant::from_nanos(i * 50_000_000);
            for i in 0..mibs {
                let data = Bytes::from(vec![i as u8; mib]);
                let offset = i * mib as u64;
                let req = Request::Write { ino: attr.ino, fh: Some(fh), offset, data, stable: Stability::Unstable };
                fs.handle_timeout(at(i));
                fs.handle_request(RequestId(10 + i), Caller::default(), req, at(i));
                effects.extend(run_world_at(&mut fs, &mut disk, at(i)));
                while fs.poll_reply().is_some() {}
            }
            let end = at(mibs);
            fs.handle_request(RequestId(201), Caller::default(), Request::Fsync { ino: attr.ino }, end);
            fs.handle_request(RequestId(200), Caller::default(), Request::Release { fh }, end);
            effects.extend(run_world_at(&mut fs, &mut disk, end));
            let appended: usize = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Stream(StreamOp::Append { data, .. }) => Some(data.iter().map(Bytes::len).sum::<usize>()),
                    _ => None,
                })
                .sum();
            let finished = effects.iter().any(|e| matches!(e, Effect::Stream(StreamOp::Finish { .. })));
            let whole = effects.iter().any(|e| {
                matches!(e, Effect::Upload { sources, .. }
                    if sources.iter().any(|s| matches!(s, UploadSource::File(_) | UploadSource::Memory(_))))
            });
            match name {
                "big" | "dup" => {
                    assert_eq!(appended, 80 * mib, "{mode:?} {name}: every byte went to the stream");
                    assert!(finished && !whole, "{mode:?} {name}: the stream finished, no whole-file upload");
                    assert_eq!(fs.stats().bytes_streamed, 80 * mib as u64, "{mode:?} {name}: counted as streamed");
                }
                _ => assert!(appended == 0 && !finished && whole, "{mode:?}: a small file is uploaded whole"),
            }
            let fsync = std::iter::from_fn(|| fs.poll_reply()).find(|(id, _)| *id == RequestId(201));
            assert!(
                matches!(fsync, Some((_, Reply::Empty))),
                "{mode:?} {name}: the fsync is answered once saved: {fsync:?}"
            );
        }
    }
}

#[test]
fn writes_wait_while_more_than_the_stream_buffer_waits_for_the_stream() {
    use crate::effect::StreamOp;
    let mib = 1u64 << 20;
    let mut fs = bucket_fs(WriteMode::Streaming, "[]");
    let create =
        Request::Create { parent: ROOT_INO, name: "big".into(), mode: 0o644, how: CreateHow::Guarded, open: true };
    let Reply::Created { attr, fh: Some(fh), .. } = answer(&mut fs, create) else { panic!("create") };
    // The upload stream takes its first append and does not finish it: the writer runs ahead.
    let mut held_append = None;
    let mut answered = Vec::new();
    for i in 0..24 {
        let data = Bytes::from(vec![i as u8; mib as usize]);
        let req = Request::Write { ino: attr.ino, fh: Some(fh), offset: i * mib, data, stable: Stability::Unstable };
        fs.handle_request(RequestId(10 + i), Caller::default(), req, Instant::ZERO);
        while let Some((id, effect)) = fs.poll_effect() {
            match effect {
                Effect::Stream(StreamOp::Append { .. }) if held_append.is_none() => held_append = Some(id),
                other => panic!("only the stream's first append is expected, got {other:?}"),
            }
        }
        answered.extend(std::iter::from_fn(|| fs.poll_reply()).map(|(id, _)| id.0 - 10));
    }
    let last_answered = answered.iter().max().copied().unwrap_or_default();
    assert_eq!(answered, (0..=last_answered).collect::<Vec<_>>(), "writes are answered in order");
    // 16 MiB may wait for the stream; the write past that waits, and the ones after it.
    assert_eq!(last_answered, 15, "the 17th MiB waits: {answered:?}");

    // The stream takes its append: the waiting writes are answered as it catches up.
    let append = held_append.expect("the stream opened at its threshold");
    fs.handle_completion(append, Completion::Done, Instant::ZERO);
    let mut later: Vec<u64> = std::iter::from_fn(|| fs.poll_reply()).map(|(id, _)| id.0 - 10).collect();
    later.sort_unstable();
    assert_eq!(later, (16..24).collect::<Vec<_>>(), "every waiting write is answered once the stream catches up");
}

#[test]
fn streaming_takes_holes_rewrites_and_punches() {
    let mut fs = bucket_fs(WriteMode::Streaming, "[]");
    let mut disk = Default::default();
    let create =
        Request::Create { parent: ROOT_INO, name: "f".into(), mode: 0o644, how: CreateHow::Guarded, open: true };
    let Reply::Created { attr, fh: Some(fh), .. } = answer(&mut fs, create) else { panic!("create") };
    let write = |fs: &mut Filesystem, offset: u64, len: usize| {
        let req = Request::Write {
            ino: attr.ino,
            fh: Some(fh),
            offset,
            data: Bytes::from(vec![7u8; len]),
            stable: Stability::Unstable,
        };
        fs.handle_request(RequestId(2), Caller::default(), req, Instant::ZERO);
    };
    write(&mut fs, 2027, 1352);
    write(&mut fs, 5201, 1326);
    let punch =
        Request::Fallocate { ino: attr.ino, offset: 1981, length: 2534, mode: crate::request::FallocMode::PunchHole };
    fs.handle_request(RequestId(3), Caller::default(), punch, Instant::ZERO);
    run_world(&mut fs, &mut disk);
    while fs.poll_reply().is_some() {}
    let read = Request::Read { ino: attr.ino, fh: None, offset: 0, size: 10_000 };
    fs.handle_request(RequestId(4), Caller::default(), read, Instant::ZERO);
    run_world(&mut fs, &mut disk);
    let Some((_, Reply::Data { data, .. })) = fs.poll_reply() else { panic!("read") };
    let mut want = vec![0u8; 6527];
    want[2027..3379].fill(7);
    want[5201..].fill(7);
    want[1981..4515].fill(0);
    assert_eq!(data.len(), want.len());
    assert!(data[..] == want[..], "first difference at {:?}", data.iter().zip(&want).position(|(a, b)| a != b));
}

#[test]
fn os_metadata_files_are_neither_created_nor_listed_on_a_bucket() {
    let tree = r#"[{"type":"file","path":".DS_Store","size":3,"xetHash":"aa00000000000000000000000000000000000000000000000000000000000000","mtime":"2026-01-01T00:00:00.000Z"},
                  {"type":"file","path":"kept.txt","size":3,"xetHash":"bb00000000000000000000000000000000000000000000000000000000000000","mtime":"2026-01-01T00:00:00.000Z"}]"#;
    let names = |fs: &mut Filesystem| {
        let list = Request::ReadDir { ino: ROOT_INO, offset: 0, plus: false, budget: fuse_budget(false) };
        match answer(fs, list) {
            Reply::Dir { entries, .. } => entries.into_iter().map(|e| e.name).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        }
    };
    let mut fs = bucket_fs(WriteMode::Advanced, tree);
    assert_eq!(names(&mut fs), [".", "..", "kept.txt"]);
    let lookup = Request::Lookup { parent: ROOT_INO, name: ".DS_Store".into() };
    assert_eq!(errno(answer(&mut fs, lookup)), Errno::NoEnt);
    for name in [".DS_Store", "._kept.txt", "Thumbs.db"] {
        let create =
            Request::Create { parent: ROOT_INO, name: name.into(), mode: 0o644, how: CreateHow::Unchecked, open: true };
        assert_eq!(errno(answer(&mut fs, create)), Errno::Acces, "{name}");
    }
    let mkdir = Request::Mkdir { parent: ROOT_INO, name: ".Trashes".into(), mode: 0o755 };
    assert_eq!(errno(answer(&mut fs, mkdir)), Errno::Acces);
    let kept = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: "kept.txt".into() })).ino;
    let rename = Request::Rename {
        parent: ROOT_INO,
        name: "kept.txt".into(),
        new_parent: ROOT_INO,
        new_name: "desktop.ini".into(),
        no_replace: false,
    };
    assert_eq!(errno(answer(&mut fs, rename)), Errno::Acces);
    assert!(kept > ROOT_INO);

    // --no-filter-os-files: shown and created like any file.
    let mut cfg = bucket_cfg(WriteMode::Advanced);
    cfg.filter_os_files = false;
    let mut fs = bucket_fs_with(cfg, tree);
    assert_eq!(names(&mut fs), [".", "..", ".DS_Store", "kept.txt"]);
    let mkdir = Request::Mkdir { parent: ROOT_INO, name: ".Trashes".into(), mode: 0o755 };
    entry(answer(&mut fs, mkdir));
}

#[test]
fn idle_listings_are_evicted_to_the_soft_limit_and_come_back_the_same() {
    let dirs: Vec<String> =
        (0..5).map(|d| format!(r#"{{"type":"directory","oid":"t","size":0,"path":"d{d}"}}"#)).collect();
    let mut cfg = repo_cfg(SHA);
    cfg.inode_soft_limit = Some(1000);
    cfg.lru_sweep_interval = Duration::from_secs(1);
    cfg.poll_interval = None;
    let mut fs = Filesystem::new(cfg);
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/revision/{SHA}"));
    let info = format!(r#"{{"id":"a/b","sha":"{SHA}","lastModified":"2026-01-02T03:04:05.000Z"}}"#);
    fs.handle_completion(id, http(200, &info), Instant::ZERO);
    let list = |fs: &mut Filesystem, dir: Ino, path: &str, body: &str| {
        let req = Request::ReadDir { ino: dir, offset: 0, plus: false, budget: fuse_budget(false) };
        fs.handle_request(RequestId(50), Caller::default(), req, Instant::ZERO);
        let sep = if path.is_empty() { "" } else { "/" };
        let id = expect_get(fs, &format!("http://hub/api/models/a/b/tree/{SHA}{sep}{path}?limit=1000"));
        fs.handle_completion(id, http(200, body), Instant::ZERO);
        while fs.poll_reply().is_some() {}
    };
    let files = |d: usize| -> String {
        let v: Vec<String> =
            (0..20).map(|f| format!(r#"{{"type":"file","oid":"x","size":1,"path":"d{d}/f{f:02}"}}"#)).collect();
        format!("[{}]", v.join(","))
    };
    list(&mut fs, ROOT_INO, "", &format!("[{}]", dirs.join(",")));
    let mut dir_inos = Vec::new();
    for d in 0..5 {
        let ino = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: format!("d{d}") })).ino;
        list(&mut fs, ino, &format!("d{d}"), &files(d));
        dir_inos.push(ino);
    }
    let before = entry(answer(&mut fs, Request::Lookup { parent: dir_inos[2], name: "f07".into() })).ino;
    // d2/f07 is held by the kernel, d3/f00 is open.
    let open_file = entry(answer(&mut fs, Request::Lookup { parent: dir_inos[3], name: "f00".into() })).ino;
    fs.handle_request(RequestId(60), Caller::default(), Request::Forget { ino: open_file, nlookup: 1 }, Instant::ZERO);
    fs.poll_reply();
    assert!(matches!(
        answer(&mut fs, Request::Open { ino: open_file, write: false, truncate: false }),
        Reply::Open { .. }
    ));
    assert_eq!(fs.inode_count(), 106);
    // Lowered now: far over it, the listings above would have swept at once.
    fs.cfg.inode_soft_limit = Some(10);

    let t1 = Instant::ZERO.saturating_add(Duration::from_secs(1));
    fs.handle_timeout(t1);
    // d0, d1 and d4 went (their files were never looked up); d2 waits for the kernel, which
    // is asked to forget f07; d3 stays for its open file.
    assert_eq!(fs.inode_count(), 106 - 60);
    let asked: Vec<KernelNotify> = std::iter::from_fn(|| fs.poll_notify()).collect();
    assert_eq!(asked, [KernelNotify::InvalidateEntry { parent: dir_inos[2], name: "f07".into() }]);
    fs.handle_request(RequestId(61), Caller::default(), Request::Forget { ino: before, nlookup: 1 }, t1);
    fs.poll_reply();
    let t2 = t1.saturating_add(Duration::from_secs(1));
    fs.handle_timeout(t2);
    assert_eq!(fs.inode_count(), 106 - 80);
    assert!(fs.poll_timeout().is_some_and(|at| at > t2), "the next sweep is scheduled");

    // An evicted directory is listed again on its next use; its files keep their numbers.
    fs.handle_request(
        RequestId(70),
        Caller::default(),
        Request::Lookup { parent: dir_inos[2], name: "f07".into() },
        t2,
    );
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/tree/{SHA}/d2?limit=1000"));
    fs.handle_completion(id, http(200, &files(2)), t2);
    let (_, reply) = fs.poll_reply().expect("answered once listed");
    assert_eq!(entry(reply).ino, before);
}

#[test]
fn a_remote_change_relists_at_most_poll_listing_concurrency_directories_at_once() {
    let dirs: Vec<String> = (0..6)
        .map(|d| format!(r#"{{"type":"directory","path":"d{d}","uploadedAt":"2026-01-01T00:00:00.000Z"}}"#))
        .collect();
    let mut cfg = bucket_cfg(WriteMode::ReadOnly);
    cfg.poll_interval = Some(Duration::from_secs(30));
    cfg.poll_listing_concurrency = 2;
    let mut fs = bucket_fs_with(cfg, &format!("[{}]", dirs.join(",")));
    for d in 0..6 {
        let ino = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: format!("d{d}") })).ino;
        let req = Request::ReadDir { ino, offset: 0, plus: false, budget: fuse_budget(false) };
        fs.handle_request(RequestId(40 + d), Caller::default(), req, Instant::ZERO);
        let id = expect_get(&mut fs, &format!("http://hub/api/buckets/n/b/tree/d{d}?recursive=false&limit=1000"));
        fs.handle_completion(id, http(200, "[]"), Instant::ZERO);
        while fs.poll_reply().is_some() {}
    }
    let poll_at = fs.poll_timeout().expect("the poll is scheduled");
    fs.handle_timeout(poll_at);
    let id = expect_get(&mut fs, "http://hub/api/buckets/n/b");
    fs.handle_completion(id, http(200, r#"{"updatedAt":"2026-01-02T00:00:00.000Z"}"#), poll_at);
    // Root and six directories are loaded: seven re-listings, two at a time.
    let mut started = Vec::new();
    let mut most_at_once = 0;
    let mut running: Vec<EffectId> = Vec::new();
    loop {
        while let Some((id, effect)) = fs.poll_effect() {
            let Effect::HubGet { url } = effect else { panic!("{effect:?}") };
            started.push(url);
            running.push(id);
        }
        most_at_once = most_at_once.max(running.len());
        let Some(id) = running.pop() else { break };
        fs.handle_completion(id, http(200, "[]"), poll_at);
    }
    assert_eq!(started.len(), 7, "{started:?}");
    assert_eq!(most_at_once, 2);
}

mod copies;
mod overlay;
mod readers;

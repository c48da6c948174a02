//! Local copies for passthrough opens: a large file read whole gets a copy with its exact
//! bytes, later opens name it once no open of the file uses the page cache, a remote change
//! retires it (the changed file is a new inode while the copy is open) and it is removed at its
//! last close;
//! while a copy is written for a sequential reader, fetches skip the disk chunk cache.

use std::collections::BTreeMap;

use super::*;
use crate::config::CopyPolicy;
use crate::effect::{StageEdit, StageOp};
use crate::request::Backing;

const MIB: u64 = 1 << 20;
const OLD: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const NEW: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA2: &str = "9876543210987654321098765432109876543210";

/// The byte at `offset` of every file here.
fn byte_at(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// Run every effect: CAS fetches answer `byte_at`, staging edits and removals act on `disk`;
/// returns how many fetches skipped the disk chunk cache.
fn run(fs: &mut Filesystem, disk: &mut BTreeMap<String, Vec<u8>>, now: Instant) -> usize {
    let mut uncached = 0;
    while let Some((id, effect)) = fs.poll_effect() {
        let done = match effect {
            Effect::CasRange { range, chunk_cache, .. } => {
                uncached += usize::from(!chunk_cache);
                Completion::Bytes(vec![Bytes::from(range.map(byte_at).collect::<Vec<_>>())])
            }
            Effect::Stage(StageOp::Edit { path, edits }) => {
                let f = disk.entry(path).or_default();
                for e in edits {
                    let StageEdit::Write { offset, data } = e else { panic!("a copy is only written") };
                    let end = offset as usize + data.len();
                    f.resize(f.len().max(end), 0);
                    f[offset as usize..end].copy_from_slice(&data);
                }
                Completion::Done
            }
            Effect::Stage(StageOp::Remove { path }) => {
                disk.remove(&path);
                Completion::Done
            }
            other => panic!("unexpected {other:?}"),
        };
        fs.handle_completion(id, done, now);
    }
    uncached
}

fn open(fs: &mut Filesystem, ino: Ino) -> (u64, Option<Backing>) {
    match answer(fs, Request::Open { ino, write: false, truncate: false }) {
        Reply::Open { fh, backing, .. } => (fh, backing),
        other => panic!("{other:?}"),
    }
}

fn release(fs: &mut Filesystem, fh: u64) {
    assert_eq!(answer(fs, Request::Release { fh }), Reply::Empty);
}

/// Read all of `ino` through `fh` in 128 KiB reads, checking every byte; returns how many
/// fetches skipped the disk chunk cache.
fn read_all(fs: &mut Filesystem, disk: &mut BTreeMap<String, Vec<u8>>, ino: Ino, fh: u64, size: u64) -> usize {
    let mut uncached = 0;
    for offset in (0..size).step_by(128 << 10) {
        let read = Request::Read { ino, fh: Some(fh), offset, size: 128 << 10 };
        fs.handle_request(RequestId(5), Caller::new(7, 8), read, Instant::ZERO);
        uncached += run(fs, disk, Instant::ZERO);
        let Some((_, Reply::Data { data, .. })) = fs.poll_reply() else { panic!("read at {offset} not answered") };
        assert!(data.iter().enumerate().all(|(i, b)| *b == byte_at(offset + i as u64)), "bytes at {offset}");
    }
    uncached
}

fn tree(hash: &str) -> String {
    format!(
        r#"[{{"type":"file","oid":"x","size":{},"path":"big.bin","xetHash":"{hash}"}},
           {{"type":"file","oid":"y","size":{},"path":"small.bin","xetHash":"{OLD}"}}]"#,
        24 * MIB,
        2 * MIB
    )
}

#[test]
fn a_file_read_whole_is_opened_through_its_copy_until_its_content_changes() {
    let mut cfg = repo_cfg("main");
    cfg.copies = Some(CopyPolicy { dir: "/copies/".into(), min_size: 4 * MIB, max_bytes: 1 << 30 });
    let mut fs = repo_fs_with(cfg, "main", &tree(OLD));
    let mut disk = BTreeMap::new();
    let big = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: "big.bin".into() })).ino;
    let small = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: "small.bin".into() })).ino;

    let (first, backing) = open(&mut fs, big);
    assert_eq!(backing, None, "nothing copied yet");
    // Once the reader is sequential, the copy keeps the bytes instead of the chunk cache.
    let uncached = read_all(&mut fs, &mut disk, big, first, 24 * MIB);
    assert!(uncached >= 4, "{uncached} fetches skipped the chunk cache");
    let (path, copy) = disk.iter().next().expect("a copy was written");
    assert_eq!(copy.len() as u64, 24 * MIB);
    assert!(copy.iter().enumerate().all(|(i, b)| *b == byte_at(i as u64)), "the copy holds the file's bytes");
    let path = path.clone();
    // The file is open in the page-cache mode: a second open may not switch it.
    let (second, backing) = open(&mut fs, big);
    assert_eq!(backing, None);
    release(&mut fs, first);
    release(&mut fs, second);
    let through = Some(Backing { path: path.clone(), direct_io: false });
    let (third, backing) = open(&mut fs, big);
    assert_eq!(backing, through, "opened through the copy");
    let (fourth, backing) = open(&mut fs, big);
    assert_eq!(backing, through, "every open names the same copy");
    release(&mut fs, fourth);

    // A small file is never copied.
    let (fh, _) = open(&mut fs, small);
    assert_eq!(read_all(&mut fs, &mut disk, small, fh, 2 * MIB), 0, "a small file's bytes go to the chunk cache");
    release(&mut fs, fh);
    assert_eq!(disk.len(), 1);
    assert_eq!(open(&mut fs, small).1, None);

    // The branch moves and the file changes while the third handle reads the copy.
    let poll_at = fs.poll_timeout().expect("the branch is polled");
    fs.handle_timeout(poll_at);
    let id = expect_get(&mut fs, "http://hub/api/models/a/b/revision/main");
    fs.handle_completion(id, http(200, &format!(r#"{{"id":"a/b","sha":"{SHA2}"}}"#)), poll_at);
    let id = expect_get(&mut fs, &format!("http://hub/api/models/a/b/tree/{SHA2}?limit=1000"));
    fs.handle_completion(id, http(200, &tree(NEW)), poll_at);
    run(&mut fs, &mut disk, poll_at);
    // The kernel takes no other copy for an inode open through one: the new content is a new
    // inode, whose opens use the page cache while the old one is still open.
    let changed = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: "big.bin".into() })).ino;
    assert_ne!(changed, big, "a new inode for the new content");
    let (fifth, backing) = open(&mut fs, changed);
    assert_eq!(backing, None, "the new content reads through the mount");
    // An open of the old inode (a dentry the kernel held) names its copy, reads through the mount.
    let (sixth, backing) = open(&mut fs, big);
    assert_eq!(backing, Some(Backing { path: path.clone(), direct_io: true }));
    assert!(disk.contains_key(&path), "kept while open");
    release(&mut fs, third);
    release(&mut fs, sixth);
    run(&mut fs, &mut disk, poll_at);
    assert!(!disk.contains_key(&path), "removed at its last close");
    read_all(&mut fs, &mut disk, changed, fifth, 24 * MIB);
    release(&mut fs, fifth);
    let (_, backing) = open(&mut fs, changed);
    let new_copy = backing.expect("the new content read whole is opened through its own copy");
    assert_ne!(new_copy.path, path);
    assert!(!new_copy.direct_io);
    assert_eq!(disk.len(), 1, "only the new content's copy is on disk");
    assert_eq!(fs.stats().copies_made, 2);
}

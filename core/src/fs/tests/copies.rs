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
            Effect::Stage(StageOp::Publish { from, to }) => {
                let f = disk.remove(&from).expect("a partial copy is published");
                disk.insert(to, f);
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

fn policy(max_bytes: u64, stored: &[(String, u64)]) -> CopyPolicy {
    CopyPolicy {
        dir: "/copies/".into(),
        partial_dir: "/copies/1/".into(),
        min_size: 4 * MIB,
        max_bytes,
        stored: stored.to_vec(),
    }
}

fn mount(policy: CopyPolicy, hash: &str) -> Filesystem {
    let mut cfg = repo_cfg("main");
    cfg.copies = Some(policy);
    repo_fs_with(cfg, "main", &tree(hash))
}

fn lookup(fs: &mut Filesystem, name: &str) -> Ino {
    entry(answer(fs, Request::Lookup { parent: ROOT_INO, name: name.into() })).ino
}

/// The copy of big.bin with content `hash`.
fn copy_of(hash: &str) -> String {
    format!("/copies/xet-{hash}-{}", 24 * MIB)
}

/// What the mount finds at start of the copy of big.bin with content `hash`, at `size`.
fn found(hash: &str, size: u64) -> (String, u64) {
    (copy_of(hash).replace("/copies/", ""), size)
}

/// The branch moves to a commit where big.bin has content `NEW`; the poll sees it.
fn move_branch_to_new_content(fs: &mut Filesystem, disk: &mut BTreeMap<String, Vec<u8>>) {
    let poll_at = fs.poll_timeout().expect("the branch is polled");
    fs.handle_timeout(poll_at);
    let rev = expect_get(fs, "http://hub/api/models/a/b/revision/main");
    fs.handle_completion(rev, http(200, &format!(r#"{{"id":"a/b","sha":"{SHA2}"}}"#)), poll_at);
    let list = expect_get(fs, &format!("http://hub/api/models/a/b/tree/{SHA2}?limit=1000"));
    fs.handle_completion(list, http(200, &tree(NEW)), poll_at);
    run(fs, disk, poll_at);
}

fn through(path: &str) -> Option<Backing> {
    Some(Backing { path: path.into(), direct_io: false })
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
fn a_file_read_whole_is_opened_through_its_copy_named_by_its_content() {
    let mut fs = mount(policy(1 << 30, &[]), OLD);
    let mut disk = BTreeMap::new();
    let big = lookup(&mut fs, "big.bin");
    let small = lookup(&mut fs, "small.bin");

    let (first, backing) = open(&mut fs, big);
    assert_eq!(backing, None, "nothing copied yet");
    // Once the reader is sequential, the copy keeps the bytes instead of the chunk cache.
    let uncached = read_all(&mut fs, &mut disk, big, first, 24 * MIB);
    assert!(uncached >= 4, "{uncached} fetches skipped the chunk cache");
    let old_copy = copy_of(OLD);
    assert_eq!(disk.keys().collect::<Vec<_>>(), vec![&old_copy], "published under its content's name");
    let copy = &disk[&old_copy];
    assert_eq!(copy.len() as u64, 24 * MIB);
    assert!(copy.iter().enumerate().all(|(i, b)| *b == byte_at(i as u64)), "the copy holds the file's bytes");
    // The file is open in the page-cache mode: a second open may not switch it.
    let (second, backing) = open(&mut fs, big);
    assert_eq!(backing, None);
    release(&mut fs, first);
    release(&mut fs, second);
    let (third, backing) = open(&mut fs, big);
    assert_eq!(backing, through(&old_copy), "opened through the copy");
    let (fourth, backing) = open(&mut fs, big);
    assert_eq!(backing, through(&old_copy), "every open names the same copy");
    release(&mut fs, fourth);

    // A small file is never copied.
    let (fh, _) = open(&mut fs, small);
    assert_eq!(read_all(&mut fs, &mut disk, small, fh, 2 * MIB), 0, "a small file's bytes go to the chunk cache");
    release(&mut fs, fh);
    assert_eq!(disk.len(), 1);
    assert_eq!(open(&mut fs, small).1, None);

    // The branch moves and the file changes while the third handle reads the copy.
    move_branch_to_new_content(&mut fs, &mut disk);
    // The kernel takes no other copy for an inode open through one: the new content is a new
    // inode, whose opens use the page cache while the old one is still open.
    let changed = lookup(&mut fs, "big.bin");
    assert_ne!(changed, big, "a new inode for the new content");
    let (fifth, backing) = open(&mut fs, changed);
    assert_eq!(backing, None, "the new content reads through the mount");
    // An open of the old inode (by a dentry the kernel still held) reads its old content's copy.
    let (sixth, backing) = open(&mut fs, big);
    assert_eq!(backing, through(&old_copy));
    release(&mut fs, third);
    release(&mut fs, sixth);
    read_all(&mut fs, &mut disk, changed, fifth, 24 * MIB);
    release(&mut fs, fifth);
    let new_copy = copy_of(NEW);
    assert_eq!(open(&mut fs, changed).1, through(&new_copy), "the new content read whole has its own copy");
    assert_eq!(disk.keys().collect::<Vec<_>>(), vec![&old_copy, &new_copy], "the old copy is still true to its name");
    assert_eq!(fs.stats().copies_made, 2);

    // A new mount finds both; one whose size is not its name's is left out.
    let found = [found(OLD, 24 * MIB), found(NEW, 24 * MIB - 1)];
    let mut fs = mount(policy(1 << 30, &found), OLD);
    let big = lookup(&mut fs, "big.bin");
    assert_eq!(open(&mut fs, big).1, through(&old_copy), "opened through the copy at once");
    assert!(fs.poll_effect().is_none(), "with no fetch");
    let mut fs = mount(policy(1 << 30, &found), NEW);
    let big = lookup(&mut fs, "big.bin");
    assert_eq!(open(&mut fs, big).1, None, "a copy of the wrong size is not used");
}

#[test]
fn room_for_a_copy_is_made_by_removing_the_least_recently_opened_one_not_open() {
    let found = [found(NEW, 24 * MIB)];
    let mut disk = BTreeMap::from([(copy_of(NEW), vec![0; (24 * MIB) as usize])]);
    let mut fs = mount(policy(40 * MIB, &found), OLD);
    let big = lookup(&mut fs, "big.bin");
    let (fh, backing) = open(&mut fs, big);
    assert_eq!(backing, None);
    read_all(&mut fs, &mut disk, big, fh, 24 * MIB);
    release(&mut fs, fh);
    assert_eq!(disk.keys().collect::<Vec<_>>(), vec![&copy_of(OLD)], "the copy found at start made room");
    assert_eq!(open(&mut fs, big).1, through(&copy_of(OLD)));
}

#[test]
fn no_copy_is_made_when_the_only_ones_to_remove_are_open() {
    let found = [found(OLD, 24 * MIB)];
    let mut disk = BTreeMap::from([(copy_of(OLD), (0..24 * MIB).map(byte_at).collect())]);
    let mut fs = mount(policy(40 * MIB, &found), OLD);
    let big = lookup(&mut fs, "big.bin");
    let (held, backing) = open(&mut fs, big);
    assert_eq!(backing, through(&copy_of(OLD)));
    // Another file of the same size, read whole while the copy is open, gets no copy.
    move_branch_to_new_content(&mut fs, &mut disk);
    let changed = lookup(&mut fs, "big.bin");
    let (fh, _) = open(&mut fs, changed);
    read_all(&mut fs, &mut disk, changed, fh, 24 * MIB);
    assert_eq!(disk.keys().collect::<Vec<_>>(), vec![&copy_of(OLD)], "the open copy stays, no new one");
    release(&mut fs, fh);
    release(&mut fs, held);
}

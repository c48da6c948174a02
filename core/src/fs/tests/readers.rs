//! Several readers of one file: read-ahead of the leader stops where the cache would drop
//! bytes the last reader still needs, and an idle reader does not hold the others back.

use super::*;

const MIB: u64 = 1 << 20;
const XET: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Answer every CAS fetch at once with zeros; returns the bytes fetched.
fn serve_fetches(fs: &mut Filesystem, now: Instant) -> u64 {
    let mut fetched = 0;
    while let Some((id, effect)) = fs.poll_effect() {
        match effect {
            Effect::CasRange { range, .. } => {
                fetched += range.end - range.start;
                let data = Bytes::from(vec![0u8; (range.end - range.start) as usize]);
                fs.handle_completion(id, Completion::Bytes(vec![data]), now);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    fetched
}

fn open(fs: &mut Filesystem, ino: Ino) -> u64 {
    match answer(fs, Request::Open { ino, write: false, truncate: false }) {
        Reply::Open { fh, .. } => fh,
        other => panic!("{other:?}"),
    }
}

/// Read `[from, to)` through handle `fh` in 128 KiB kernel-sized reads; returns bytes fetched.
fn read_through(fs: &mut Filesystem, ino: Ino, fh: u64, from: u64, to: u64, now: Instant) -> u64 {
    let mut fetched = 0;
    let mut off = from;
    while off < to {
        fs.handle_request(
            RequestId(5),
            Caller::new(7, 8),
            Request::Read { ino, fh: Some(fh), offset: off, size: 128 << 10 },
            now,
        );
        fetched += serve_fetches(fs, now);
        while fs.poll_reply().is_some() {}
        off += 128 << 10;
    }
    fetched
}

fn big_file() -> (Filesystem, Ino) {
    let tree = format!(r#"[{{"type":"file","oid":"x","size":{},"path":"big.bin","xetHash":"{XET}"}}]"#, 256 * MIB);
    let mut fs = repo_fs(SHA, &tree);
    let ino = entry(answer(&mut fs, Request::Lookup { parent: ROOT_INO, name: "big.bin".into() })).ino;
    (fs, ino)
}

#[test]
fn the_leader_reads_ahead_only_as_far_as_the_cache_holds_the_last_reader() {
    let (mut fs, ino) = big_file();
    let (leader, laggard) = (open(&mut fs, ino), open(&mut fs, ino));
    let t = Instant::ZERO;
    read_through(&mut fs, ino, laggard, 0, MIB, t);
    let fetched = read_through(&mut fs, ino, leader, 0, 24 * MIB, t);
    // 1 MiB was cached already; the leader's own window (16 MiB) would have reached 40 MiB,
    // pushing the laggard's next bytes out of the 32 MiB cache.
    assert!(fetched <= 24 * MIB + 4 * MIB, "fetched {} MiB", fetched / MIB);
    // The laggard catches up through the cache: what it reads next was not evicted.
    assert_eq!(read_through(&mut fs, ino, laggard, MIB, 8 * MIB, t), 0);
}

#[test]
fn an_idle_reader_does_not_hold_the_others_back() {
    let (mut fs, ino) = big_file();
    let (leader, idle) = (open(&mut fs, ino), open(&mut fs, ino));
    read_through(&mut fs, ino, idle, 0, 128 << 10, Instant::ZERO);
    let later = Instant::from_nanos(2_000_000_000);
    let fetched = read_through(&mut fs, ino, leader, 0, 40 * MIB, later);
    assert!(fetched >= 48 * MIB, "the leader read ahead: {} MiB fetched", fetched / MIB);
}

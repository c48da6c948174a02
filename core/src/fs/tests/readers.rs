//! Several readers of one file: read-ahead of the leader stops where the cache would drop
//! bytes the last reader still needs, an idle reader does not hold the others back, and
//! sequential readers fetch whole aligned blocks they share.

use super::*;

const MIB: u64 = 1 << 20;
const XET: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Answer every CAS fetch at once with zeros; returns the bytes fetched.
fn serve_fetches(fs: &mut Filesystem, now: Instant) -> u64 {
    serve_fetch_ranges(fs, now).iter().map(|r| r.end - r.start).sum()
}

/// Answer every CAS fetch at once with zeros; returns the ranges fetched.
fn serve_fetch_ranges(fs: &mut Filesystem, now: Instant) -> Vec<std::ops::Range<u64>> {
    let mut fetched = Vec::new();
    while let Some((id, effect)) = fs.poll_effect() {
        match effect {
            Effect::CasRange { range, .. } => {
                let data = Bytes::from(vec![0u8; (range.end - range.start) as usize]);
                fs.handle_completion(id, Completion::Bytes(vec![data]), now);
                fetched.push(range);
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

/// One read of 128 KiB at `offset` through `fh`; returns the ranges it fetched.
fn read_once(fs: &mut Filesystem, ino: Ino, fh: u64, offset: u64, now: Instant) -> Vec<std::ops::Range<u64>> {
    let req = Request::Read { ino, fh: Some(fh), offset, size: 128 << 10 };
    fs.handle_request(RequestId(6), Caller::new(7, 8), req, now);
    let fetched = serve_fetch_ranges(fs, now);
    while fs.poll_reply().is_some() {}
    fetched
}

#[test]
fn sequential_readers_of_one_file_fetch_whole_blocks_and_a_random_one_only_what_it_reads() {
    let (mut fs, ino) = big_file();
    let (first, second, random) = (open(&mut fs, ino), open(&mut fs, ino), open(&mut fs, ino));
    let t = Instant::ZERO;
    // Both sequential, the second from an unaligned offset well ahead of the first.
    let start = 37 * MIB + (MIB / 2);
    let mut fetched = Vec::new();
    for step in 0..64u64 {
        fetched.extend(read_once(&mut fs, ino, first, step * (128 << 10), t));
        fetched.extend(read_once(&mut fs, ino, second, start + step * (128 << 10), t));
    }
    let block = 4 * MIB;
    // Before a reader looks sequential it fetches its 128 KiB reads; from then on, blocks (the
    // rest of a block it had partly read, then whole ones): no fetch crosses a block's edge.
    assert!(fetched.iter().any(|r| r.end - r.start == block), "whole blocks fetched: {fetched:?}");
    for r in &fetched {
        assert_eq!(r.start / block, (r.end - 1) / block, "fetch {r:?} crosses a block's edge");
        assert!(r.end - r.start == 128 << 10 || r.end % block == 0, "fetch {r:?} stops inside a block");
    }
    // A random reader beside them fetches what it reads, not a block.
    for offset in [200 * MIB + 12345, 150 * MIB + 777, 230 * MIB] {
        let got = read_once(&mut fs, ino, random, offset, t);
        assert_eq!(got.iter().map(|r| r.end - r.start).sum::<u64>(), 128 << 10, "random read at {offset}: {got:?}");
    }
}

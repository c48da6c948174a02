//! Every NFSv3 type round-trips, and every prefix of its encoding is `Incomplete`.

use super::*;
use crate::xdr::testing::round_trip;
use crate::xdr::Xdr;
use proptest::prelude::*;

proptest! {
    #[test]
    fn shared_types(a: Fattr, w: WccData, s: Sattr, d: DirOp, c: CreateHow, m: MknodData, t: SetTime, f: Fh) {
        round_trip(&a);
        round_trip(&w);
        round_trip(&s);
        round_trip(&d);
        round_trip(&c);
        round_trip(&m);
        round_trip(&t);
        round_trip(&f);
    }

    #[test]
    fn results_1(a: GetAttrRes, b: SetAttrRes, c: LookupRes, d: AccessRes, e: ReadLinkRes, f: ReadRes, g: WriteRes) {
        round_trip(&a);
        round_trip(&b);
        round_trip(&c);
        round_trip(&d);
        round_trip(&e);
        round_trip(&f);
        round_trip(&g);
    }

    #[test]
    fn results_2(a: NewObjectRes, b: RemoveRes, c: RenameResult, d: LinkResult, e: ReadDirRes, f: ReadDirPlusRes) {
        round_trip(&a);
        round_trip(&b);
        round_trip(&c);
        round_trip(&d);
        round_trip(&e);
        round_trip(&f);
    }

    #[test]
    fn results_3(a: FsStatRes, b: FsInfoRes, c: PathConfRes, d: CommitRes) {
        round_trip(&a);
        round_trip(&b);
        round_trip(&c);
        round_trip(&d);
    }

    #[test]
    fn calls_round_trip(call: Call) {
        let mut args = Vec::new();
        call.encode(&mut args);
        prop_assert_eq!(Call::decode(call.procedure(), &args), Ok(call.clone()));
        for cut in 0..args.len() {
            prop_assert_eq!(Call::decode(call.procedure(), &args[..cut]), Err(BadCall::Garbage));
        }
        args.extend_from_slice(&[0, 0, 0, 0]);
        prop_assert_eq!(Call::decode(call.procedure(), &args), Err(BadCall::Garbage));
    }

    #[test]
    fn garbage_never_panics(procedure in 0u32..24, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Call::decode(procedure, &bytes);
    }
}

#[test]
fn captured_shapes() {
    // A Linux client's GETATTR of a 16-byte handle and a LOOKUP of "config.json".
    let fh = [0x48, 0x46, 1, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut getattr = vec![0, 0, 0, 16];
    getattr.extend_from_slice(&fh);
    assert_eq!(Call::decode(1, &getattr), Ok(Call::GetAttr(Fh(fh.to_vec()))));
    let mut lookup = getattr.clone();
    lookup.extend_from_slice(&[0, 0, 0, 11]);
    lookup.extend_from_slice(b"config.json\0");
    assert_eq!(
        Call::decode(3, &lookup),
        Ok(Call::Lookup(DirOp { dir: Fh(fh.to_vec()), name: b"config.json".to_vec() }))
    );
    // Bad padding length is truncation; a handle over 64 bytes is garbage.
    assert_eq!(Call::decode(3, &lookup[..lookup.len() - 1]), Err(BadCall::Garbage));
    let mut long = vec![0, 0, 0, 65];
    long.extend_from_slice(&[0; 68]);
    assert_eq!(Call::decode(1, &long), Err(BadCall::Garbage));
    assert_eq!(Call::decode(22, &[]), Err(BadCall::NoSuchProcedure));
    // READ3resok with 5 bytes of data is padded to 8.
    let ok: ReadRes = NfsResult::Ok(ReadOk { file_attributes: None, count: 5, eof: true, data: b"hello".to_vec() });
    assert_eq!(
        ok.to_bytes(),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]
    );
}

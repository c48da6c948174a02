//! Every decoder of NFS bytes (record marking, RPC headers, credentials, MOUNT and NFS
//! arguments, results, file handles) must reject garbage without panicking.
#![no_main]

use hfm_nfs::mount::MountCall;
use hfm_nfs::nfs3::{self, Call, Fh};
use hfm_nfs::rpc::{parse_incoming, Incoming, Records, ReplyHeader};
use hfm_nfs::xdr::Xdr;
use hfm_nfs::Handles;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // What a connection reads: records, then calls in them.
    let mut records = Records::new(1 << 16);
    for piece in data.chunks(7) {
        records.feed(piece);
        while let Ok(Some(record)) = records.next_record() {
            if let Incoming::Call { body, args, .. } = parse_incoming(&record) {
                let _ = body.cred.credential();
                let _ = Call::decode(body.proc_, args);
                let _ = MountCall::decode(body.proc_, args);
            }
        }
    }
    for procedure in 0..23 {
        let _ = Call::decode(procedure, data);
        let _ = MountCall::decode(procedure, data);
    }
    let _ = ReplyHeader::get(data);
    let _ = nfs3::ReadDirPlusRes::get(data);
    let _ = nfs3::LookupRes::get(data);
    let _ = nfs3::ReadRes::get(data);
    let _ = Handles::new(1).decode(&Fh(data.to_vec()));
});

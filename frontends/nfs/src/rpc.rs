//! ONC RPC version 2 (RFC 5531): record marking over TCP (§11), call headers with their
//! credentials (AUTH_NONE, AUTH_SYS), and replies (accepted, with results or an error; denied).

use crate::xdr::{get_array, get_opaque, put_array, put_opaque, Res, Xdr};
use crate::xdr_struct;

pub const RPC_VERSION: u32 = 2;
pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;
/// Longest `opaque_auth` body (RFC 5531 §8.2).
pub const MAX_AUTH_BODY: usize = 400;
/// Longest AUTH_SYS machine name, and most supplementary groups.
pub const MAX_MACHINE_NAME: usize = 255;
pub const MAX_AUTH_GROUPS: usize = 16;

/// `auth_stat` values of an AUTH_ERROR.
pub mod auth_stat {
    pub const BADCRED: u32 = 1;
    pub const TOOWEAK: u32 = 5;
}

/// `opaque_auth`: a credential or verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OpaqueAuth {
    pub flavor: u32,
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..=MAX_AUTH_BODY)")
    )]
    pub body: Vec<u8>,
}

impl OpaqueAuth {
    pub const NONE: OpaqueAuth = OpaqueAuth { flavor: AUTH_NONE, body: Vec::new() };
}

impl Xdr for OpaqueAuth {
    fn put(&self, out: &mut Vec<u8>) {
        self.flavor.put(out);
        put_opaque(&self.body, out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (i, flavor) = u32::get(i)?;
        let (i, body) = get_opaque(i, MAX_AUTH_BODY)?;
        Ok((i, OpaqueAuth { flavor, body: body.to_vec() }))
    }
}

/// The body of an AUTH_SYS credential.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AuthSys {
    pub stamp: u32,
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..=MAX_MACHINE_NAME)")
    )]
    pub machine: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::arbitrary::any::<u32>(), 0..=MAX_AUTH_GROUPS)")
    )]
    pub gids: Vec<u32>,
}

impl Xdr for AuthSys {
    fn put(&self, out: &mut Vec<u8>) {
        self.stamp.put(out);
        put_opaque(&self.machine, out);
        self.uid.put(out);
        self.gid.put(out);
        put_array(&self.gids, out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (i, stamp) = u32::get(i)?;
        let (i, machine) = get_opaque(i, MAX_MACHINE_NAME)?;
        let (i, uid) = u32::get(i)?;
        let (i, gid) = u32::get(i)?;
        let (i, gids) = get_array(i, MAX_AUTH_GROUPS)?;
        Ok((i, AuthSys { stamp, machine: machine.to_vec(), uid, gid, gids }))
    }
}

/// Who a call says it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    None,
    Sys(AuthSys),
}

impl OpaqueAuth {
    /// The credential, or the `auth_stat` to refuse it with.
    pub fn credential(&self) -> Result<Credential, u32> {
        match self.flavor {
            AUTH_NONE => Ok(Credential::None),
            AUTH_SYS => crate::xdr::decode_all(&self.body).map(Credential::Sys).ok_or(auth_stat::BADCRED),
            _ => Err(auth_stat::TOOWEAK),
        }
    }
}

xdr_struct! {
    /// A call's header, after its xid and message type.
    pub struct CallBody {
        pub rpcvers: u32,
        pub prog: u32,
        pub vers: u32,
        pub proc_: u32,
        pub cred: OpaqueAuth,
        pub verf: OpaqueAuth,
    }
}

/// What a record holds, as far as a server cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Call {
        xid: u32,
        body: CallBody,
        args: &'a [u8],
    },
    /// A reply or another message type: ignored.
    NotACall,
    /// Not even a header: the connection is talking nonsense.
    Garbage,
}

pub fn parse_incoming(record: &[u8]) -> Incoming<'_> {
    let header = |i| -> Res<'_, (u32, u32)> {
        let (i, xid) = u32::get(i)?;
        let (i, kind) = u32::get(i)?;
        Ok((i, (xid, kind)))
    };
    match header(record) {
        Ok((rest, (xid, 0))) => match CallBody::get(rest) {
            Ok((args, body)) => Incoming::Call { xid, body, args },
            Err(_) => Incoming::Garbage,
        },
        Ok(_) => Incoming::NotACall,
        Err(_) => Incoming::Garbage,
    }
}

/// A reply's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ReplyStat {
    /// Accepted and executed; the procedure's results follow the header.
    Success,
    ProgUnavail,
    ProgMismatch {
        low: u32,
        high: u32,
    },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
    /// Denied: wrong RPC version.
    RpcMismatch {
        low: u32,
        high: u32,
    },
    /// Denied: the credential is not accepted.
    AuthError(u32),
}

/// A reply header: xid, REPLY, then the outcome (results, if any, follow).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ReplyHeader {
    pub xid: u32,
    pub stat: ReplyStat,
}

impl Xdr for ReplyHeader {
    fn put(&self, out: &mut Vec<u8>) {
        self.xid.put(out);
        1u32.put(out);
        let accepted = |out: &mut Vec<u8>, code: u32| {
            0u32.put(out);
            OpaqueAuth::NONE.put(out);
            code.put(out);
        };
        match &self.stat {
            ReplyStat::Success => accepted(out, 0),
            ReplyStat::ProgUnavail => accepted(out, 1),
            ReplyStat::ProgMismatch { low, high } => {
                accepted(out, 2);
                low.put(out);
                high.put(out);
            }
            ReplyStat::ProcUnavail => accepted(out, 3),
            ReplyStat::GarbageArgs => accepted(out, 4),
            ReplyStat::SystemErr => accepted(out, 5),
            ReplyStat::RpcMismatch { low, high } => {
                1u32.put(out);
                0u32.put(out);
                low.put(out);
                high.put(out);
            }
            ReplyStat::AuthError(stat) => {
                1u32.put(out);
                1u32.put(out);
                stat.put(out);
            }
        }
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let bad = crate::xdr::invalid;
        let (i, xid) = u32::get(i)?;
        let (i, kind) = u32::get(i)?;
        if kind != 1 {
            return bad(i);
        }
        let (i, reply) = u32::get(i)?;
        let pair = |i| -> Res<'_, (u32, u32)> {
            let (i, low) = u32::get(i)?;
            let (i, high) = u32::get(i)?;
            Ok((i, (low, high)))
        };
        let (i, stat) = match reply {
            0 => {
                let (i, _verf) = OpaqueAuth::get(i)?;
                let (i, code) = u32::get(i)?;
                match code {
                    0 => (i, ReplyStat::Success),
                    1 => (i, ReplyStat::ProgUnavail),
                    2 => pair(i).map(|(i, (low, high))| (i, ReplyStat::ProgMismatch { low, high }))?,
                    3 => (i, ReplyStat::ProcUnavail),
                    4 => (i, ReplyStat::GarbageArgs),
                    5 => (i, ReplyStat::SystemErr),
                    _ => return bad(i),
                }
            }
            1 => {
                let (i, code) = u32::get(i)?;
                match code {
                    0 => pair(i).map(|(i, (low, high))| (i, ReplyStat::RpcMismatch { low, high }))?,
                    1 => u32::get(i).map(|(i, s)| (i, ReplyStat::AuthError(s)))?,
                    _ => return bad(i),
                }
            }
            _ => return bad(i),
        };
        Ok((i, ReplyHeader { xid, stat }))
    }
}

/// A reply's header; on success the procedure's results follow it.
pub fn reply(xid: u32, stat: ReplyStat) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    ReplyHeader { xid, stat }.put(&mut out);
    out
}

/// `call` as a client sends it (tests, and the portmapper check).
pub fn call(xid: u32, body: &CallBody, args: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + args.len());
    xid.put(&mut out);
    0u32.put(&mut out);
    body.put(&mut out);
    out.extend_from_slice(args);
    out
}

const LAST_FRAGMENT: u32 = 0x8000_0000;

/// One record as a single last fragment.
pub fn frame(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + record.len());
    (LAST_FRAGMENT | record.len() as u32).put(&mut out);
    out.extend_from_slice(record);
    out
}

/// A record larger than the bound: the connection must be closed.
#[derive(Debug, PartialEq, Eq)]
pub struct RecordTooLarge(pub u64);

/// Reassembles records from the bytes of a stream, fragments and all.
pub struct Records {
    buf: Vec<u8>,
    start: usize,
    record: Vec<u8>,
    max: usize,
}

impl Records {
    pub fn new(max: usize) -> Self {
        Records { buf: Vec::new(), start: 0, record: Vec::new(), max }
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole record, if its last fragment has arrived.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, RecordTooLarge> {
        loop {
            let pending = &self.buf[self.start..];
            let Ok((body, mark)) = u32::get(pending) else { return Ok(None) };
            let len = (mark & !LAST_FRAGMENT) as usize;
            let total = self.record.len() as u64 + len as u64;
            if total > self.max as u64 {
                return Err(RecordTooLarge(total));
            }
            if body.len() < len {
                return Ok(None);
            }
            self.record.extend_from_slice(&body[..len]);
            self.start += 4 + len;
            if self.start > self.buf.len() / 2 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if mark & LAST_FRAGMENT != 0 {
                return Ok(Some(std::mem::take(&mut self.record)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::testing::round_trip;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn headers_round_trip(h: ReplyHeader, b: CallBody, a: AuthSys, o: OpaqueAuth) {
            round_trip(&h);
            round_trip(&b);
            round_trip(&a);
            round_trip(&o);
        }

        #[test]
        fn calls_parse(xid: u32, b: CallBody, args in proptest::collection::vec(any::<u8>(), 0..64)) {
            let msg = call(xid, &b, &args);
            prop_assert_eq!(parse_incoming(&msg), Incoming::Call { xid, body: b, args: &args });
            for cut in 0..msg.len().min(8 + 24) {
                prop_assert_eq!(parse_incoming(&msg[..cut]), Incoming::Garbage);
            }
        }

        #[test]
        fn records_reassemble(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
                              split in 1usize..9, chunk in 1usize..50) {
            // Each record in `split`-byte fragments, the stream fed `chunk` bytes at a time.
            let mut stream = Vec::new();
            for r in &records {
                let pieces: Vec<&[u8]> = if r.is_empty() { vec![&r[..]] } else { r.chunks(split).collect() };
                for (n, p) in pieces.iter().enumerate() {
                    let last = if n + 1 == pieces.len() { LAST_FRAGMENT } else { 0 };
                    (last | p.len() as u32).put(&mut stream);
                    stream.extend_from_slice(p);
                }
            }
            let mut rx = Records::new(1 << 20);
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                rx.feed(c);
                while let Some(r) = rx.next_record().unwrap() {
                    got.push(r);
                }
            }
            prop_assert_eq!(got, records);
        }
    }

    #[test]
    fn oversized_records_refused_before_their_bytes_arrive() {
        let mut rx = Records::new(1000);
        rx.feed(&(LAST_FRAGMENT | 0x7fff_0000).to_be_bytes());
        assert_eq!(rx.next_record(), Err(RecordTooLarge(0x7fff_0000)));
        // Many small fragments adding up past the bound.
        let mut rx = Records::new(1000);
        for _ in 0..3 {
            rx.feed(&400u32.to_be_bytes());
            rx.feed(&[0; 400]);
        }
        assert_eq!(rx.next_record(), Err(RecordTooLarge(1200)));
    }

    #[test]
    fn credentials() {
        let sys = AuthSys { stamp: 1, machine: b"host".to_vec(), uid: 1000, gid: 100, gids: vec![4, 5] };
        let cred = OpaqueAuth { flavor: AUTH_SYS, body: sys.to_bytes() };
        assert_eq!(cred.credential(), Ok(Credential::Sys(sys)));
        assert_eq!(OpaqueAuth::NONE.credential(), Ok(Credential::None));
        assert_eq!(OpaqueAuth { flavor: 6, body: vec![] }.credential(), Err(auth_stat::TOOWEAK));
        assert_eq!(OpaqueAuth { flavor: AUTH_SYS, body: vec![0; 8] }.credential(), Err(auth_stat::BADCRED));
        let too_many =
            AuthSys { gids: vec![1; 17], ..AuthSys { stamp: 0, machine: vec![], uid: 0, gid: 0, gids: vec![] } };
        assert_eq!(OpaqueAuth { flavor: AUTH_SYS, body: too_many.to_bytes() }.credential(), Err(auth_stat::BADCRED));
    }
}

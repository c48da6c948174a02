//! The server's RPC layer, spoken by hand: errors for what it does not serve, malformed and
//! oversized records, fragments, pipelined calls answered by xid, unprivileged source ports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

fn passed(what: &str) {
    println!("ok   {what}");
}

/// A connection from a privileged source port (as the kernel client makes), or not.
fn dial(port: u16, privileged: bool) -> Result<TcpStream> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let local_ports: Vec<u16> = if privileged { (600..1024).rev().collect() } else { vec![0] };
    for local in local_ports {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        let _ = s.set_reuse_address(true);
        if s.bind(&SocketAddr::from(([0, 0, 0, 0], local)).into()).is_err() {
            continue;
        }
        // A port in TIME_WAIT towards the server cannot connect again: try the next one.
        if s.connect(&addr.into()).is_err() && privileged {
            continue;
        }
        let stream: TcpStream = s.into();
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        return Ok(stream);
    }
    bail!("no privileged local port free")
}

fn u32s(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// A call: xid, CALL, rpcvers, prog, vers, proc, credential (flavor, empty body), AUTH_NONE
/// verifier, then `args`.
fn call(xid: u32, rpcvers: u32, prog: u32, vers: u32, procedure: u32, flavor: u32, args: &[u8]) -> Vec<u8> {
    let mut m = u32s(&[xid, 0, rpcvers, prog, vers, procedure, flavor, 0, 0, 0]);
    m.extend_from_slice(args);
    m
}

fn framed(record: &[u8]) -> Vec<u8> {
    let mut out = (0x8000_0000u32 | record.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(record);
    out
}

fn read_record(s: &mut TcpStream) -> Result<Vec<u8>> {
    let mut record = Vec::new();
    loop {
        let mut mark = [0u8; 4];
        s.read_exact(&mut mark).context("reading a reply")?;
        let mark = u32::from_be_bytes(mark);
        let mut frag = vec![0u8; (mark & 0x7fff_ffff) as usize];
        s.read_exact(&mut frag)?;
        record.extend_from_slice(&frag);
        if mark & 0x8000_0000 != 0 {
            return Ok(record);
        }
    }
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The reply's words after xid and REPLY.
fn reply_to(s: &mut TcpStream, msg: &[u8]) -> Result<Vec<u32>> {
    s.write_all(&framed(msg))?;
    let w = words(&read_record(s)?);
    if w.len() < 3 || w[0] != u32::from_be_bytes([msg[0], msg[1], msg[2], msg[3]]) || w[1] != 1 {
        bail!("not a reply to this call: {w:?}");
    }
    Ok(w[2..].to_vec())
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

const NFS: u32 = 100_003;

pub async fn run(port: u16) -> Result<()> {
    let mut s = dial(port, true)?;
    // accepted (0), verifier AUTH_NONE (0, 0), then the accept status.
    let accepted = |w: &[u32], stat: u32| w.len() >= 4 && w[0] == 0 && w[3] == stat;
    let w = reply_to(&mut s, &call(1, 2, NFS, 3, 0, 0, &[]))?;
    if !accepted(&w, 0) {
        bail!("NFS NULL: {w:?}");
    }
    passed("NULL with AUTH_NONE");
    let w = reply_to(&mut s, &call(2, 2, 100_099, 1, 0, 0, &[]))?;
    if !accepted(&w, 1) {
        bail!("unknown program: {w:?}");
    }
    passed("an unknown program: PROG_UNAVAIL");
    let w = reply_to(&mut s, &call(3, 2, NFS, 4, 0, 0, &[]))?;
    if !accepted(&w, 2) || w[4..6] != [3, 3] {
        bail!("NFS version 4: {w:?}");
    }
    passed("NFS version 4: PROG_MISMATCH 3..3");
    let w = reply_to(&mut s, &call(4, 2, NFS, 3, 22, 0, &[]))?;
    if !accepted(&w, 3) {
        bail!("procedure 22: {w:?}");
    }
    passed("procedure 22: PROC_UNAVAIL");
    let w = reply_to(&mut s, &call(5, 2, NFS, 3, 1, 0, &u32s(&[16, 1])))?;
    if !accepted(&w, 4) {
        bail!("truncated GETATTR: {w:?}");
    }
    passed("truncated arguments: GARBAGE_ARGS");
    let w = reply_to(&mut s, &call(6, 3, NFS, 3, 0, 0, &[]))?;
    if w[..4] != [1, 0, 2, 2] {
        bail!("RPC version 3: {w:?}");
    }
    passed("RPC version 3: MSG_DENIED RPC_MISMATCH 2..2");
    let w = reply_to(&mut s, &call(7, 2, NFS, 3, 0, 6, &[]))?;
    if w[..2] != [1, 1] {
        bail!("RPCSEC_GSS credential: {w:?}");
    }
    passed("an RPCSEC_GSS credential: MSG_DENIED AUTH_ERROR");
    let w = reply_to(&mut s, &call(8, 2, 100_000, 2, 3, 0, &u32s(&[NFS, 3, 6, 0])))?;
    if !accepted(&w, 0) || w.get(4) != Some(&u32::from(port)) {
        bail!("PMAP GETPORT: {w:?}");
    }
    passed("portmapper GETPORT of NFS v3 over TCP: this port");
    // MKNOD of a regular file (root handle from MNT first).
    let w = reply_to(&mut s, &call(11, 2, 100_005, 3, 1, 0, &[0, 0, 0, 1, b'/', 0, 0, 0]))?;
    if !accepted(&w, 0) || w[4] != 0 {
        bail!("MNT /: {w:?}");
    }
    let fh_len = w[5] as usize;
    let mut mknod = u32s(&[fh_len as u32]);
    mknod.extend(w[6..6 + fh_len / 4].iter().flat_map(|x| x.to_be_bytes()));
    mknod.extend(u32s(&[1, u32::from_be_bytes(*b"r\0\0\0"), 1]));
    let w = reply_to(&mut s, &call(12, 2, NFS, 3, 11, 0, &mknod))?;
    if !accepted(&w, 0) || w[4] != 10007 {
        bail!("MKNOD of a regular file: {w:?}");
    }
    passed("MKNOD of a regular file: NFS3ERR_BADTYPE");

    // One NULL call in three fragments.
    let msg = call(9, 2, NFS, 3, 0, 0, &[]);
    let mut stream = Vec::new();
    for (i, piece) in msg.chunks(12).enumerate() {
        let last = if (i + 1) * 12 >= msg.len() { 0x8000_0000 } else { 0 };
        stream.extend_from_slice(&(last | piece.len() as u32).to_be_bytes());
        stream.extend_from_slice(piece);
    }
    s.write_all(&stream)?;
    if words(&read_record(&mut s)?)[0] != 9 {
        bail!("the fragmented call was not answered");
    }
    passed("a call in three fragments");

    // 200 calls written at once, all answered.
    let mut burst = Vec::new();
    for xid in 1000..1200 {
        burst.extend_from_slice(&framed(&call(xid, 2, NFS, 3, 0, 0, &[])));
    }
    s.write_all(&burst)?;
    let mut xids: Vec<u32> = (0..200).map(|_| read_record(&mut s).map(|r| words(&r)[0])).collect::<Result<_>>()?;
    xids.sort();
    if xids != (1000..1200).collect::<Vec<_>>() {
        bail!("pipelined calls: replies for {xids:?}");
    }
    passed("200 pipelined calls, each answered once");

    // Garbage closes the connection; the server goes on.
    s.write_all(&framed(b"GET / HTTP/1.1\r\n\r\n\0"))?;
    if !closed(&mut s) {
        bail!("a record that is not RPC left the connection open");
    }
    let mut s = dial(port, true)?;
    s.write_all(&0xffff_fff0u32.to_be_bytes())?;
    if !closed(&mut s) {
        bail!("a 2 GiB record header left the connection open");
    }
    passed("garbage and an oversized record close their connection");
    let mut s = dial(port, true)?;
    if !accepted(&reply_to(&mut s, &call(10, 2, NFS, 3, 0, 0, &[]))?, 0) {
        bail!("the server stopped answering");
    }
    passed("the server still answers new connections");
    Ok(())
}

/// `nfs-probe raw-unprivileged PORT`: a connection from an unprivileged port gets no answer.
pub fn unprivileged_refused(port: u16) -> Result<()> {
    let mut s = dial(port, false)?;
    let _ = s.write_all(&framed(&call(1, 2, NFS, 3, 0, 0, &[])));
    if !closed(&mut s) {
        bail!("a connection from an unprivileged port was served");
    }
    passed("a connection from an unprivileged port is closed unanswered");
    Ok(())
}

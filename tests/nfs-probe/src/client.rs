//! Connecting, path walks, and the whole-tree and whole-file checks.

use std::collections::VecDeque;

use anyhow::{anyhow, bail, Context, Result};
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::smol::{SmolConnector, SmolIo};
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

pub type Conn = Nfs3Connection<SmolIo<smol::net::TcpStream>>;

/// Mount `/` as root (uid 0), from a privileged port.
pub async fn connect(port: u16) -> Result<Conn> {
    connect_as(port, 0, 0).await
}

pub async fn connect_as(port: u16, uid: u32, gid: u32) -> Result<Conn> {
    let auth = auth_unix { stamp: 1, machinename: Opaque::owned(b"probe".to_vec()), uid, gid, gids: vec![] };
    Nfs3ConnectionBuilder::new(SmolConnector, "127.0.0.1", "/")
        .mount_port(port)
        .nfs3_port(port)
        .credential(opaque_auth::auth_unix(&auth))
        .mount()
        .await
        .map_err(|e| anyhow!("mount: {e:?}"))
}

pub fn name(s: &str) -> filename3<'static> {
    filename3::from(s.as_bytes().to_vec())
}

pub async fn lookup(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<Result<(nfs_fh3, fattr3), nfsstat3>> {
    let res = c.lookup(&LOOKUP3args { what: diropargs3 { dir: dir.clone(), name: name(n) } }).await?;
    Ok(match res {
        Nfs3Result::Ok(ok) => {
            let Nfs3Option::Some(attr) = ok.obj_attributes else { bail!("LOOKUP {n}: no attributes") };
            Ok((ok.object, attr))
        }
        Nfs3Result::Err((s, _)) => Err(s),
    })
}

pub async fn walk(c: &mut Conn, path: &str) -> Result<(nfs_fh3, fattr3)> {
    let root = c.root_nfs_fh3();
    let mut cur = (root.clone(), getattr(c, &root).await?);
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = lookup(c, &cur.0, part).await?.map_err(|s| anyhow!("LOOKUP {part} in {path}: {s}"))?;
    }
    Ok(cur)
}

pub async fn getattr(c: &mut Conn, fh: &nfs_fh3) -> Result<fattr3> {
    match c.getattr(&GETATTR3args { object: fh.clone() }).await? {
        Nfs3Result::Ok(ok) => Ok(ok.obj_attributes),
        Nfs3Result::Err((s, _)) => bail!("GETATTR: {s}"),
    }
}

/// A directory's entries (but `.` and `..`), paged by READDIRPLUS with `maxcount`; also how
/// many calls it took.
pub async fn list_plus(c: &mut Conn, dir: &nfs_fh3, maxcount: u32) -> Result<(Vec<(String, nfs_fh3, fattr3)>, u32)> {
    let mut out = Vec::new();
    let (mut cookie, mut verf, mut calls) = (0u64, cookieverf3::default(), 0);
    loop {
        calls += 1;
        let args = READDIRPLUS3args { dir: dir.clone(), cookie, cookieverf: verf, dircount: maxcount, maxcount };
        let ok = match c.readdirplus(&args).await? {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((s, _)) => bail!("READDIRPLUS at cookie {cookie}: {s}"),
        };
        verf = ok.cookieverf;
        let page = ok.reply.entries.0;
        if page.is_empty() && !ok.reply.eof {
            bail!("READDIRPLUS at cookie {cookie}: an empty page before the end");
        }
        for e in page {
            cookie = e.cookie;
            let n = String::from_utf8(e.name.0.to_vec())?;
            if n == "." || n == ".." {
                continue;
            }
            let (Nfs3Option::Some(attr), Nfs3Option::Some(fh)) = (e.name_attributes, e.name_handle) else {
                bail!("READDIRPLUS entry {n} without attributes or handle");
            };
            if attr.fileid != e.fileid {
                bail!("READDIRPLUS entry {n}: fileid {} but attributes say {}", e.fileid, attr.fileid);
            }
            out.push((n, fh, attr));
        }
        if ok.reply.eof {
            return Ok((out, calls));
        }
    }
}

/// Every regular file and directory below the root, breadth first.
async fn everything(c: &mut Conn, maxcount: u32) -> Result<(Vec<(String, nfs_fh3, fattr3)>, u32, u32)> {
    let mut queue = VecDeque::from([(String::from("."), c.root_nfs_fh3())]);
    let (mut all, mut calls, mut dirs) = (Vec::new(), 0, 0);
    while let Some((path, fh)) = queue.pop_front() {
        dirs += 1;
        let (entries, n) = list_plus(c, &fh, maxcount).await?;
        calls += n;
        for (name, child, attr) in entries {
            let p = format!("{path}/{name}");
            if matches!(attr.type_, ftype3::NF3DIR) {
                queue.push_back((p.clone(), child.clone()));
            }
            all.push((p, child, attr));
        }
    }
    Ok((all, calls, dirs))
}

pub async fn tree(port: u16, maxcount: u32) -> Result<()> {
    let mut c = connect(port).await?;
    let (all, calls, dirs) = everything(&mut c, maxcount).await?;
    for (p, _, _) in &all {
        println!("{p}");
    }
    eprintln!("{} entries in {dirs} directories, {calls} READDIRPLUS calls of at most {maxcount} bytes", all.len());
    Ok(())
}

pub async fn read_all(c: &mut Conn, fh: &nfs_fh3, size: u64) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(size as usize);
    loop {
        let args = READ3args { file: fh.clone(), offset: data.len() as u64, count: 1 << 20 };
        let ok = match c.read(&args).await? {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((s, _)) => bail!("READ at {}: {s}", data.len()),
        };
        if ok.count as usize != ok.data.len() {
            bail!("READ count {} but {} bytes", ok.count, ok.data.len());
        }
        data.extend_from_slice(&ok.data);
        if ok.eof {
            return Ok(data);
        }
        if ok.data.is_empty() {
            bail!("READ at {}: no bytes and no eof", data.len());
        }
    }
}

pub async fn sha256_all(port: u16) -> Result<()> {
    let mut c = connect(port).await?;
    let (all, _, _) = everything(&mut c, 64 * 1024).await?;
    for (p, fh, attr) in all.iter().filter(|(_, _, a)| matches!(a.type_, ftype3::NF3REG)) {
        let data = read_all(&mut c, fh, attr.size).await?;
        if data.len() as u64 != attr.size {
            bail!("{p}: read {} bytes, size {}", data.len(), attr.size);
        }
        println!("{:x}  {p}", Sha256::digest(&data));
    }
    Ok(())
}

pub async fn random_reads(port: u16, path: &str, local: &str, n: u32) -> Result<()> {
    let want = std::fs::read(local).with_context(|| local.to_string())?;
    let mut c = connect(port).await?;
    let (fh, attr) = walk(&mut c, path).await?;
    if attr.size != want.len() as u64 {
        bail!("{path}: size {} over NFS, {} locally", attr.size, want.len());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..n {
        let offset = rng.gen_range(0..want.len() as u64 + 10);
        let count = rng.gen_range(1..=1u32 << 20);
        let ok = match c.read(&READ3args { file: fh.clone(), offset, count }).await? {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((s, _)) => bail!("READ {offset}+{count}: {s}"),
        };
        let start = (offset as usize).min(want.len());
        let end = (start + count as usize).min(want.len());
        if ok.data.as_ref() != &want[start..end] || ok.eof != (end == want.len()) {
            bail!("READ {offset}+{count}: {} bytes, eof {}, expected {} bytes", ok.data.len(), ok.eof, end - start);
        }
    }
    println!("{n} random READs of {path} match");
    Ok(())
}

/// Deterministic content of chunk `i`.
fn chunk(i: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(i);
    (0..len).map(|_| rng.gen()).collect()
}

pub async fn write_out_of_order(port: u16, path: &str, mib: u64) -> Result<()> {
    let mut c = connect(port).await?;
    let (dir_path, file) = path.rsplit_once('/').unwrap_or(("", path));
    let (dir, _) = walk(&mut c, dir_path).await?;
    let how = createhow3::GUARDED(sattr3::default());
    let created = c.create(&CREATE3args { where_: diropargs3 { dir: dir.clone(), name: name(file) }, how }).await?;
    let fh = match created {
        Nfs3Result::Ok(CREATE3resok { obj: Nfs3Option::Some(fh), .. }) => fh,
        other => bail!("CREATE {path}: {other:?}"),
    };
    let mut order: Vec<u64> = (0..mib).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(mib);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let mut verifiers = std::collections::BTreeSet::new();
    for &i in &order {
        let data = chunk(i, 1 << 20);
        let args = WRITE3args {
            file: fh.clone(),
            offset: i << 20,
            count: data.len() as u32,
            stable: stable_how::UNSTABLE,
            data: Opaque::owned(data),
        };
        match c.write(&args).await? {
            Nfs3Result::Ok(ok) if ok.count == 1 << 20 => {
                verifiers.insert(ok.verf.0);
            }
            other => bail!("WRITE chunk {i}: {other:?}"),
        }
    }
    let committed = c.commit(&COMMIT3args { file: fh.clone(), offset: 0, count: 0 }).await?;
    let verf = match committed {
        Nfs3Result::Ok(ok) => ok.verf.0,
        Nfs3Result::Err((s, _)) => bail!("COMMIT: {s}"),
    };
    if verifiers.len() != 1 || !verifiers.contains(&verf) {
        bail!("write verifiers {verifiers:?}, commit verifier {verf:?}: the server restarted?");
    }
    let mut hash = Sha256::new();
    for i in 0..mib {
        hash.update(chunk(i, 1 << 20));
    }
    println!("{:x}", hash.finalize());
    Ok(())
}

pub async fn save_handles(port: u16, file: &str, paths: &[&str]) -> Result<()> {
    let mut c = connect(port).await?;
    let mut out = String::new();
    for p in paths {
        let (fh, attr) = walk(&mut c, p).await?;
        let hex: String = fh.data.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{p} {hex} {} {}\n", attr.fileid, attr.size));
    }
    std::fs::write(file, out)?;
    Ok(())
}

pub async fn check_handles(port: u16, file: &str) -> Result<()> {
    let mut c = connect(port).await?;
    for line in std::fs::read_to_string(file)?.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let [p, hex, fileid, size] = f[..] else { bail!("bad line {line:?}") };
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16)).collect::<Result<_, _>>()?;
        let fh = nfs_fh3 { data: Opaque::owned(bytes) };
        let attr = getattr(&mut c, &fh).await.with_context(|| format!("{p}: the saved handle"))?;
        if attr.fileid.to_string() != fileid || attr.size.to_string() != size {
            bail!("{p}: fileid {} size {}, saved {fileid} {size}", attr.fileid, attr.size);
        }
        if matches!(attr.type_, ftype3::NF3REG) {
            let data = read_all(&mut c, &fh, attr.size).await?;
            if data.len() as u64 != attr.size {
                bail!("{p}: read {} bytes through the saved handle", data.len());
            }
        }
        println!("{p}: the saved handle resolves (fileid {fileid})");
    }
    Ok(())
}

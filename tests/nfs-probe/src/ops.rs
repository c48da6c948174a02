//! Every NFSv3 procedure and its error cases against a writable bucket mount, through
//! `nfs3_client`. Works in a fresh directory `probe-ops` of the mount's root.

use anyhow::{anyhow, bail, Result};
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::xdr_codec::Opaque;

use crate::client::{self, connect, getattr, lookup, name, read_all, Conn};

fn passed(what: &str) {
    println!("ok   {what}");
}

fn expect_status<T: std::fmt::Debug, E: std::fmt::Debug>(
    what: &str,
    r: Nfs3Result<T, E>,
    want: nfsstat3,
) -> Result<()> {
    match r {
        Nfs3Result::Err((s, _)) if s == want => {
            passed(&format!("{what}: {want}"));
            Ok(())
        }
        other => bail!("{what}: expected {want}, got {other:?}"),
    }
}

fn dirop(dir: &nfs_fh3, n: &str) -> diropargs3<'static> {
    diropargs3 { dir: dir.clone(), name: name(n) }
}

fn mode(m: u32) -> sattr3 {
    sattr3 { mode: Nfs3Option::Some(m), ..Default::default() }
}

async fn create(c: &mut Conn, dir: &nfs_fh3, n: &str, how: createhow3) -> Result<CREATE3res> {
    Ok(c.create(&CREATE3args { where_: dirop(dir, n), how }).await?)
}

fn new_handle(what: &str, fh: post_op_fh3) -> Result<nfs_fh3> {
    match fh {
        Nfs3Option::Some(fh) => Ok(fh),
        Nfs3Option::None => bail!("{what}: no handle"),
    }
}

async fn write(c: &mut Conn, fh: &nfs_fh3, offset: u64, data: &[u8], stable: stable_how) -> Result<WRITE3resok> {
    let args =
        WRITE3args { file: fh.clone(), offset, count: data.len() as u32, stable, data: Opaque::owned(data.to_vec()) };
    match c.write(&args).await? {
        Nfs3Result::Ok(ok) => Ok(ok),
        Nfs3Result::Err((s, _)) => bail!("WRITE {offset}+{}: {s}", data.len()),
    }
}

pub async fn run(port: u16) -> Result<()> {
    let mut c = connect(port).await?;
    let root = c.root_nfs_fh3();
    c.null().await?;
    passed("NULL");

    let info = c.fsinfo(&FSINFO3args { fsroot: root.clone() }).await?.unwrap();
    if info.rtmax < 65536 || info.wtmax < 65536 || info.properties & 0x2 == 0 {
        bail!("FSINFO: {info:?}");
    }
    passed("FSINFO");
    let stat = c.fsstat(&FSSTAT3args { fsroot: root.clone() }).await?.unwrap();
    if stat.tbytes == 0 {
        bail!("FSSTAT: {stat:?}");
    }
    passed("FSSTAT");
    let pc = c.pathconf(&PATHCONF3args { object: root.clone() }).await?.unwrap();
    if pc.name_max != 255 || !pc.case_preserving || pc.case_insensitive {
        bail!("PATHCONF: {pc:?}");
    }
    passed("PATHCONF");
    let rootattr = getattr(&mut c, &root).await?;
    if !matches!(rootattr.type_, ftype3::NF3DIR) {
        bail!("GETATTR of the root: {rootattr:?}");
    }
    passed("GETATTR of the root");
    let acc = c.access(&ACCESS3args { object: root.clone(), access: 0x3f }).await?.unwrap();
    if acc.access & 0x1f != 0x1f {
        bail!("ACCESS of the root as root: {:#x}", acc.access);
    }
    passed("ACCESS");

    // MKDIR, and MKDIR of an existing name.
    let mk = c.mkdir(&MKDIR3args { where_: dirop(&root, "probe-ops"), attributes: mode(0o755) }).await?;
    let dir = match mk {
        Nfs3Result::Ok(ok) if ok.dir_wcc.after.is_some() => new_handle("MKDIR", ok.obj)?,
        other => bail!("MKDIR: {other:?}"),
    };
    passed("MKDIR (with the directory's wcc data)");
    let again = c.mkdir(&MKDIR3args { where_: dirop(&root, "probe-ops"), attributes: mode(0o755) }).await?;
    expect_status("MKDIR of an existing name", again, nfsstat3::NFS3ERR_EXIST)?;

    // CREATE in its three modes.
    let f = match create(&mut c, &dir, "f.txt", createhow3::UNCHECKED(mode(0o644))).await? {
        Nfs3Result::Ok(ok) => new_handle("CREATE", ok.obj)?,
        Nfs3Result::Err((s, _)) => bail!("CREATE UNCHECKED: {s}"),
    };
    passed("CREATE UNCHECKED");
    let r = create(&mut c, &dir, "f.txt", createhow3::GUARDED(mode(0o644))).await?;
    expect_status("CREATE GUARDED of an existing name", r, nfsstat3::NFS3ERR_EXIST)?;
    let verf = createverf3([1, 2, 3, 4, 5, 6, 7, 8]);
    let first = match create(&mut c, &dir, "x.bin", createhow3::EXCLUSIVE(verf)).await? {
        Nfs3Result::Ok(ok) => new_handle("CREATE EXCLUSIVE", ok.obj)?,
        Nfs3Result::Err((s, _)) => bail!("CREATE EXCLUSIVE: {s}"),
    };
    match create(&mut c, &dir, "x.bin", createhow3::EXCLUSIVE(verf)).await? {
        Nfs3Result::Ok(ok) if new_handle("retransmission", ok.obj.clone())? == first => {
            passed("CREATE EXCLUSIVE retransmitted: the same file")
        }
        other => bail!("CREATE EXCLUSIVE retransmitted: {other:?}"),
    }
    let r = create(&mut c, &dir, "x.bin", createhow3::EXCLUSIVE(createverf3([9; 8]))).await?;
    expect_status("CREATE EXCLUSIVE with another verifier", r, nfsstat3::NFS3ERR_EXIST)?;

    // WRITE and READ back; wcc data moves.
    let w = write(&mut c, &f, 0, b"hello nfs\n", stable_how::FILE_SYNC).await?;
    if !matches!(w.committed, stable_how::FILE_SYNC) || w.count != 10 {
        bail!("WRITE FILE_SYNC answered {w:?}");
    }
    let Nfs3Option::Some(after) = w.file_wcc.after else { bail!("WRITE without post-op attributes") };
    if after.size != 10 {
        bail!("WRITE: post-op size {}", after.size);
    }
    passed("WRITE FILE_SYNC (committed, with wcc data)");
    let w2 = write(&mut c, &f, 6, b"NFS", stable_how::UNSTABLE).await?;
    if w2.verf.0 != w.verf.0 {
        bail!("write verifier changed within one server run");
    }
    let data = read_all(&mut c, &f, 10).await?;
    if data != b"hello NFS\n" {
        bail!("READ back: {:?}", String::from_utf8_lossy(&data));
    }
    passed("UNSTABLE WRITE in place, READ back");
    let commit = c.commit(&COMMIT3args { file: f.clone(), offset: 0, count: 0 }).await?.unwrap();
    if commit.verf.0 != w.verf.0 {
        bail!("COMMIT verifier differs from WRITE's");
    }
    passed("COMMIT");

    // SETATTR: truncate with a guard that matches, then one that does not.
    let attr = getattr(&mut c, &f).await?;
    let truncate = sattr3 { size: Nfs3Option::Some(5), ..Default::default() };
    let res = c
        .setattr(&SETATTR3args {
            object: f.clone(),
            new_attributes: truncate.clone(),
            guard: Nfs3Option::Some(attr.ctime),
        })
        .await?;
    match res {
        Nfs3Result::Ok(ok) if matches!(ok.obj_wcc.after, Nfs3Option::Some(ref a) if a.size == 5) => {
            passed("SETATTR size with a matching guard")
        }
        other => bail!("SETATTR guarded: {other:?}"),
    }
    let stale = nfstime3 { seconds: 1, nseconds: 0 };
    let res = c
        .setattr(&SETATTR3args { object: f.clone(), new_attributes: truncate, guard: Nfs3Option::Some(stale) })
        .await?;
    expect_status("SETATTR with a guard that no longer matches", res, nfsstat3::NFS3ERR_NOT_SYNC)?;
    let chmod =
        c.setattr(&SETATTR3args { object: f.clone(), new_attributes: mode(0o600), guard: Nfs3Option::None }).await?;
    match chmod {
        Nfs3Result::Ok(_) if getattr(&mut c, &f).await?.mode & 0o777 == 0o600 => passed("SETATTR mode"),
        other => bail!("SETATTR mode: {other:?}"),
    }

    // SYMLINK and READLINK; READLINK of a file.
    let target = nfspath3::from(b"f.txt".to_vec());
    let sl = c
        .symlink(&SYMLINK3args {
            where_: dirop(&dir, "link"),
            symlink: symlinkdata3 { symlink_attributes: sattr3::default(), symlink_data: target },
        })
        .await?;
    let link = match sl {
        Nfs3Result::Ok(ok) => new_handle("SYMLINK", ok.obj)?,
        Nfs3Result::Err((s, _)) => bail!("SYMLINK: {s}"),
    };
    let rl = c.readlink(&READLINK3args { symlink: link }).await?.unwrap();
    if rl.data.0.as_ref() != b"f.txt" {
        bail!("READLINK: {rl:?}");
    }
    passed("SYMLINK, READLINK");
    let r = c.readlink(&READLINK3args { symlink: f.clone() }).await?;
    expect_status("READLINK of a regular file", r, nfsstat3::NFS3ERR_INVAL)?;

    // MKNOD: a FIFO is a mount-only node; a regular file through MKNOD is BADTYPE.
    let fifo = c.mknod(&MKNOD3args { where_: dirop(&dir, "fifo"), what: mknoddata3::NF3FIFO(mode(0o644)) }).await?;
    match fifo {
        Nfs3Result::Ok(ok) if matches!(ok.obj_attributes, Nfs3Option::Some(ref a) if matches!(a.type_, ftype3::NF3FIFO)) => {
            passed("MKNOD FIFO")
        }
        other => bail!("MKNOD FIFO: {other:?}"),
    }

    // LINK is a copy.
    let l = c.link(&LINK3args { file: f.clone(), link: dirop(&dir, "copy.txt") }).await?;
    if !matches!(l, Nfs3Result::Ok(_)) {
        bail!("LINK: {l:?}");
    }
    let (copy, copy_attr) = lookup(&mut c, &dir, "copy.txt").await?.map_err(|s| anyhow!("LOOKUP copy.txt: {s}"))?;
    if read_all(&mut c, &copy, copy_attr.size).await? != b"hello" {
        bail!("the LINK copy does not hold the file's bytes");
    }
    passed("LINK (a copy with the same bytes)");

    // RENAME, LOOKUP of the old name, REMOVE.
    let rn = c.rename(&RENAME3args { from: dirop(&dir, "copy.txt"), to: dirop(&dir, "moved.txt") }).await?;
    match rn {
        Nfs3Result::Ok(ok) if ok.fromdir_wcc.after.is_some() && ok.todir_wcc.after.is_some() => {
            passed("RENAME (with wcc data)")
        }
        other => bail!("RENAME: {other:?}"),
    }
    match lookup(&mut c, &dir, "copy.txt").await? {
        Err(nfsstat3::NFS3ERR_NOENT) => passed("LOOKUP of a renamed-away name: NFS3ERR_NOENT"),
        other => bail!("LOOKUP copy.txt after RENAME: {other:?}"),
    }
    let rm = c.remove(&REMOVE3args { object: dirop(&dir, "moved.txt") }).await?;
    if !matches!(rm, Nfs3Result::Ok(_)) {
        bail!("REMOVE: {rm:?}");
    }
    passed("REMOVE");
    let rm = c.remove(&REMOVE3args { object: dirop(&dir, "moved.txt") }).await?;
    expect_status("REMOVE of a missing name", rm, nfsstat3::NFS3ERR_NOENT)?;

    // READDIR paging with a small count, READDIR that cannot fit one entry.
    for i in 0..40 {
        let r = create(&mut c, &dir, &format!("entry-{i:02}"), createhow3::GUARDED(mode(0o644))).await?;
        if !matches!(r, Nfs3Result::Ok(_)) {
            bail!("CREATE entry-{i:02}: {r:?}");
        }
    }
    let (mut cookie, mut verf, mut names, mut calls) = (0, cookieverf3::default(), Vec::new(), 0);
    loop {
        calls += 1;
        let res = c.readdir(&READDIR3args { dir: dir.clone(), cookie, cookieverf: verf, count: 400 }).await?.unwrap();
        verf = res.cookieverf;
        for e in res.reply.entries.0 {
            cookie = e.cookie;
            names.push(String::from_utf8(e.name.0.to_vec())?);
        }
        if res.reply.eof {
            break;
        }
    }
    let entries = names.iter().filter(|n| n.starts_with("entry-")).count();
    if entries != 40 || calls < 4 || names.iter().collect::<std::collections::BTreeSet<_>>().len() != names.len() {
        bail!("READDIR count 400: {entries} entries in {calls} calls: {names:?}");
    }
    passed(&format!("READDIR pages of 400 bytes: all 40 entries, once each, in {calls} calls"));
    let r =
        c.readdir(&READDIR3args { dir: dir.clone(), cookie: 0, cookieverf: cookieverf3::default(), count: 30 }).await?;
    expect_status("READDIR with room for no entry", r, nfsstat3::NFS3ERR_TOOSMALL)?;
    let r =
        c.readdir(&READDIR3args { dir: dir.clone(), cookie: 5, cookieverf: cookieverf3([7; 8]), count: 4096 }).await?;
    expect_status("READDIR with another directory's cookie verifier", r, nfsstat3::NFS3ERR_BAD_COOKIE)?;
    let (plus, _) = client::list_plus(&mut c, &dir, 1024).await?;
    if plus.len() < 40 {
        bail!("READDIRPLUS of 1024 bytes: {} entries", plus.len());
    }
    passed("READDIRPLUS pages with handles and attributes");

    // RMDIR of a non-empty directory, of a file; names too long; bad and stale handles.
    let r = c.rmdir(&RMDIR3args { object: dirop(&root, "probe-ops") }).await?;
    expect_status("RMDIR of a non-empty directory", r, nfsstat3::NFS3ERR_NOTEMPTY)?;
    let r = c.rmdir(&RMDIR3args { object: dirop(&dir, "f.txt") }).await?;
    expect_status("RMDIR of a file", r, nfsstat3::NFS3ERR_NOTDIR)?;
    let long = "n".repeat(256);
    match lookup(&mut c, &dir, &long).await? {
        Err(nfsstat3::NFS3ERR_NAMETOOLONG) => passed("LOOKUP of a 256-byte name: NFS3ERR_NAMETOOLONG"),
        other => bail!("LOOKUP of a 256-byte name: {other:?}"),
    }
    let r = c.lookup(&LOOKUP3args { what: dirop(&f, "x") }).await?;
    expect_status("LOOKUP in a regular file", r, nfsstat3::NFS3ERR_NOTDIR)?;
    let r = c.read(&READ3args { file: dir.clone(), offset: 0, count: 10 }).await?;
    expect_status("READ of a directory", r, nfsstat3::NFS3ERR_ISDIR)?;
    let garbage = nfs_fh3 { data: Opaque::owned(vec![1, 2, 3]) };
    let r = c.getattr(&GETATTR3args { object: garbage }).await?;
    expect_status("GETATTR of a garbage handle", r, nfsstat3::NFS3ERR_BADHANDLE)?;
    let mut unknown = f.data.to_vec();
    let last = unknown.len() - 1;
    unknown[last] ^= 0x5a;
    let r = c.getattr(&GETATTR3args { object: nfs_fh3 { data: Opaque::owned(unknown) } }).await?;
    expect_status("GETATTR of a well-formed handle of no file", r, nfsstat3::NFS3ERR_STALE)?;
    let rm = c.remove(&REMOVE3args { object: dirop(&dir, "f.txt") }).await?;
    if !matches!(rm, Nfs3Result::Ok(_)) {
        bail!("REMOVE f.txt: {rm:?}");
    }
    let r = c.getattr(&GETATTR3args { object: f.clone() }).await?;
    expect_status("GETATTR of a removed file's handle", r, nfsstat3::NFS3ERR_STALE)?;

    // A caller without write permission on the root is refused.
    let mut nobody = client::connect_as(port, 65534, 65534).await?;
    let r = nobody.mkdir(&MKDIR3args { where_: dirop(&root, "nobody-was-here"), attributes: mode(0o755) }).await?;
    expect_status("MKDIR as another user in a 0755 directory", r, nfsstat3::NFS3ERR_ACCES)?;
    match lookup(&mut nobody, &root, "probe-ops").await? {
        Ok(_) => passed("LOOKUP as another user (read access)"),
        Err(s) => bail!("LOOKUP as another user: {s}"),
    }
    println!("all procedures checked");
    Ok(())
}

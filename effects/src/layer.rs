//! The overlay's local layer (`--overlay`): the mount point's own directory, held by an `O_PATH`
//! descriptor taken before mounting (once mounted, nobody else can reach it by path).
//!
//! Every path is resolved with `openat2` beneath that descriptor with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`, and names are checked before
//! that: no `..`, no symlink (even one planted in the layer meanwhile) and no mount crossing
//! leads outside the layer. Such an attempt fails as `EACCES`. Changes to a resolved entry go
//! through its descriptor (`/proc/self/fd/N` where a call takes no descriptor).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use bytes::Bytes;
use hfm_core::{Completion, EffectFailure, Errno, LayerChange, LayerEntry, LayerOp, LocalError};

/// Most entries a layer may hold (its tree is read whole at mount).
const MAX_ENTRIES: usize = 2_000_000;

const RESOLVE: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV;

pub struct Layer {
    root: OwnedFd,
}

fn failure(op: &str, path: &str, e: io::Error) -> EffectFailure {
    let shown = if path.is_empty() { "/" } else { path };
    let kind = match e.raw_os_error() {
        Some(libc::ENOSPC) => LocalError::NoSpace,
        // What RESOLVE_* refuses: a symlink, `..` or a mount on the way.
        Some(libc::ELOOP | libc::EXDEV) => LocalError::Refused(Errno::Acces),
        Some(code) => Errno::from_code(code).map_or(LocalError::Io, LocalError::Refused),
        None => LocalError::Io,
    };
    EffectFailure::local(kind, format!("{op} {shown} in the overlay's local layer: {e}"))
}

fn refused(path: &str, why: &str) -> EffectFailure {
    EffectFailure::local(LocalError::Refused(Errno::Acces), format!("{path:?} in the overlay's local layer: {why}"))
}

/// A path core named: '/'-separated names, none empty, `.`, `..` or holding NUL.
fn check_path(path: &str) -> Result<(), EffectFailure> {
    if path.is_empty() || path.split('/').any(|n| n.is_empty() || n == "." || n == ".." || n.contains('\0')) {
        return Err(refused(path, "not a path beneath the layer"));
    }
    Ok(())
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn proc_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn entry(path: &str, meta: &std::fs::Metadata) -> LayerEntry {
    let ns = |secs: i64, nsec: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsec);
    LayerEntry {
        path: path.to_string(),
        dir: meta.is_dir(),
        size: if meta.is_dir() { 0 } else { meta.len() },
        mode: (meta.mode() & 0o7777) as u16,
        uid: meta.uid(),
        gid: meta.gid(),
        atime_ns: ns(meta.atime(), meta.atime_nsec()),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
    }
}

impl Layer {
    /// Hold directory `dir` as the layer (call before mounting over it).
    pub fn open(dir: &Path) -> Result<Layer, String> {
        let c = CString::new(dir.as_os_str().as_bytes()).map_err(|_| format!("{}: NUL in path", dir.display()))?;
        // SAFETY: `c` is a valid NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(format!(
                "opening {} as the overlay's local layer: {}",
                dir.display(),
                io::Error::last_os_error()
            ));
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Layer { root: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Open `path` ("" is the layer itself) beneath the layer. RESOLVE_NO_SYMLINKS refuses a
    /// symlink anywhere on the way, the last name included (`ELOOP`); no `O_NOFOLLOW`, which
    /// would hand back the symlink itself to an `O_PATH` open.
    fn resolve(&self, path: &str, flags: libc::c_int, mode: u16) -> io::Result<OwnedFd> {
        let c = cstr(if path.is_empty() { "." } else { path })?;
        // SAFETY: open_how is plain data; zero is "no flags" for every field.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.mode = u64::from(mode);
        how.resolve = RESOLVE;
        // SAFETY: valid pointers to `c` and `how`, with `how`'s size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    /// The directory holding `path`, and `path`'s last name.
    fn parent(&self, path: &str) -> io::Result<(OwnedFd, CString)> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok((self.resolve(dir, libc::O_PATH | libc::O_DIRECTORY, 0)?, cstr(name)?))
    }

    fn stat(&self, path: &str) -> io::Result<LayerEntry> {
        let fd = self.resolve(path, libc::O_PATH, 0)?;
        Ok(entry(path, &File::from(fd).metadata()?))
    }

    fn chmod(fd: &OwnedFd, mode: u16) -> io::Result<()> {
        // SAFETY: a valid C string; the result is checked.
        check(unsafe { libc::chmod(proc_path(fd).as_ptr(), libc::mode_t::from(mode)) })
    }

    fn mkdir(&self, path: &str, mode: u16, exist_ok: bool) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: valid descriptor and C string; the result is checked.
        match check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), libc::mode_t::from(mode)) }) {
            Err(e) if exist_ok && e.raw_os_error() == Some(libc::EEXIST) => return Ok(()),
            other => other?,
        }
        // Exactly `mode`, whatever the process umask took away.
        Self::chmod(&self.resolve(path, libc::O_PATH | libc::O_DIRECTORY, 0)?, mode)
    }

    fn make_parents(&self, dirs: &[(String, u16)]) -> Result<(), EffectFailure> {
        for (dir, mode) in dirs {
            check_path(dir)?;
            self.mkdir(dir, *mode, true).map_err(|e| failure("creating directory", dir, e))?;
        }
        Ok(())
    }

    pub fn execute(&self, op: &LayerOp) -> Result<Completion, EffectFailure> {
        match op {
            LayerOp::Walk => self.walk().map(Completion::Listed),
            LayerOp::Read { path, range } => {
                check_path(path)?;
                let f = File::from(self.resolve(path, libc::O_RDONLY, 0).map_err(|e| failure("opening", path, e))?);
                let buf = crate::stage::read_range(&f, range.clone()).map_err(|e| failure("reading", path, e))?;
                Ok(Completion::Bytes(vec![Bytes::from(buf)]))
            }
            LayerOp::Write { path, offset, data, sync } => {
                check_path(path)?;
                let f = File::from(self.resolve(path, libc::O_WRONLY, 0).map_err(|e| failure("opening", path, e))?);
                f.write_all_at(data, *offset).map_err(|e| failure("writing", path, e))?;
                if *sync {
                    f.sync_data().map_err(|e| failure("syncing", path, e))?;
                }
                Ok(Completion::Done)
            }
            LayerOp::Create { path, dir, mode, owner, make_parents } => {
                check_path(path)?;
                self.make_parents(make_parents)?;
                if *dir {
                    self.mkdir(path, *mode, false).map_err(|e| failure("creating directory", path, e))?;
                } else {
                    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
                    let fd = self.resolve(path, flags, *mode).map_err(|e| failure("creating", path, e))?;
                    // SAFETY: a valid descriptor; the result is checked.
                    check(unsafe { libc::fchmod(fd.as_raw_fd(), libc::mode_t::from(*mode)) })
                        .map_err(|e| failure("setting the mode of", path, e))?;
                }
                if let Some((uid, gid)) = owner {
                    self.give_away(path, *uid, *gid, *mode).map_err(|e| failure("setting the owner of", path, e))?;
                }
                Ok(Completion::Listed(vec![self.stat(path).map_err(|e| failure("reading", path, e))?]))
            }
            LayerOp::SetAttr { path, change } => {
                check_path(path)?;
                self.set_attr(path, change).map_err(|e| failure("changing", path, e))?;
                Ok(Completion::Listed(vec![self.stat(path).map_err(|e| failure("reading", path, e))?]))
            }
            LayerOp::Unlink { path } | LayerOp::Rmdir { path } => {
                check_path(path)?;
                let flags = if matches!(op, LayerOp::Rmdir { .. }) { libc::AT_REMOVEDIR } else { 0 };
                let (dir, name) = self.parent(path).map_err(|e| failure("removing", path, e))?;
                // SAFETY: valid descriptor and C string; the result is checked.
                check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
                    .map_err(|e| failure("removing", path, e))?;
                Ok(Completion::Done)
            }
            LayerOp::Rename { from, to, no_replace, make_parents } => {
                check_path(from)?;
                check_path(to)?;
                self.make_parents(make_parents)?;
                let (from_dir, from_name) = self.parent(from).map_err(|e| failure("renaming", from, e))?;
                let (to_dir, to_name) = self.parent(to).map_err(|e| failure("renaming to", to, e))?;
                let flags = if *no_replace { libc::RENAME_NOREPLACE } else { 0 };
                // SAFETY: valid descriptors and C strings; the result is checked.
                check(unsafe {
                    libc::renameat2(
                        from_dir.as_raw_fd(),
                        from_name.as_ptr(),
                        to_dir.as_raw_fd(),
                        to_name.as_ptr(),
                        flags,
                    )
                })
                .map_err(|e| failure("renaming", from, e))?;
                Ok(Completion::Done)
            }
            LayerOp::Sync { path } => {
                check_path(path)?;
                let f = File::from(self.resolve(path, libc::O_RDONLY, 0).map_err(|e| failure("opening", path, e))?);
                f.sync_all().map_err(|e| failure("syncing", path, e))?;
                Ok(Completion::Done)
            }
        }
    }

    /// Make a new entry `uid`:`gid`'s (its creator's). A process that may not give files away
    /// (not root) keeps them as its own; `mode` again, since chown clears set-id bits.
    fn give_away(&self, path: &str, uid: u32, gid: u32, mode: u16) -> io::Result<()> {
        let fd = self.resolve(path, libc::O_PATH, 0)?;
        // SAFETY: a valid descriptor and an empty C string with AT_EMPTY_PATH.
        match check(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
            Err(e) => Err(e),
            Ok(()) if mode & 0o6000 != 0 => Self::chmod(&fd, mode),
            Ok(()) => Ok(()),
        }
    }

    fn set_attr(&self, path: &str, change: &LayerChange) -> io::Result<()> {
        if let Some(size) = change.size {
            File::from(self.resolve(path, libc::O_WRONLY, 0)?).set_len(size)?;
        }
        let fd = self.resolve(path, libc::O_PATH, 0)?;
        if let Some(mode) = change.mode {
            Self::chmod(&fd, mode)?;
        }
        if change.uid.is_some() || change.gid.is_some() {
            let (uid, gid) = (change.uid.unwrap_or(u32::MAX), change.gid.unwrap_or(u32::MAX));
            // SAFETY: a valid descriptor and an empty C string with AT_EMPTY_PATH.
            check(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) })?;
        }
        if change.atime_ns.is_some() || change.mtime_ns.is_some() {
            let spec = |t: Option<i64>| match t {
                Some(ns) => {
                    libc::timespec { tv_sec: ns.div_euclid(1_000_000_000), tv_nsec: ns.rem_euclid(1_000_000_000) }
                }
                None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
            };
            let times = [spec(change.atime_ns), spec(change.mtime_ns)];
            // SAFETY: a valid C string and two timespecs; the result is checked.
            check(unsafe { libc::utimensat(libc::AT_FDCWD, proc_path(&fd).as_ptr(), times.as_ptr(), 0) })?;
        }
        Ok(())
    }

    /// Every directory and regular file, parents first. Symlinks, special files and names that
    /// are not UTF-8 are left out.
    fn walk(&self) -> Result<Vec<LayerEntry>, EffectFailure> {
        let mut out = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let fd =
                self.resolve(&dir, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| failure("listing", &dir, e))?;
            let listing = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|e| failure("listing", &dir, e))?;
            for item in listing {
                let item = item.map_err(|e| failure("listing", &dir, e))?;
                let Some(name) = item.file_name().to_str().map(str::to_string) else { continue };
                let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
                // `file_type` does not follow symlinks.
                let kind = item.file_type().map_err(|e| failure("reading", &path, e))?;
                if !(kind.is_dir() || kind.is_file()) {
                    continue;
                }
                let meta = item.metadata().map_err(|e| failure("reading", &path, e))?;
                if kind.is_dir() {
                    dirs.push(path.clone());
                }
                out.push(entry(&path, &meta));
                if out.len() > MAX_ENTRIES {
                    return Err(refused(&dir, &format!("the layer holds more than {MAX_ENTRIES} entries")));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh layer directory and a directory beside it that must stay untouched.
    fn dirs(name: &str) -> (PathBuf, PathBuf, Layer) {
        let base = std::env::temp_dir().join(format!("hfm-layer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (layer, outside) = (base.join("layer"), base.join("outside"));
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "secret").unwrap();
        let held = Layer::open(&layer).unwrap();
        (layer, outside, held)
    }

    fn refused_as_eacces(result: Result<Completion, EffectFailure>) {
        match result {
            Err(f) => {
                assert_eq!(f.kind, hfm_core::FailureKind::Local(LocalError::Refused(Errno::Acces)), "{}", f.message)
            }
            Ok(c) => panic!("allowed: {c:?}"),
        }
    }

    #[test]
    fn names_that_climb_out_are_refused() {
        let (_layer, outside, l) = dirs("climb");
        for path in ["..", "../outside/x", "a/../../outside/x", "/etc/passwd", "a//b", "", ".", "a/./b"] {
            refused_as_eacces(l.execute(&LayerOp::Create {
                path: path.into(),
                dir: false,
                mode: 0o644,
                owner: None,
                make_parents: vec![],
            }));
            refused_as_eacces(l.execute(&LayerOp::Read { path: path.into(), range: 0..10 }));
        }
        let parents = vec![("../outside/made".to_string(), 0o755)];
        refused_as_eacces(l.execute(&LayerOp::Create {
            path: "x".into(),
            dir: false,
            mode: 0o644,
            owner: None,
            make_parents: parents,
        }));
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "nothing was created outside");
    }

    #[test]
    fn symlinks_in_the_layer_are_never_followed() {
        let (layer, outside, l) = dirs("symlinks");
        std::os::unix::fs::symlink(&outside, layer.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), layer.join("secret-link")).unwrap();
        std::fs::write(layer.join("mine"), "mine").unwrap();
        refused_as_eacces(l.execute(&LayerOp::Read { path: "out/secret".into(), range: 0..6 }));
        refused_as_eacces(l.execute(&LayerOp::Read { path: "secret-link".into(), range: 0..6 }));
        let write =
            LayerOp::Write { path: "secret-link".into(), offset: 0, data: Bytes::from_static(b"x"), sync: false };
        refused_as_eacces(l.execute(&write));
        refused_as_eacces(l.execute(&LayerOp::Create {
            path: "out/new".into(),
            dir: false,
            mode: 0o644,
            owner: None,
            make_parents: vec![],
        }));
        refused_as_eacces(l.execute(&LayerOp::Create {
            path: "out/d".into(),
            dir: true,
            mode: 0o755,
            owner: None,
            make_parents: vec![],
        }));
        let rename =
            LayerOp::Rename { from: "mine".into(), to: "out/mine".into(), no_replace: false, make_parents: vec![] };
        refused_as_eacces(l.execute(&rename));
        let chmod = LayerChange { mode: Some(0o777), size: Some(0), ..LayerChange::default() };
        refused_as_eacces(l.execute(&LayerOp::SetAttr { path: "secret-link".into(), change: chmod }));
        refused_as_eacces(l.execute(&LayerOp::Unlink { path: "out/secret".into() }));
        assert_eq!(std::fs::read_to_string(outside.join("secret")).unwrap(), "secret");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        assert_eq!(std::fs::read_to_string(layer.join("mine")).unwrap(), "mine");
    }

    #[test]
    fn the_walk_shows_directories_and_files_only() {
        let (layer, outside, l) = dirs("walk");
        std::fs::create_dir_all(layer.join("d/e")).unwrap();
        std::fs::write(layer.join("d/e/f.txt"), "abc").unwrap();
        std::os::unix::fs::symlink(&outside, layer.join("d/out")).unwrap();
        let fifo = CString::new(layer.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::fs::write(layer.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
        let Ok(Completion::Listed(entries)) = l.execute(&LayerOp::Walk) else { panic!("walk failed") };
        let mut seen: Vec<(String, bool, u64)> = entries.into_iter().map(|e| (e.path, e.dir, e.size)).collect();
        seen.sort();
        assert_eq!(seen, vec![("d".into(), true, 0), ("d/e".into(), true, 0), ("d/e/f.txt".into(), false, 3)]);
    }

    #[test]
    fn creates_get_exactly_their_mode_and_missing_parents() {
        let (layer, _outside, l) = dirs("create");
        let parents = vec![("a".to_string(), 0o750), ("a/b".to_string(), 0o700)];
        let op = LayerOp::Create { path: "a/b/f".into(), dir: false, mode: 0o666, owner: None, make_parents: parents };
        let Ok(Completion::Listed(made)) = l.execute(&op) else { panic!("create failed") };
        assert_eq!((made[0].mode, made[0].dir), (0o666, false));
        assert_eq!(std::fs::metadata(layer.join("a")).unwrap().mode() & 0o7777, 0o750);
        assert_eq!(std::fs::metadata(layer.join("a/b")).unwrap().mode() & 0o7777, 0o700);
        let again = l.execute(&op).unwrap_err();
        assert_eq!(again.kind, hfm_core::FailureKind::Local(LocalError::Refused(Errno::Exist)));
    }
}

//! The overlay's local layer in the simulated world: an in-memory directory tree answering
//! `LayerOp`s with the errors a local file system gives (`EEXIST`, `ENOENT`, `ENOTDIR`,
//! `ENOTEMPTY`, ...).

use std::collections::BTreeMap;

use bytes::Bytes;
use hfm_core::{Completion, EffectFailure, Errno, LayerEntry, LayerOp, LocalError};

pub type Tree = BTreeMap<String, Option<Vec<u8>>>;

fn refused(errno: Errno, path: &str) -> Completion {
    Completion::Failed(EffectFailure::local(LocalError::Refused(errno), format!("layer: {path}: {errno:?}")))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn stat(tree: &Tree, path: &str) -> LayerEntry {
    let content = tree.get(path).cloned().flatten();
    LayerEntry {
        path: path.to_string(),
        dir: content.is_none(),
        size: content.map_or(0, |c| c.len() as u64),
        mode: 0o644,
        uid: 0,
        gid: 0,
        atime_ns: 1,
        mtime_ns: 1,
        ctime_ns: 1,
    }
}

/// Is `dir` ("" = the layer) an existing directory?
fn is_dir(tree: &Tree, dir: &str) -> bool {
    dir.is_empty() || matches!(tree.get(dir), Some(None))
}

fn below(tree: &Tree, dir: &str) -> Vec<String> {
    let prefix = format!("{dir}/");
    tree.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(k, _)| k.clone()).collect()
}

fn make_parents(tree: &mut Tree, dirs: &[(String, u16)]) -> Result<(), Completion> {
    for (d, _) in dirs {
        match tree.get(d.as_str()) {
            Some(None) => {}
            Some(Some(_)) => return Err(refused(Errno::NotDir, d)),
            None if is_dir(tree, parent(d)) => {
                tree.insert(d.clone(), None);
            }
            None => return Err(refused(Errno::NoEnt, d)),
        }
    }
    Ok(())
}

pub fn execute(tree: &mut Tree, op: &LayerOp) -> Completion {
    match op {
        LayerOp::Walk => Completion::Listed(tree.keys().map(|p| stat(tree, p)).collect()),
        LayerOp::Read { path, range } => match tree.get(path) {
            Some(Some(c)) => {
                let start = (range.start as usize).min(c.len());
                let end = (range.end as usize).min(c.len());
                Completion::Bytes(vec![Bytes::copy_from_slice(&c[start..end])])
            }
            Some(None) => refused(Errno::IsDir, path),
            None => refused(Errno::NoEnt, path),
        },
        LayerOp::Write { path, offset, data, .. } => match tree.get_mut(path) {
            Some(Some(c)) => {
                let end = *offset as usize + data.len();
                if c.len() < end {
                    c.resize(end, 0);
                }
                c[*offset as usize..end].copy_from_slice(data);
                Completion::Done
            }
            Some(None) => refused(Errno::IsDir, path),
            None => refused(Errno::NoEnt, path),
        },
        LayerOp::Create { path, dir, make_parents: dirs, .. } => {
            if let Err(c) = make_parents(tree, dirs) {
                return c;
            }
            if !is_dir(tree, parent(path)) {
                return refused(Errno::NoEnt, path);
            }
            if tree.contains_key(path) {
                return refused(Errno::Exist, path);
            }
            tree.insert(path.clone(), if *dir { None } else { Some(Vec::new()) });
            Completion::Listed(vec![stat(tree, path)])
        }
        LayerOp::SetAttr { path, change } => match tree.get_mut(path) {
            Some(entry) => {
                if let (Some(size), Some(c)) = (change.size, entry.as_mut()) {
                    c.resize(size as usize, 0);
                }
                Completion::Listed(vec![stat(tree, path)])
            }
            None => refused(Errno::NoEnt, path),
        },
        LayerOp::Unlink { path } => match tree.get(path) {
            Some(Some(_)) => {
                tree.remove(path);
                Completion::Done
            }
            Some(None) => refused(Errno::IsDir, path),
            None => refused(Errno::NoEnt, path),
        },
        LayerOp::Rmdir { path } => match tree.get(path) {
            Some(None) if below(tree, path).is_empty() => {
                tree.remove(path);
                Completion::Done
            }
            Some(None) => refused(Errno::NotEmpty, path),
            Some(Some(_)) => refused(Errno::NotDir, path),
            None => refused(Errno::NoEnt, path),
        },
        LayerOp::Rename { from, to, no_replace, make_parents: dirs } => {
            if let Err(c) = make_parents(tree, dirs) {
                return c;
            }
            let Some(src) = tree.get(from).cloned() else { return refused(Errno::NoEnt, from) };
            if !is_dir(tree, parent(to)) {
                return refused(Errno::NoEnt, to);
            }
            if to.starts_with(&format!("{from}/")) {
                return refused(Errno::Inval, to);
            }
            match (tree.get(to), &src) {
                (Some(_), _) if *no_replace => return refused(Errno::Exist, to),
                (Some(None), Some(_)) => return refused(Errno::IsDir, to),
                (Some(Some(_)), None) => return refused(Errno::NotDir, to),
                (Some(None), None) if !below(tree, to).is_empty() => return refused(Errno::NotEmpty, to),
                _ => {}
            }
            let moved: Vec<String> = std::iter::once(from.clone()).chain(below(tree, from)).collect();
            for old in moved {
                let entry = tree.remove(&old).flatten();
                let new = format!("{to}{}", &old[from.len()..]);
                tree.insert(new, entry);
            }
            Completion::Done
        }
        LayerOp::Sync { path } => match tree.contains_key(path) {
            true => Completion::Done,
            false => refused(Errno::NoEnt, path),
        },
    }
}

//! The inode table: stable numbering (root = 1, every other node numbered from its path, see
//! `identity`), name lookup by (parent, name), kernel lookup counts, and each node's kind and
//! local metadata. Paths are not stored: a node's path is its parent chain, so renaming a
//! directory moves every descendant at once (and a moved node keeps its number).

use slab::Slab;

use crate::collections::Map;
use crate::hub::ContentSource;
use crate::identity;

pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    /// `source` is the content the Hub holds (or will hold once committed); a file being
    /// written has its current content in core's write state instead.
    File {
        size: u64,
        source: ContentSource,
    },
    /// Symlinks live only in the mount.
    Symlink {
        target: String,
    },
    /// FIFOs, sockets and device nodes live only in the mount.
    Special {
        kind: crate::request::FileKind,
        rdev: u32,
    },
}

/// Attributes set in the mount (create, chmod, chown, utimens, writes) or from a listing's
/// mtime; `None` = the mount's default. Times are nanoseconds since the epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalMeta {
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub ctime_ns: Option<i64>,
    /// The verifier of the exclusive create that made this file (NFS retransmissions).
    pub create_verifier: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Inode {
    pub ino: Ino,
    pub parent: Ino,
    pub name: String,
    pub kind: NodeKind,
    pub meta: LocalMeta,
    /// Outstanding kernel lookups (entry replies minus forgets).
    pub lookups: u64,
    /// Removed from its directory (unlink, rmdir, replaced by rename); may still be open.
    pub detached: bool,
    /// Created in this mount and not (yet) known to the Hub: a refreshed listing that lacks it
    /// must not remove it.
    pub local: bool,
    /// Overlay mode: the node exists in the local layer (it is also `local`).
    pub layer: bool,
    /// Overlay mode: a layer node whose name a remote listing shows too (the layer hides it).
    pub shadows_remote: bool,
}

pub struct InodeTable {
    nodes: Slab<Inode>,
    by_ino: Map<Ino, usize>,
    by_name: Map<(Ino, String), Ino>,
    root_path: String,
    seed: u64,
}

impl InodeTable {
    /// A table holding only the root directory, which shows remote path `root_path`; other
    /// numbers derive from `seed` (`identity::mount_seed` of the source) and each path.
    pub fn new(root_path: &str, seed: u64) -> Self {
        let mut t = InodeTable {
            nodes: Slab::new(),
            by_ino: Map::default(),
            by_name: Map::default(),
            root_path: root_path.to_string(),
            seed,
        };
        let key = t.nodes.insert(Inode {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: String::new(),
            kind: NodeKind::Dir,
            meta: LocalMeta::default(),
            lookups: 1,
            detached: false,
            local: false,
            layer: false,
            shadows_remote: false,
        });
        t.by_ino.insert(ROOT_INO, key);
        t
    }

    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        self.by_ino.get(&ino).and_then(|k| self.nodes.get(*k))
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Inode> {
        let key = *self.by_ino.get(&ino)?;
        self.nodes.get_mut(key)
    }

    /// Full remote path of `ino` ("" for a whole-repo root).
    pub fn path(&self, ino: Ino) -> String {
        let mut names = Vec::new();
        let mut cur = ino;
        while cur != ROOT_INO {
            let Some(n) = self.get(cur) else { break };
            names.push(n.name.as_str());
            cur = n.parent;
        }
        let mut path = self.root_path.clone();
        for name in names.iter().rev() {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(name);
        }
        path
    }

    /// Is `ino` the directory `ancestor` or inside it?
    pub fn is_within(&self, mut ino: Ino, ancestor: Ino) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            if ino == ROOT_INO {
                return false;
            }
            match self.get(ino) {
                Some(n) => ino = n.parent,
                None => return false,
            }
        }
    }

    /// The number `path` (a full remote path) gets when nothing else holds it.
    pub fn identity_of(&self, path: &str) -> Ino {
        identity::candidate(self.seed, path, 0)
    }

    pub fn child(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.by_name.get(&(parent, name.to_string())).copied()
    }

    /// Insert a child, or return the existing one of that name (listings may repeat a name).
    pub fn insert_child(&mut self, parent: Ino, name: &str, kind: NodeKind) -> Ino {
        if let Some(ino) = self.child(parent, name) {
            return ino;
        }
        let path = match self.path(parent) {
            p if p.is_empty() => name.to_string(),
            p => format!("{p}/{name}"),
        };
        let ino = (0..)
            .map(|probe| identity::candidate(self.seed, &path, probe))
            .find(|ino| !self.by_ino.contains_key(ino))
            .expect("some probe is free");
        let key = self.nodes.insert(Inode {
            ino,
            parent,
            name: name.to_string(),
            kind,
            meta: LocalMeta::default(),
            lookups: 0,
            detached: false,
            local: false,
            layer: false,
            shadows_remote: false,
        });
        self.by_ino.insert(ino, key);
        self.by_name.insert((parent, name.to_string()), ino);
        ino
    }

    /// Take `ino` out of its directory; the node lives on for open handles and forgets.
    pub fn detach(&mut self, ino: Ino) {
        if let Some(n) = self.get_mut(ino) {
            n.detached = true;
            let key = (n.parent, n.name.clone());
            if self.by_name.get(&key) == Some(&ino) {
                self.by_name.remove(&key);
            }
        }
    }

    /// Give `ino` a new parent and name (the target name must be free).
    pub fn move_to(&mut self, ino: Ino, new_parent: Ino, new_name: &str) {
        self.detach(ino);
        if let Some(n) = self.get_mut(ino) {
            n.parent = new_parent;
            n.name = new_name.to_string();
            n.detached = false;
        }
        self.by_name.insert((new_parent, new_name.to_string()), ino);
    }

    pub fn add_lookup(&mut self, ino: Ino) {
        if let Some(n) = self.get_mut(ino) {
            n.lookups += 1;
        }
    }

    pub fn forget(&mut self, ino: Ino, nlookup: u64) {
        if let Some(n) = self.get_mut(ino) {
            n.lookups = n.lookups.saturating_sub(nlookup);
        }
    }

    /// Drop `ino` from the table (evicted: a later listing numbers it the same again).
    pub fn remove(&mut self, ino: Ino) {
        let Some(key) = self.by_ino.remove(&ino) else { return };
        let node = self.nodes.remove(key);
        let name_key = (node.parent, node.name);
        if self.by_name.get(&name_key) == Some(&ino) {
            self.by_name.remove(&name_key);
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_and_lookup_counts() {
        let mut t = InodeTable::new("", 5);
        assert!(matches!(t.get(ROOT_INO).unwrap().kind, NodeKind::Dir));
        assert!(t.get(0).is_none());
        let a = t.insert_child(ROOT_INO, "a", NodeKind::Dir);
        assert_eq!(a, identity::candidate(5, "a", 0));
        assert_eq!(t.insert_child(ROOT_INO, "a", NodeKind::Dir), a);
        assert_eq!(t.child(ROOT_INO, "a"), Some(a));
        t.add_lookup(a);
        t.add_lookup(a);
        t.forget(a, 1);
        assert_eq!(t.get(a).unwrap().lookups, 1);
        t.forget(a, 5);
        assert_eq!(t.get(a).unwrap().lookups, 0);
    }

    #[test]
    fn numbers_are_stable_and_collisions_probe() {
        let mut t1 = InodeTable::new("sub", 9);
        let mut t2 = InodeTable::new("sub", 9);
        let d1 = t1.insert_child(ROOT_INO, "d", NodeKind::Dir);
        let f1 = t1.insert_child(d1, "f", NodeKind::Dir);
        // Another process discovers the same paths in another order: same numbers.
        let d2 = t2.insert_child(ROOT_INO, "d", NodeKind::Dir);
        let f2 = t2.insert_child(d2, "f", NodeKind::Dir);
        assert_eq!((d1, f1), (d2, f2));
        assert_eq!(f1, identity::candidate(9, "sub/d/f", 0));
        // A removed node keeps its number while a new node takes its path: the new one probes.
        t1.detach(f1);
        let again = t1.insert_child(d1, "f", NodeKind::Dir);
        assert_eq!(again, identity::candidate(9, "sub/d/f", 1));
        assert_eq!(t1.get(f1).unwrap().ino, f1);
    }

    #[test]
    fn paths_follow_moves() {
        let mut t = InodeTable::new("sub", 0);
        let a = t.insert_child(ROOT_INO, "a", NodeKind::Dir);
        let f = t.insert_child(a, "f", NodeKind::Symlink { target: "x".into() });
        assert_eq!(t.path(f), "sub/a/f");
        let b = t.insert_child(ROOT_INO, "b", NodeKind::Dir);
        t.move_to(a, b, "a2");
        assert_eq!(t.path(f), "sub/b/a2/f");
        assert!(t.is_within(f, b));
        assert!(!t.is_within(b, a));
        assert_eq!(t.child(ROOT_INO, "a"), None);
        t.detach(f);
        assert_eq!(t.child(a, "f"), None);
        assert!(t.get(f).unwrap().detached);
        assert_eq!(InodeTable::new("", 0).path(ROOT_INO), "");
    }
}

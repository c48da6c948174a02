//! The inode table: numbering (slab index + 1, root = 1), name lookup by (parent, name), kernel
//! lookup counts, and each node's kind and local metadata. Paths are not stored: a node's path
//! is its parent chain, so renaming a directory moves every descendant at once.

use hashbrown::HashMap;
use slab::Slab;

use crate::hub::ContentSource;

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
}

#[derive(Clone, Debug)]
pub struct Inode {
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
}

pub struct InodeTable {
    nodes: Slab<Inode>,
    by_name: HashMap<(Ino, String), Ino>,
    root_path: String,
}

impl InodeTable {
    /// A table holding only the root directory, which shows remote path `root_path`.
    pub fn new(root_path: &str) -> Self {
        let mut t = InodeTable { nodes: Slab::new(), by_name: HashMap::new(), root_path: root_path.to_string() };
        let key = t.nodes.insert(Inode {
            parent: ROOT_INO,
            name: String::new(),
            kind: NodeKind::Dir,
            meta: LocalMeta::default(),
            lookups: 1,
            detached: false,
            local: false,
        });
        debug_assert_eq!(key as u64 + 1, ROOT_INO);
        t
    }

    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        ino.checked_sub(1).and_then(|k| self.nodes.get(k as usize))
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Inode> {
        ino.checked_sub(1).and_then(|k| self.nodes.get_mut(k as usize))
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

    pub fn child(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.by_name.get(&(parent, name.to_string())).copied()
    }

    /// Insert a child, or return the existing one of that name (listings may repeat a name).
    pub fn insert_child(&mut self, parent: Ino, name: &str, kind: NodeKind) -> Ino {
        if let Some(ino) = self.child(parent, name) {
            return ino;
        }
        let key = self.nodes.insert(Inode {
            parent,
            name: name.to_string(),
            kind,
            meta: LocalMeta::default(),
            lookups: 0,
            detached: false,
            local: false,
        });
        let ino = key as u64 + 1;
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
        let mut t = InodeTable::new("");
        assert!(matches!(t.get(ROOT_INO).unwrap().kind, NodeKind::Dir));
        assert!(t.get(0).is_none());
        let a = t.insert_child(ROOT_INO, "a", NodeKind::Dir);
        assert_eq!(a, 2);
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
    fn paths_follow_moves() {
        let mut t = InodeTable::new("sub");
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
        assert_eq!(InodeTable::new("").path(ROOT_INO), "");
    }
}

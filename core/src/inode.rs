//! The inode table: numbering (slab index + 1, root = 1), name lookup by (parent, name) and
//! kernel lookup counts. A pinned commit never changes, so inodes live as long as the mount and
//! numbers stay stable for it; `forget` only lowers the count.

use hashbrown::HashMap;
use slab::Slab;

use crate::hub::ContentSource;

pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File { size: u64, source: ContentSource },
}

#[derive(Clone, Debug)]
pub struct Inode {
    pub parent: Ino,
    pub name: String,
    /// Full path from the repo root ("" for the repo root).
    pub path: String,
    pub kind: NodeKind,
    /// Outstanding kernel lookups (entry replies minus forgets).
    pub lookups: u64,
}

#[derive(Default)]
pub struct InodeTable {
    nodes: Slab<Inode>,
    by_name: HashMap<(Ino, String), Ino>,
}

impl InodeTable {
    /// A table holding only the root directory, which shows repo path `root_path`.
    pub fn new(root_path: &str) -> Self {
        let mut t = InodeTable::default();
        let key = t.nodes.insert(Inode {
            parent: ROOT_INO,
            name: String::new(),
            path: root_path.to_string(),
            kind: NodeKind::Dir,
            lookups: 1,
        });
        debug_assert_eq!(key as u64 + 1, ROOT_INO);
        t
    }

    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        ino.checked_sub(1).and_then(|k| self.nodes.get(k as usize))
    }

    fn get_mut(&mut self, ino: Ino) -> Option<&mut Inode> {
        ino.checked_sub(1).and_then(|k| self.nodes.get_mut(k as usize))
    }

    pub fn child(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.by_name.get(&(parent, name.to_string())).copied()
    }

    /// Insert a child, or return the existing one of that name (listings may repeat a name).
    pub fn insert_child(&mut self, parent: Ino, name: &str, path: String, kind: NodeKind) -> Ino {
        if let Some(ino) = self.child(parent, name) {
            return ino;
        }
        let key = self.nodes.insert(Inode { parent, name: name.to_string(), path, kind, lookups: 0 });
        let ino = key as u64 + 1;
        self.by_name.insert((parent, name.to_string()), ino);
        ino
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
        let a = t.insert_child(ROOT_INO, "a", "a".into(), NodeKind::Dir);
        assert_eq!(a, 2);
        assert_eq!(t.insert_child(ROOT_INO, "a", "a".into(), NodeKind::Dir), a);
        assert_eq!(t.child(ROOT_INO, "a"), Some(a));
        t.add_lookup(a);
        t.add_lookup(a);
        t.forget(a, 1);
        assert_eq!(t.get(a).unwrap().lookups, 1);
        t.forget(a, 5);
        assert_eq!(t.get(a).unwrap().lookups, 0);
    }
}

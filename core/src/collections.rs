//! Hash maps and sets with a fixed hasher: iteration order depends only on what was inserted,
//! never on a per-process random seed, so every output core derives from them is the same in
//! any process. Use these (not `std`/`hashbrown` defaults) everywhere in core; where order is
//! part of the meaning, use a `BTreeMap`.

pub type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;
pub type Set<K> = hashbrown::HashSet<K, foldhash::fast::FixedState>;

//! hubsim's data model: users and tokens, repos with branches, tags and commits, regular-file
//! blobs. Pure data and queries; the HTTP layer (`routes`) decides status codes and headers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
pub enum RepoType {
    Model,
    Dataset,
    Space,
}

impl RepoType {
    pub fn from_api(seg: &str) -> Option<Self> {
        match seg {
            "models" => Some(RepoType::Model),
            "datasets" => Some(RepoType::Dataset),
            "spaces" => Some(RepoType::Space),
            _ => None,
        }
    }

    pub fn from_singular(s: &str) -> Option<Self> {
        match s {
            "model" => Some(RepoType::Model),
            "dataset" => Some(RepoType::Dataset),
            "space" => Some(RepoType::Space),
            _ => None,
        }
    }

    pub fn api(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }

    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum FileEntry {
    /// Stored in git: content in the blob store under `oid` (git blob sha1).
    Regular { oid: String, size: u64 },
    /// Stored in Xet: `sha256` is the LFS oid, `pointer_oid` the git blob id of the pointer.
    Xet { xet_hash: String, sha256: String, size: u64, pointer_oid: String, pointer_size: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    pub parent: Option<String>,
    pub title: String,
    /// RFC3339 with milliseconds.
    pub date: String,
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repo {
    pub kind: RepoType,
    pub id: String,
    /// The user whose token created the repo (besides the namespace's own user).
    #[serde(default)]
    pub owner: Option<String>,
    pub private: bool,
    pub created_at: String,
    pub branches: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub commits: BTreeMap<String, Commit>,
}

#[derive(Default, Serialize, Deserialize)]
pub struct HubState {
    /// token -> user name.
    pub tokens: BTreeMap<String, String>,
    /// "type/ns/name" -> repo.
    pub repos: BTreeMap<String, Repo>,
    #[serde(skip)]
    pub blobs: BTreeMap<String, bytes::Bytes>,
    #[serde(skip)]
    pub data_dir: Option<PathBuf>,
    pub commit_counter: u64,
    /// "ns/name" -> bucket.
    #[serde(default)]
    pub buckets: BTreeMap<String, Bucket>,
}

/// One file of a bucket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketFile {
    pub xet_hash: String,
    pub size: u64,
    /// Client-supplied modification time, milliseconds since the epoch.
    pub mtime_ms: i64,
    /// Server time of the `addFile`, milliseconds since the epoch.
    pub uploaded_ms: i64,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// A bucket: a flat, mutable map from path to xet-stored file; "directories" exist only as
/// prefixes of file paths.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bucket {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    pub private: bool,
    pub created_ms: i64,
    /// Bumped (strictly increasing) on every mutation.
    pub updated_ms: i64,
    pub files: BTreeMap<String, BucketFile>,
}

/// One entry of a bucket tree listing.
#[derive(Debug, PartialEq, Eq)]
pub enum BucketItem<'a> {
    File(&'a str, &'a BucketFile),
    /// A directory, and the first file found in it (where the listing met it).
    Dir(String, &'a str),
}

impl BucketItem<'_> {
    /// The stored path the listing met this item at (pagination resumes after it).
    pub fn found_at(&self) -> &str {
        match self {
            BucketItem::File(path, _) | BucketItem::Dir(_, path) => path,
        }
    }
}

impl Bucket {
    /// Mark a mutation at `now_ms`; `updated_ms` always moves forward.
    pub fn touch(&mut self, now_ms: i64) {
        self.updated_ms = now_ms.max(self.updated_ms + 1);
    }

    pub fn total_size(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// The Hub's raw key-prefix listing: every file whose path starts with the literal
    /// `prefix`; recursive lists files only, non-recursive folds the remainder after the prefix
    /// (one leading `/` dropped) at its first `/` into a directory entry.
    pub fn list(&self, prefix: &str, recursive: bool) -> Vec<BucketItem<'_>> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (path, file) in self.files.range(prefix.to_string()..) {
            let Some(rest) = path.strip_prefix(prefix) else { break };
            if recursive {
                out.push(BucketItem::File(path, file));
                continue;
            }
            let rest = rest.strip_prefix('/').unwrap_or(rest);
            match rest.find('/') {
                Some(i) => {
                    let dir = &path[..path.len() - rest.len() + i];
                    if seen.insert(dir.to_string()) {
                        out.push(BucketItem::Dir(dir.to_string(), path));
                    }
                }
                None => out.push(BucketItem::File(path, file)),
            }
        }
        out
    }
}

pub fn repo_key(kind: RepoType, id: &str) -> String {
    format!("{}/{}", kind.api(), id)
}

pub fn git_blob_oid(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// One child of a directory in a tree listing.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeItem<'a> {
    File(&'a str, &'a FileEntry),
    /// A directory, and the first file found in it (where the listing met it).
    Dir(String, &'a str),
}

impl TreeItem<'_> {
    /// The stored path the listing met this item at (pagination resumes after it).
    pub fn found_at(&self) -> &str {
        match self {
            TreeItem::File(path, _) | TreeItem::Dir(_, path) => path,
        }
    }
}

impl Commit {
    /// Is `dir` ("" = root) a directory of this commit?
    pub fn is_dir(&self, dir: &str) -> bool {
        if dir.is_empty() {
            return true;
        }
        let prefix = format!("{dir}/");
        self.files.range(prefix.clone()..).next().is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// Children of `dir`, or every descendant when `recursive` (directories included), in path
    /// order.
    pub fn list(&self, dir: &str, recursive: bool) -> Vec<TreeItem<'_>> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut out = Vec::new();
        let mut seen_dirs = std::collections::BTreeSet::new();
        for (path, entry) in self.files.range(prefix.clone()..) {
            let Some(rest) = path.strip_prefix(&prefix) else { break };
            let parts: Vec<&str> = rest.split('/').collect();
            let dir_depth = if recursive { parts.len() - 1 } else { parts.len().min(2) - 1 };
            for depth in 1..=dir_depth {
                let d = format!("{prefix}{}", parts[..depth].join("/"));
                if seen_dirs.insert(d.clone()) {
                    out.push(TreeItem::Dir(d, path));
                }
            }
            if recursive || parts.len() == 1 {
                out.push(TreeItem::File(path, entry));
            }
        }
        out
    }

    pub fn dir_oid(&self, dir: &str) -> String {
        let mut h = Sha1::new();
        h.update(self.sha.as_bytes());
        h.update(dir.as_bytes());
        hex(&h.finalize())
    }
}

impl Repo {
    /// Resolve a revision: `refs/...` full names, then branch, then tag, then a commit sha.
    pub fn resolve(&self, rev: &str) -> Option<&Commit> {
        let sha = if let Some(b) = rev.strip_prefix("refs/heads/") {
            self.branches.get(b)
        } else if let Some(t) = rev.strip_prefix("refs/tags/") {
            self.tags.get(t)
        } else {
            self.branches.get(rev).or_else(|| self.tags.get(rev)).or_else(|| self.commits.get(rev).map(|c| &c.sha))
        }?;
        self.commits.get(sha)
    }

    pub fn main_commit(&self) -> Option<&Commit> {
        self.branches.get("main").and_then(|s| self.commits.get(s))
    }
}

impl HubState {
    pub fn user_for_token(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(String::as_str)
    }

    /// May `user` read `bucket`? Public buckets: anyone; private: its namespace user or owner.
    pub fn can_read_bucket(&self, bucket: &Bucket, user: Option<&str>) -> bool {
        !bucket.private || self.can_write_bucket(bucket, user)
    }

    pub fn can_write_bucket(&self, bucket: &Bucket, user: Option<&str>) -> bool {
        user.is_some_and(|u| bucket.id.split('/').next() == Some(u) || bucket.owner.as_deref() == Some(u))
    }

    pub fn can_read(&self, repo: &Repo, user: Option<&str>) -> bool {
        !repo.private || user.is_some_and(|u| repo.id.split('/').next() == Some(u) || repo.owner.as_deref() == Some(u))
    }

    pub fn new_commit_sha(&mut self, seed: &str) -> String {
        self.commit_counter += 1;
        let mut h = Sha1::new();
        h.update(format!("commit {} {seed}", self.commit_counter).as_bytes());
        hex(&h.finalize())
    }

    /// Write the metadata (and any new blobs) to the data dir, if there is one.
    pub fn persist(&self) -> std::io::Result<()> {
        let Some(dir) = &self.data_dir else { return Ok(()) };
        let blob_dir = dir.join("blobs");
        std::fs::create_dir_all(&blob_dir)?;
        for (oid, data) in &self.blobs {
            let p = blob_dir.join(oid);
            if !p.exists() {
                std::fs::write(p, data)?;
            }
        }
        let tmp = dir.join("hub.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(tmp, dir.join("hub.json"))
    }

    pub fn load(dir: &std::path::Path) -> std::io::Result<Self> {
        let mut state: HubState = match std::fs::read(dir.join("hub.json")) {
            Ok(b) => serde_json::from_slice(&b)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HubState::default(),
            Err(e) => return Err(e),
        };
        if let Ok(rd) = std::fs::read_dir(dir.join("blobs")) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                state.blobs.insert(name, std::fs::read(entry.path())?.into());
            }
        }
        state.data_dir = Some(dir.to_path_buf());
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(paths: &[&str]) -> Commit {
        let files = paths.iter().map(|p| (p.to_string(), FileEntry::Regular { oid: "o".into(), size: 1 })).collect();
        Commit { sha: "s".into(), parent: None, title: "t".into(), date: "d".into(), files }
    }

    #[test]
    fn listing_children_and_descendants() {
        let c = commit(&["a.txt", "d/x", "d/e/y", "d2/z"]);
        let names = |items: Vec<TreeItem<'_>>| -> Vec<String> {
            items
                .into_iter()
                .map(|i| match i {
                    TreeItem::File(p, _) => p.to_string(),
                    TreeItem::Dir(d, _) => format!("{d}/"),
                })
                .collect()
        };
        assert_eq!(names(c.list("", false)), ["a.txt", "d/", "d2/"]);
        assert_eq!(names(c.list("d", false)), ["d/e/", "d/x"]);
        assert_eq!(names(c.list("", true)), ["a.txt", "d/", "d/e/", "d/e/y", "d/x", "d2/", "d2/z"]);
        assert!(c.is_dir("d/e"));
        assert!(!c.is_dir("d/x"));
        assert!(!c.is_dir("d/"));
    }

    #[test]
    fn bucket_listing_uses_raw_prefixes() {
        let f = BucketFile { xet_hash: "h".into(), size: 1, mtime_ms: 0, uploaded_ms: 0, content_type: None };
        let files = ["a.txt", "logs/x", "logs/y/z", "logs_old/w"].iter().map(|p| (p.to_string(), f.clone())).collect();
        let b = Bucket { id: "n/b".into(), owner: None, private: false, created_ms: 0, updated_ms: 0, files };
        let names = |items: Vec<BucketItem<'_>>| -> Vec<String> {
            items
                .into_iter()
                .map(|i| match i {
                    BucketItem::File(p, _) => p.to_string(),
                    BucketItem::Dir(d, _) => format!("{d}/"),
                })
                .collect()
        };
        assert_eq!(names(b.list("", false)), ["a.txt", "logs/", "logs_old/"]);
        assert_eq!(names(b.list("logs", false)), ["logs/x", "logs/y/", "logs_old/"]);
        assert_eq!(names(b.list("logs/", false)), ["logs/x", "logs/y/"]);
        assert_eq!(names(b.list("logs", true)), ["logs/x", "logs/y/z", "logs_old/w"]);
        assert!(b.list("nope", true).is_empty());
    }

    #[test]
    fn blob_oid_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(git_blob_oid(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}

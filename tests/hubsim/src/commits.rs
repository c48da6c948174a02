//! The Hub's write API for git repos, as Python `huggingface_hub` and the `hf` CLI use it
//! (hub-protocol §8): `preupload` (which files go to Xet), the NDJSON `commit` (add, delete,
//! delete folder, LFS/Xet files by SHA-256), and branches and tags. An `lfsFile` names its
//! content by SHA-256 only: the xet hash is found in the shards the client uploaded to the CAS,
//! whose file entries carry the SHA-256 (metadata extension), indexed on demand.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use xet_core_structures::metadata_shard::streaming_shard::MDBMinimalShard;

use crate::routes::{error, host, now_rfc3339, query_param, App};
use crate::state::{self, Commit, FileEntry, HubState, Repo, RepoType};

/// Files above this go to Xet (the Hub's rule; a NUL in the sample or a .gitattributes `lfs`
/// filter too).
const LFS_THRESHOLD: u64 = 10 << 20;

/// What the CAS knows of files by SHA-256: filled from its shards, each shard read once.
#[derive(Default)]
pub struct ShardIndex {
    seen: std::collections::BTreeSet<String>,
    by_sha256: BTreeMap<String, (String, u64)>,
}

/// The repo `user` may write, or the answer saying why not.
fn writable<'a>(st: &'a mut HubState, kind: RepoType, id: &str, user: Option<&str>) -> Result<&'a mut Repo, Response> {
    let Some(user) = user else {
        return Err(error(StatusCode::UNAUTHORIZED, None, "You must be authenticated to write to a repo"));
    };
    let repo = st.repos.get_mut(&state::repo_key(kind, id));
    match repo {
        Some(r) if r.id.split('/').next() == Some(user) || r.owner.as_deref() == Some(user) => Ok(r),
        Some(r) if !r.private => {
            Err(error(StatusCode::FORBIDDEN, None, "You don't have the rights to write to this repo"))
        }
        _ => Err(error(StatusCode::NOT_FOUND, Some("RepoNotFound"), &format!("Repository {id} not found"))),
    }
}

/// The branch a write names (`refs/heads/B` or `B`), which must exist.
fn branch_of(repo: &Repo, rev: &str) -> Result<String, Response> {
    let branch = rev.strip_prefix("refs/heads/").unwrap_or(rev).to_string();
    match repo.branches.contains_key(&branch) || repo.branches.is_empty() && branch == "main" {
        true => Ok(branch),
        false => Err(error(StatusCode::NOT_FOUND, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}"))),
    }
}

/// `POST /api/{type}/{id}/preupload/{rev}`.
pub fn preupload(app: &App, user: Option<&str>, kind: RepoType, id: &str, rev: &str, body: &[u8]) -> Response {
    #[derive(Deserialize)]
    struct File {
        path: String,
        sample: String,
        size: u64,
    }
    #[derive(Deserialize)]
    struct Req {
        files: Vec<File>,
    }
    use base64::Engine;
    let req: Req = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, &e.to_string()),
    };
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let repo = match writable(&mut st, kind, id, user) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = branch_of(repo, rev) {
        return resp;
    }
    let files: Vec<Value> = req
        .files
        .iter()
        .map(|f| {
            let sample = base64::engine::general_purpose::STANDARD.decode(&f.sample).unwrap_or_default();
            let lfs = f.size > LFS_THRESHOLD || sample.contains(&0);
            json!({ "path": f.path, "uploadMode": if lfs { "lfs" } else { "regular" }, "shouldIgnore": false })
        })
        .collect();
    axum::Json(json!({ "files": files })).into_response()
}

/// One operation of a commit, in the order the NDJSON gave them.
enum Op {
    Add { path: String, entry: FileEntry },
    LfsAdd { path: String, sha256: String, size: Option<u64> },
    Delete { path: String },
    DeleteFolder { path: String },
}

fn clean_path(p: &str) -> Result<String, Response> {
    let path = p.trim_matches('/').to_string();
    if path.is_empty() || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(error(StatusCode::BAD_REQUEST, None, &format!("invalid path {p:?}")));
    }
    Ok(path)
}

/// Parse the NDJSON body: the header's fields and the operations.
fn parse_commit(st: &mut HubState, body: &[u8]) -> Result<(String, Option<String>, Vec<Op>), Response> {
    use base64::Engine;
    let bad = |m: String| error(StatusCode::BAD_REQUEST, None, &m);
    let (mut summary, mut parent, mut ops) = (String::new(), None, Vec::new());
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| bad(format!("line {}: {e}", n + 1)))?;
        let (key, value) = (v["key"].as_str().unwrap_or_default(), &v["value"]);
        let path =
            || value["path"].as_str().ok_or_else(|| bad(format!("line {}: no path", n + 1))).and_then(clean_path);
        match key {
            "header" => {
                summary = value["summary"].as_str().unwrap_or_default().to_string();
                parent = value["parentCommit"].as_str().map(str::to_string);
            }
            "file" => {
                let content = value["content"].as_str().unwrap_or_default();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(content)
                    .map_err(|_| bad(format!("line {}: content is not base64", n + 1)))?;
                let oid = state::git_blob_oid(&data);
                let size = data.len() as u64;
                st.blobs.insert(oid.clone(), data.into());
                ops.push(Op::Add { path: path()?, entry: FileEntry::Regular { oid, size } });
            }
            "lfsFile" => {
                let sha256 = value["oid"].as_str().unwrap_or_default().to_ascii_lowercase();
                if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!("line {}: oid must be a sha256", n + 1)));
                }
                ops.push(Op::LfsAdd { path: path()?, sha256, size: value["size"].as_u64() });
            }
            "deletedFile" => ops.push(Op::Delete { path: path()? }),
            "deletedFolder" => ops.push(Op::DeleteFolder { path: path()? }),
            other => return Err(bad(format!("line {}: unknown key {other:?}", n + 1))),
        }
    }
    Ok((summary, parent, ops))
}

/// Read the shards the CAS holds that the index has not seen yet.
async fn index_new_shards(app: &App) {
    let Some(shards) = app.shards.as_ref() else { return };
    let Ok(list) = shards.list_shard_entries().await else { return };
    for hash in list {
        let hex = hash.hex();
        if app.shard_index.lock().unwrap_or_else(|e| e.into_inner()).seen.contains(&hex) {
            continue;
        }
        let Ok(bytes) = shards.get_shard_bytes(&hash).await else { continue };
        let mut found = Vec::new();
        if let Ok(shard) = MDBMinimalShard::from_reader(&mut std::io::Cursor::new(&bytes[..]), true, false) {
            for i in 0..shard.num_files() {
                let Some(file) = shard.file(i) else { continue };
                let Some(ext) = file.metadata_ext() else { continue };
                let size: u64 = (0..file.num_entries()).map(|e| u64::from(file.entry(e).unpacked_segment_bytes)).sum();
                found.push((ext.sha256.hex(), file.file_hash().hex(), size));
            }
        }
        let mut index = app.shard_index.lock().unwrap_or_else(|e| e.into_inner());
        index.seen.insert(hex);
        for (sha256, xet_hash, size) in found {
            index.by_sha256.insert(sha256, (xet_hash, size));
        }
    }
}

/// An LFS oid already in the repo (a copy), or known to the CAS.
fn lfs_entry(app: &App, repo: &Repo, sha256: &str) -> Option<FileEntry> {
    let known = repo.commits.values().flat_map(|c| c.files.values()).find_map(|e| match e {
        FileEntry::Xet { sha256: s, .. } if s == sha256 => Some(e.clone()),
        _ => None,
    });
    known.or_else(|| {
        let index = app.shard_index.lock().unwrap_or_else(|e| e.into_inner());
        let (xet_hash, size) = index.by_sha256.get(sha256)?.clone();
        let pointer = state::lfs_pointer(sha256, size);
        Some(FileEntry::Xet {
            xet_hash,
            sha256: sha256.to_string(),
            size,
            pointer_oid: state::git_blob_oid(pointer.as_bytes()),
            pointer_size: pointer.len() as u64,
        })
    })
}

/// `POST /api/{type}/{id}/commit/{rev}`.
#[allow(clippy::too_many_arguments)]
pub async fn commit(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    user: Option<&str>,
    kind: RepoType,
    id: &str,
    rev: &str,
    body: &[u8],
) -> Response {
    if query_param(uri, "create_pr").is_some_and(|v| v == "1" || v == "true") {
        return error(StatusCode::BAD_REQUEST, None, "hubsim does not emulate pull requests");
    }
    // LFS oids the repo does not hold yet need the CAS's shards indexed first.
    let wants_lfs = body.windows(9).any(|w| w == b"\"lfsFile\"");
    if wants_lfs {
        index_new_shards(app).await;
    }
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let (summary, parent, ops) = match parse_commit(&mut st, body) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let repo = match writable(&mut st, kind, id, user) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let branch = match branch_of(repo, rev) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let head = repo.branches.get(&branch).cloned();
    if let Some(p) = &parent {
        if head.as_ref() != Some(p) {
            return error(
                StatusCode::PRECONDITION_FAILED,
                None,
                &format!("parentCommit {p} is not the head of {branch}"),
            );
        }
    }
    let mut files = head.as_ref().and_then(|h| repo.commits.get(h)).map(|c| c.files.clone()).unwrap_or_default();
    for op in ops {
        match op {
            Op::Add { path, entry } => {
                files.insert(path, entry);
            }
            Op::LfsAdd { path, sha256, size } => match lfs_entry(app, repo, &sha256) {
                Some(entry @ FileEntry::Xet { size: known, .. }) if size.is_none_or(|s| s == known) => {
                    files.insert(path, entry);
                }
                _ => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        None,
                        &format!("{path}: LFS object {sha256} was not uploaded"),
                    )
                }
            },
            Op::Delete { path } => {
                if files.remove(&path).is_none() {
                    return error(StatusCode::NOT_FOUND, Some("EntryNotFound"), &format!("{path} does not exist"));
                }
            }
            Op::DeleteFolder { path } => {
                let prefix = format!("{path}/");
                files.retain(|p, _| !p.starts_with(&prefix));
            }
        }
    }
    let title = if summary.is_empty() { "Upload with huggingface_hub".to_string() } else { summary };
    let repo_id = repo.id.clone();
    let sha = st.new_commit_sha(&repo_id);
    let repo = st.repos.get_mut(&state::repo_key(kind, id)).expect("checked above");
    repo.commits.insert(sha.clone(), Commit { sha: sha.clone(), parent: head, title, date: now_rfc3339(), files });
    repo.branches.insert(branch, sha.clone());
    if let Err(e) = st.persist() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, None, &e.to_string());
    }
    let url = format!("http://{}/{}{repo_id}/commit/{sha}", host(headers), kind.url_prefix());
    axum::Json(json!({ "commitUrl": url, "commitOid": sha })).into_response()
}

/// Change a repo's refs with `apply` under the state lock, then save: `{}` or the error.
fn change_refs(
    app: &App,
    user: Option<&str>,
    kind: RepoType,
    id: &str,
    apply: impl FnOnce(&mut Repo) -> Result<(), Response>,
) -> Response {
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let changed = writable(&mut st, kind, id, user).and_then(apply);
    if let Err(resp) = changed {
        return resp;
    }
    if let Err(e) = st.persist() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, None, &e.to_string());
    }
    axum::Json(json!({})).into_response()
}

/// The commit `rev` names in `repo`, or RevisionNotFound.
fn commit_of(repo: &Repo, rev: &str) -> Result<String, Response> {
    repo.resolve(rev)
        .map(|c| c.sha.clone())
        .ok_or_else(|| error(StatusCode::NOT_FOUND, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}")))
}

/// `POST|DELETE /api/{type}/{id}/branch/{branch}` (`startingPoint` in a POST's JSON body).
pub fn branch(
    app: &App,
    create: bool,
    user: Option<&str>,
    kind: RepoType,
    id: &str,
    name: &str,
    body: &[u8],
) -> Response {
    change_refs(app, user, kind, id, |repo| {
        if !create {
            return match name != "main" && repo.branches.remove(name).is_some() {
                true => Ok(()),
                false => Err(error(StatusCode::NOT_FOUND, None, &format!("cannot delete branch {name}"))),
            };
        }
        if repo.branches.contains_key(name) {
            return Err(error(StatusCode::CONFLICT, None, &format!("Reference already exists: refs/heads/{name}")));
        }
        let from: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let sha = commit_of(repo, from["startingPoint"].as_str().unwrap_or("main"))?;
        repo.branches.insert(name.to_string(), sha);
        Ok(())
    })
}

/// `POST /api/{type}/{id}/tag/{rev}` (JSON `{"tag", "message"?}`), `DELETE …/tag/{tag}`.
pub fn tag(
    app: &App,
    create: bool,
    user: Option<&str>,
    kind: RepoType,
    id: &str,
    rev_or_tag: &str,
    body: &[u8],
) -> Response {
    change_refs(app, user, kind, id, |repo| {
        if !create {
            return match repo.tags.remove(rev_or_tag) {
                Some(_) => Ok(()),
                None => Err(error(StatusCode::NOT_FOUND, None, &format!("no tag {rev_or_tag}"))),
            };
        }
        let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(tag) = req["tag"].as_str().filter(|t| !t.is_empty()) else {
            return Err(error(StatusCode::BAD_REQUEST, None, "a tag name is required"));
        };
        if repo.tags.contains_key(tag) {
            return Err(error(StatusCode::CONFLICT, None, &format!("Tag {tag} already exists")));
        }
        let sha = commit_of(repo, rev_or_tag)?;
        repo.tags.insert(tag.to_string(), sha);
        Ok(())
    })
}

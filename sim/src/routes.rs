//! The simulated Hub's routes: repo info, revisions, tree pages (with `limit`/`cursor`
//! pagination and `Link` headers), resolve, bucket info, bucket trees with the Hub's raw-prefix
//! semantics, xet tokens and NDJSON batches, in the shapes `hub-protocol.md` gives.

use std::collections::BTreeSet;

use bytes::Bytes;
use hfm_core::hub::{percent_decode, EMPTY_FILE_HASH};
use hfm_core::{Completion, HttpResponse};
use serde_json::{json, Value};

use crate::world::{content_hash, World, ENDPOINT};

fn http(status: u16, headers: Vec<(String, String)>, body: String) -> Completion {
    Completion::Http(HttpResponse { status, headers, body: Bytes::from(body) })
}

fn not_found(code: &str) -> Completion {
    let headers = vec![("x-error-code".to_string(), code.to_string())];
    http(404, headers, json!({ "error": code }).to_string())
}

fn query(q: &str, name: &str) -> Option<String> {
    q.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

/// Entries a hostile or broken Hub adds to a listing of `prefix`: paths leaving the directory,
/// empty components, NUL, a name too long, absurd sizes, a bad hash, no type, and the first
/// real entry again as another type. A mount must leave them all out.
fn hostile_entries(prefix: &str, real: &[Value]) -> Vec<Value> {
    let long = "n".repeat(300);
    let mut out: Vec<Value> = [
        format!("{prefix}../victim.txt"),
        format!("{prefix}x/../../other.txt"),
        format!("/{prefix}abs.txt"),
        format!("{prefix}a//b"),
        format!("{prefix}./dot"),
        format!("{prefix}nul\0name"),
        format!("{prefix}{long}"),
    ]
    .into_iter()
    .map(|path| json!({ "type": "file", "path": path, "size": 1, "xetHash": EMPTY_FILE_HASH }))
    .collect();
    out.push(json!({ "type": "file", "path": format!("{prefix}negative"), "size": -5 }));
    out.push(json!({ "type": "file", "path": format!("{prefix}huge"), "size": 9_223_372_036_854_775_808u64 }));
    out.push(json!({ "type": "file", "path": format!("{prefix}badhash"), "size": 1, "xetHash": "zz" }));
    out.push(json!({ "path": format!("{prefix}notype"), "size": 1 }));
    if let Some(first) = real.first() {
        let mut twin = first.clone();
        let flipped = if twin["type"] == "directory" { json!("file") } else { json!("directory") };
        twin["type"] = flipped;
        twin["size"] = json!(0);
        out.push(twin);
    }
    out
}

/// One page of `entries` for request `url` (`limit`, `cursor`), with the next page's `Link`.
fn page(url: &str, q: &str, entries: Vec<Value>) -> Completion {
    let limit: usize = query(q, "limit").and_then(|l| l.parse().ok()).unwrap_or(1000).max(1);
    let start: usize = query(q, "cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = (start + limit).min(entries.len());
    let mut headers = Vec::new();
    if end < entries.len() {
        let base = url.split("&cursor=").next().unwrap_or(url);
        headers.push(("link".to_string(), format!("<{base}&cursor={end}>; rel=\"next\"")));
    }
    let body = Value::Array(entries.get(start..end).unwrap_or_default().to_vec()).to_string();
    http(200, headers, body)
}

impl World {
    pub(crate) fn get(&mut self, url: &str) -> Completion {
        let Some(rest) = url.strip_prefix(ENDPOINT) else { return not_found("UnknownHost") };
        // A broken proxy: now and then a listing arrives cut short.
        if self.hostile && rest.contains("/tree") {
            self.listings_served += 1;
            if self.listings_served.is_multiple_of(11) {
                return http(200, vec![], "[{\"type\":\"file\",\"pa".into());
            }
        }
        let (path, q) = rest.split_once('?').unwrap_or((rest, ""));
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["api", "buckets", ns, name, tail @ ..] => self.bucket_get(&format!("{ns}/{name}"), tail, url, q),
            ["api", kind, ns, name, tail @ ..] => self.repo_get(kind, &format!("{ns}/{name}"), tail, url, q),
            _ => not_found("NotARoute"),
        }
    }

    fn repo_get(&self, kind: &str, id: &str, tail: &[&str], url: &str, q: &str) -> Completion {
        let Some(repo) = self
            .repo
            .as_ref()
            .filter(|r| r.repo.kind.api_segment() == kind && (r.repo.id == id || r.alias.as_deref() == Some(id)))
        else {
            return not_found("RepoNotFound");
        };
        let info = |sha: &str| {
            json!({ "id": repo.repo.id, "sha": sha, "lastModified": repo.last_modified, "private": false }).to_string()
        };
        match tail {
            [] => http(200, vec![], info(repo.resolve("main").unwrap_or_default())),
            ["revision", rev] => match percent_decode(rev).and_then(|r| repo.resolve(&r).map(str::to_string)) {
                Some(sha) => http(200, vec![], info(&sha)),
                None => not_found("RevisionNotFound"),
            },
            ["tree", rev, dir @ ..] => {
                let Some(sha) = percent_decode(rev).and_then(|r| repo.resolve(&r).map(str::to_string)) else {
                    return not_found("RevisionNotFound");
                };
                let Some(dir) = percent_decode(&dir.join("/")) else { return not_found("EntryNotFound") };
                let files = &repo.commits[&sha];
                let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
                if !dir.is_empty() && !files.keys().any(|p| p.starts_with(&prefix)) {
                    return not_found("EntryNotFound");
                }
                let mut dirs = BTreeSet::new();
                let mut entries = Vec::new();
                for (path, data) in files.range(prefix.clone()..) {
                    let Some(rest) = path.strip_prefix(&prefix) else { break };
                    match rest.split_once('/') {
                        Some((d, _)) => {
                            if dirs.insert(d.to_string()) {
                                entries.push(json!({ "type": "directory", "oid": "t", "size": 0, "path": format!("{prefix}{d}") }));
                            }
                        }
                        None if data.len() > repo.xet_threshold => entries.push(json!({
                            "type": "file", "oid": "x", "size": data.len(), "path": path,
                            "xetHash": content_hash(data),
                            "lfs": { "oid": "y", "size": data.len(), "pointerSize": 1 },
                        })),
                        None => entries.push(json!({ "type": "file", "oid": "x", "size": data.len(), "path": path })),
                    }
                }
                if self.hostile {
                    let extra = hostile_entries(&prefix, &entries);
                    entries.extend(extra);
                }
                page(url, q, entries)
            }
            _ => not_found("NotARoute"),
        }
    }

    fn bucket_get(&self, id: &str, tail: &[&str], url: &str, q: &str) -> Completion {
        let Some(bucket) = self.bucket.as_ref().filter(|b| b.id == id) else { return not_found("RepoNotFound") };
        match tail {
            [] => http(200, vec![], json!({ "id": id, "updatedAt": bucket.updated_at() }).to_string()),
            ["xet-write-token" | "xet-read-token"] => {
                let token = json!({ "casUrl": "http://cas.sim", "accessToken": "t", "exp": 4_000_000_000u64 });
                http(200, vec![], token.to_string())
            }
            ["tree", prefix @ ..] => {
                let Some(prefix) = percent_decode(&prefix.join("/")) else { return not_found("EntryNotFound") };
                let recursive = query(q, "recursive").is_none_or(|r| r == "true");
                let mut dirs = BTreeSet::new();
                let mut entries = Vec::new();
                // The Hub matches the prefix as raw bytes of the key: callers filter.
                for (path, (hash, _mtime)) in bucket.files.range(prefix.clone()..) {
                    let Some(rest) = path.strip_prefix(&prefix) else { break };
                    let rest = rest.strip_prefix('/').unwrap_or(rest);
                    match rest.find('/') {
                        Some(i) if !recursive => {
                            let dir = &path[..path.len() - rest.len() + i];
                            if dirs.insert(dir.to_string()) {
                                entries.push(json!({ "type": "directory", "path": dir }));
                            }
                        }
                        _ => {
                            let size = self.content(hash).map_or(0, |c| c.len());
                            entries.push(json!({ "type": "file", "path": path, "size": size, "xetHash": hash }));
                        }
                    }
                }
                if self.hostile {
                    let dir = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
                    let extra = hostile_entries(&dir, &entries);
                    entries.extend(extra);
                }
                page(url, q, entries)
            }
            _ => not_found("NotARoute"),
        }
    }

    pub(crate) fn post(&mut self, url: &str, body: &[u8]) -> Completion {
        let Some(id) = url
            .strip_prefix(ENDPOINT)
            .and_then(|r| r.strip_prefix("/api/buckets/"))
            .and_then(|r| r.strip_suffix("/batch"))
        else {
            return not_found("NotARoute");
        };
        let cas = &self.cas;
        let Some(bucket) = self.bucket.as_mut().filter(|b| b.id == id) else { return not_found("RepoNotFound") };
        let Ok(text) = std::str::from_utf8(body) else { return http(400, vec![], "{\"error\":\"not utf-8\"}".into()) };
        let mut ops = Vec::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                return http(400, vec![], "{\"error\":\"bad line\"}".into());
            };
            let path = v["path"].as_str().unwrap_or_default().to_string();
            if path.is_empty()
                || path.starts_with('/')
                || path.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            {
                return http(400, vec![], json!({ "error": format!("invalid path {path:?}") }).to_string());
            }
            if bucket.refused.contains(&path) {
                return http(400, vec![], json!({ "error": format!("refused path {path:?}") }).to_string());
            }
            match v["type"].as_str() {
                Some("addFile") => {
                    let hash = v["xetHash"].as_str().unwrap_or_default().to_string();
                    if hash != EMPTY_FILE_HASH && !cas.contains_key(&hash) {
                        return http(400, vec![], json!({ "error": "unknown xet hash" }).to_string());
                    }
                    ops.push((path, Some((hash, v["mtime"].as_i64().unwrap_or(0)))));
                }
                Some("deleteFile") => ops.push((path, None)),
                _ => return http(400, vec![], json!({ "error": "unknown op" }).to_string()),
            }
        }
        // Nothing changes unless every line is valid.
        for (path, op) in ops {
            match op {
                Some(entry) => {
                    bucket.files.insert(path, entry);
                }
                None => {
                    bucket.files.remove(&path);
                }
            }
        }
        bucket.updates += 1;
        http(200, vec![], "{}".into())
    }

    /// The bytes behind a repo resolve URL.
    pub(crate) fn resolve_bytes(&self, url: &str) -> Option<Bytes> {
        let repo = self.repo.as_ref()?;
        let rest = url.strip_prefix(ENDPOINT)?.trim_start_matches('/');
        let rest = rest.strip_prefix(repo.repo.kind.url_prefix())?;
        let rest = rest.strip_prefix(&repo.repo.id)?.strip_prefix("/resolve/")?;
        let (rev, path) = rest.split_once('/')?;
        let sha = repo.resolve(&percent_decode(rev)?)?;
        repo.commits.get(sha)?.get(&percent_decode(path)?).cloned()
    }
}

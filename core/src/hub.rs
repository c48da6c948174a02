//! The Hub wire protocol as pure code: URL building with the right percent-encoding, and parsing
//! of repo info, tree pages, `Link` headers, xet tokens and error headers.
//!
//! Nothing here sends a request; `hfm-effects` sends the bytes this module describes.

use serde::Deserialize;

use crate::effect::{EffectFailure, FailureKind, HttpResponse};

/// Repo types as they appear in API paths (`/api/{type}/...`) and in user-facing URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    Model,
    Dataset,
    Space,
}

impl RepoKind {
    pub fn api_segment(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
            RepoKind::Space => "spaces",
        }
    }

    /// Prefix of non-API URLs (`resolve`): models have none.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
            RepoKind::Space => "spaces/",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRef {
    pub kind: RepoKind,
    /// `namespace/name`.
    pub id: String,
}

/// Parse the CLI's `[datasets/|spaces/|models/]NS/NAME[/SUB/DIR]` into a repo and a subfolder.
pub fn parse_repo_arg(arg: &str) -> Result<(RepoRef, String), String> {
    let trimmed = arg.trim_matches('/');
    let mut parts: Vec<&str> = trimmed.split('/').collect();
    let kind = match parts.first() {
        Some(&"datasets") => RepoKind::Dataset,
        Some(&"spaces") => RepoKind::Space,
        Some(&"models") => RepoKind::Model,
        _ => RepoKind::Model,
    };
    if matches!(parts.first(), Some(&"datasets") | Some(&"spaces") | Some(&"models")) {
        parts.remove(0);
    }
    if parts.len() < 2 || parts[..2].iter().any(|p| p.is_empty()) {
        return Err(format!("invalid repo id {arg:?}: expected [datasets/|spaces/]NAMESPACE/NAME[/SUBFOLDER]"));
    }
    for part in &parts {
        if part.is_empty() || *part == "." || *part == ".." {
            return Err(format!("invalid repo id {arg:?}: empty, '.' or '..' path segment"));
        }
    }
    let id = format!("{}/{}", parts[0], parts[1]);
    let sub = parts[2..].join("/");
    Ok((RepoRef { kind, id }, sub))
}

/// Parse the CLI's `NS/NAME[/PREFIX]` into a bucket id and a folder of it.
pub fn parse_bucket_arg(arg: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = arg.trim_matches('/').split('/').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err(format!("invalid bucket id {arg:?}: expected NAMESPACE/NAME[/PREFIX]"));
    }
    Ok((format!("{}/{}", parts[0], parts[1]), parts[2..].join("/")))
}

/// Check a user-supplied revision: branch, tag, `refs/...` or a commit sha.
pub fn validate_revision(rev: &str) -> Result<(), String> {
    let ok = !rev.is_empty()
        && rev.len() <= 256
        && !rev.contains("..")
        && rev.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid revision {rev:?}: use letters, digits, '-', '_', '.', '/'"))
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encode a file path: `/` kept, everything else that is not unreserved percent-encoded.
pub fn encode_path(path: &str) -> String {
    percent_encode(path, true)
}

/// Encode one URL segment (a revision): `/` becomes `%2F`.
pub fn encode_segment(seg: &str) -> String {
    percent_encode(seg, false)
}

/// Decode `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// URL builders for one Hub endpoint (no trailing slash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubUrls {
    pub endpoint: String,
}

impl HubUrls {
    pub fn new(endpoint: &str) -> Self {
        HubUrls { endpoint: endpoint.trim_end_matches('/').to_string() }
    }

    pub fn repo_info(&self, repo: &RepoRef) -> String {
        format!("{}/api/{}/{}", self.endpoint, repo.kind.api_segment(), repo.id)
    }

    pub fn revision_info(&self, repo: &RepoRef, rev: &str) -> String {
        format!("{}/api/{}/{}/revision/{}", self.endpoint, repo.kind.api_segment(), repo.id, encode_segment(rev))
    }

    /// Non-recursive tree listing of `dir` ("" = root) at `rev`, first page.
    pub fn tree(&self, repo: &RepoRef, rev: &str, dir: &str, limit: u32) -> String {
        let mut url =
            format!("{}/api/{}/{}/tree/{}", self.endpoint, repo.kind.api_segment(), repo.id, encode_segment(rev));
        if !dir.is_empty() {
            url.push('/');
            url.push_str(&encode_path(dir));
        }
        url.push_str(&format!("?limit={limit}"));
        url
    }

    /// Recursive tree listing of `dir` ("" = root) at `rev`: every descendant, directories
    /// included, first page.
    pub fn tree_recursive(&self, repo: &RepoRef, rev: &str, dir: &str, limit: u32) -> String {
        self.tree(repo, rev, dir, limit) + "&recursive=true"
    }

    pub fn resolve(&self, repo: &RepoRef, rev: &str, path: &str) -> String {
        format!(
            "{}/{}{}/resolve/{}/{}",
            self.endpoint,
            repo.kind.url_prefix(),
            repo.id,
            encode_segment(rev),
            encode_path(path)
        )
    }

    pub fn xet_read_token(&self, repo: &RepoRef, rev: &str) -> String {
        format!("{}/api/{}/{}/xet-read-token/{}", self.endpoint, repo.kind.api_segment(), repo.id, encode_segment(rev))
    }

    pub fn bucket_info(&self, bucket: &str) -> String {
        format!("{}/api/buckets/{bucket}", self.endpoint)
    }

    /// Tree listing of bucket folder `dir` ("" = root), first page. The Hub matches `dir` as a
    /// raw key prefix, so callers keep only strict descendants of `dir/`.
    pub fn bucket_tree(&self, bucket: &str, dir: &str, recursive: bool, limit: u32) -> String {
        let mut url = format!("{}/api/buckets/{bucket}/tree", self.endpoint);
        if !dir.is_empty() {
            url.push('/');
            url.push_str(&encode_path(dir));
        }
        url.push_str(&format!("?recursive={recursive}&limit={limit}"));
        url
    }

    /// `POST` with `paths_info_body`: the file entries (tree shape) of the paths that exist.
    pub fn bucket_paths_info(&self, bucket: &str) -> String {
        format!("{}/api/buckets/{bucket}/paths-info", self.endpoint)
    }

    pub fn bucket_batch(&self, bucket: &str) -> String {
        format!("{}/api/buckets/{bucket}/batch", self.endpoint)
    }

    pub fn bucket_xet_token(&self, bucket: &str, write: bool) -> String {
        let kind = if write { "write" } else { "read" };
        format!("{}/api/buckets/{bucket}/xet-{kind}-token", self.endpoint)
    }

    /// A server-provided URL (pagination) may only be followed if it stays on our endpoint:
    /// otherwise the bearer token would leak to another origin.
    pub fn is_same_origin(&self, url: &str) -> bool {
        url.strip_prefix(&self.endpoint).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What a mount needs from `GET /api/{type}/{id}/revision/{rev}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionInfo {
    /// Canonical `ns/name`.
    pub id: String,
    /// The 40-hex commit the revision resolves to.
    pub sha: String,
    /// Seconds since the epoch of the last commit, when the Hub said.
    pub last_modified: Option<i64>,
}

#[derive(Deserialize)]
struct RawRevisionInfo {
    id: String,
    sha: Option<String>,
    #[serde(rename = "lastModified")]
    last_modified: Option<String>,
}

pub fn parse_revision_info(body: &[u8]) -> Result<RevisionInfo, String> {
    let raw: RawRevisionInfo = serde_json::from_slice(body).map_err(|e| format!("malformed repo info: {e}"))?;
    let sha = raw.sha.ok_or("repo info has no commit sha")?;
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("repo info has an invalid commit sha {sha:?}"));
    }
    Ok(RevisionInfo { id: raw.id, sha, last_modified: raw.last_modified.as_deref().and_then(parse_rfc3339) })
}

/// Where a file's bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ContentSource {
    /// Stored in Xet CAS under this file hash.
    Xet { hash: String },
    /// Stored in git; fetched through `resolve` (the oid is the git blob id).
    Regular { oid: String },
    /// Overlay mode: held by the local layer, never by the Hub.
    Layer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeEntryKind {
    File { size: u64, source: ContentSource },
    Directory,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// Full path from the repo root.
    pub path: String,
    pub kind: TreeEntryKind,
    /// Client-set modification time (bucket files), seconds since the epoch.
    pub mtime_secs: Option<i64>,
}

/// Files larger than this are not believed (it is past what a JSON number holds exactly).
pub const MAX_FILE_SIZE: u64 = 1 << 53;

/// Longest path component the mount takes (as `NAME_MAX`).
const MAX_NAME: usize = 255;

/// One page of a tree listing: the entries that make sense, and a word on each one left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreePage {
    pub entries: Vec<TreeEntry>,
    pub skipped: Vec<String>,
}

fn is_xet_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A path of real names: not empty, relative, no empty, `.` or `..` component, no NUL, no
/// component longer than a name may be.
pub fn is_clean_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0') && c.len() <= MAX_NAME)
}

/// The entries of a recursive listing that can all be true at once: the first of a path listed
/// twice, nothing below a path listed as a file. The rest is said in `skipped`.
pub fn coherent_tree(entries: Vec<TreeEntry>, skipped: &mut Vec<String>) -> Vec<TreeEntry> {
    let mut seen = std::collections::BTreeSet::new();
    let mut firsts = Vec::with_capacity(entries.len());
    for e in entries {
        if seen.insert(e.path.clone()) {
            firsts.push(e);
        } else {
            skipped.push(format!("{:?}: listed twice", e.path));
        }
    }
    let files: std::collections::BTreeSet<&str> =
        firsts.iter().filter(|e| matches!(e.kind, TreeEntryKind::File { .. })).map(|e| e.path.as_str()).collect();
    let below_a_file = |path: &str| path.match_indices('/').any(|(i, _)| files.contains(&path[..i]));
    let (kept, dropped): (Vec<TreeEntry>, Vec<TreeEntry>) =
        firsts.iter().cloned().partition(|e| !below_a_file(&e.path));
    skipped.extend(dropped.iter().map(|e| format!("{:?}: inside a file", e.path)));
    kept
}

/// One entry of a tree page, or why it is left out.
fn tree_entry(e: &serde_json::Value) -> Result<Option<TreeEntry>, String> {
    let path = e.get("path").and_then(|p| p.as_str()).ok_or("an entry without a path")?;
    let shown: String = path.chars().take(80).collect();
    if !is_clean_path(path) {
        return Err(format!("{shown:?}: not a valid path"));
    }
    let kind = match e.get("type").and_then(|t| t.as_str()) {
        Some("directory") => TreeEntryKind::Directory,
        Some("file") => {
            let size = e.get("lfs").and_then(|l| l.get("size")).or_else(|| e.get("size"));
            let size = match size.and_then(|s| s.as_u64()) {
                Some(n) if n <= MAX_FILE_SIZE => n,
                _ => {
                    return Err(format!(
                        "{shown:?}: no believable size ({})",
                        size.map_or("none".into(), |s| s.to_string())
                    ))
                }
            };
            let source = match e.get("xetHash").and_then(|h| h.as_str()) {
                Some(h) if !h.is_empty() => {
                    if !is_xet_hash(h) {
                        return Err(format!("{shown:?}: an invalid xetHash"));
                    }
                    ContentSource::Xet { hash: h.to_ascii_lowercase() }
                }
                _ => ContentSource::Regular {
                    oid: e.get("oid").and_then(|o| o.as_str()).unwrap_or_default().to_string(),
                },
            };
            TreeEntryKind::File { size, source }
        }
        // Submodules and types to come: not files the mount can show.
        Some(_) => return Ok(None),
        None => return Err(format!("{shown:?}: no type")),
    };
    let mtime_secs = e.get("mtime").and_then(|m| m.as_str()).and_then(parse_rfc3339);
    Ok(Some(TreeEntry { path: path.to_string(), kind, mtime_secs }))
}

/// Parse one tree page. A page that is not a JSON array is an error; entries that make no
/// sense (a path leaving its directory, a name too long, an absurd size, a bad hash) are left
/// out, each with a reason, and the rest of the page is used.
pub fn parse_tree_page(body: &[u8]) -> Result<TreePage, String> {
    let raw: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| format!("malformed tree page: {e}"))?;
    let mut page = TreePage { entries: Vec::with_capacity(raw.len()), skipped: Vec::new() };
    for e in &raw {
        match tree_entry(e) {
            Ok(Some(entry)) => page.entries.push(entry),
            Ok(None) => {}
            Err(why) => page.skipped.push(why),
        }
    }
    Ok(page)
}

/// The `rel="next"` URL of a `Link` header, if any.
pub fn next_link(link_header: &str) -> Option<String> {
    for part in link_header.split(',') {
        let part = part.trim();
        let (url_part, params) = part.split_once(';')?;
        let url = url_part.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Some(url.to_string());
        }
    }
    None
}

/// Whether a repo or bucket info object says the source is private (absent: public, as the
/// Hub always says when it is).
pub fn parse_private(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v.get("private")?.as_bool()).unwrap_or(false)
}

/// `updatedAt` of a bucket info object: the token the poll compares (exact string).
pub fn parse_bucket_updated_at(body: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "updatedAt")]
        updated_at: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("malformed bucket info: {e}"))?;
    match raw.updated_at {
        Some(u) if parse_rfc3339(&u).is_some() => Ok(u),
        Some(u) => Err(format!("bucket info has an invalid updatedAt {u:?}")),
        None => Err("bucket info has no updatedAt".to_string()),
    }
}

/// Hash of the empty file, as xet clients send it (no CAS object backs it).
pub const EMPTY_FILE_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of a bucket batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    Add { path: String, xet_hash: String, mtime_ms: i64 },
    Delete { path: String },
}

/// The JSON body of a bucket paths-info call.
pub fn paths_info_body(paths: &[&str]) -> Vec<u8> {
    serde_json::json!({ "paths": paths }).to_string().into_bytes()
}

/// The NDJSON body of `POST /api/buckets/{id}/batch`: every add before every delete, as the
/// Hub requires.
pub fn batch_body(ops: &[BatchOp]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops.iter().filter(|o| matches!(o, BatchOp::Add { .. })) {
        if let BatchOp::Add { path, xet_hash, mtime_ms } = op {
            let line = serde_json::json!({ "type": "addFile", "path": path, "xetHash": xet_hash, "mtime": mtime_ms });
            out.extend_from_slice(line.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    for op in ops {
        if let BatchOp::Delete { path } = op {
            out.extend_from_slice(serde_json::json!({ "type": "deleteFile", "path": path }).to_string().as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// A CAS access token from the xet token endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct XetToken {
    #[serde(rename = "casUrl")]
    pub cas_url: String,
    #[serde(rename = "accessToken")]
    pub access_token: String,
    pub exp: u64,
}

pub fn parse_xet_token(body: &[u8]) -> Result<XetToken, String> {
    serde_json::from_slice(body).map_err(|e| format!("malformed xet token response: {e}"))
}

/// The Hub's message for a failed response: `X-Error-Message`, else the JSON `error`, else text.
pub fn error_message(resp: &HttpResponse) -> String {
    if let Some(m) = resp.header("x-error-message") {
        return m.to_string();
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
        if let Some(e) = v.get("error") {
            return match e {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
    }
    let text = String::from_utf8_lossy(&resp.body);
    text.chars().take(200).collect()
}

/// Turn a non-2xx Hub response into a typed failure, keeping the Hub's error code and message.
pub fn failure_from_response(resp: &HttpResponse) -> EffectFailure {
    let code = resp.header("x-error-code").unwrap_or("");
    let message = match (code, error_message(resp)) {
        ("", m) => m,
        (c, m) if m.is_empty() => c.to_string(),
        (c, m) => format!("{c}: {m}"),
    };
    let mut failure = EffectFailure::from_status(resp.status, message);
    // The Hub answers 401 for anonymous access to a missing repo: say "not found" only when the
    // Hub said so explicitly, otherwise keep it an auth failure.
    if code == "RepoNotFound" && resp.status == 404 {
        failure.kind = FailureKind::NotFound;
    }
    if resp.status == 429 {
        failure.retry_after = rate_limit_delay(resp);
    }
    failure
}

/// Delay requested by a 429: `RateLimit: "api";r=0;t=<secs>` or `Retry-After: <secs>`, capped.
pub fn rate_limit_delay(resp: &HttpResponse) -> Option<std::time::Duration> {
    let secs = resp
        .header("ratelimit")
        .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("t=").and_then(|t| t.parse::<u64>().ok())))
        .or_else(|| resp.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()))?;
    Some(std::time::Duration::from_secs(secs.min(30)))
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or with `+00:00`) into seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { std::str::from_utf8(b.get(r)?).ok()?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recursive_listing_keeps_what_can_be_true_at_once() {
        let file = |p: &str, size| TreeEntry {
            path: p.into(),
            kind: TreeEntryKind::File { size, source: ContentSource::Xet { hash: "h".into() } },
            mtime_secs: None,
        };
        let dir = |p: &str| TreeEntry { path: p.into(), kind: TreeEntryKind::Directory, mtime_secs: None };
        let entries =
            vec![file("s/a", 1), file("s/a", 2), file("s/a/inside", 3), dir("s/d"), file("s/d/b", 4), file("s/ab", 5)];
        let mut skipped = Vec::new();
        let kept = coherent_tree(entries, &mut skipped);
        let paths: Vec<(&str, u64)> = kept
            .iter()
            .map(|e| (e.path.as_str(), if let TreeEntryKind::File { size, .. } = e.kind { size } else { 0 }))
            .collect();
        assert_eq!(paths, [("s/a", 1), ("s/d", 0), ("s/d/b", 4), ("s/ab", 5)]);
        assert_eq!(skipped, ["\"s/a\": listed twice", "\"s/a/inside\": inside a file"]);
    }

    #[test]
    fn batch_bodies_put_adds_first() {
        let ops = [
            BatchOp::Delete { path: "old".into() },
            BatchOp::Add { path: "a b/ü".into(), xet_hash: "h".into(), mtime_ms: 5 },
        ];
        let body = String::from_utf8(batch_body(&ops)).unwrap();
        assert_eq!(
            body,
            "{\"mtime\":5,\"path\":\"a b/ü\",\"type\":\"addFile\",\"xetHash\":\"h\"}\n{\"path\":\"old\",\"type\":\"deleteFile\"}\n"
        );
    }

    #[test]
    fn bucket_urls_and_info() {
        let u = HubUrls::new("http://h/");
        assert_eq!(
            u.bucket_tree("n/b", "a b/c", false, 5),
            "http://h/api/buckets/n/b/tree/a%20b/c?recursive=false&limit=5"
        );
        assert_eq!(u.bucket_tree("n/b", "", true, 5), "http://h/api/buckets/n/b/tree?recursive=true&limit=5");
        assert_eq!(
            parse_bucket_updated_at(br#"{"updatedAt":"2026-01-01T00:00:00.123Z"}"#).unwrap(),
            "2026-01-01T00:00:00.123Z"
        );
        assert!(parse_bucket_updated_at(b"{}").is_err());
        assert!(parse_bucket_updated_at(br#"{"updatedAt":"yesterday"}"#).is_err());
    }
    use proptest::prelude::*;

    #[test]
    fn repo_args() {
        let (r, sub) = parse_repo_arg("openai-community/gpt2").unwrap();
        assert_eq!((r.kind, r.id.as_str(), sub.as_str()), (RepoKind::Model, "openai-community/gpt2", ""));
        let (r, sub) = parse_repo_arg("datasets/ns/name/a/b").unwrap();
        assert_eq!((r.kind, r.id.as_str(), sub.as_str()), (RepoKind::Dataset, "ns/name", "a/b"));
        let (r, _) = parse_repo_arg("spaces/ns/app").unwrap();
        assert_eq!(r.kind, RepoKind::Space);
        assert!(parse_repo_arg("gpt2").is_err());
        assert!(parse_repo_arg("ns//x").is_err());
        assert!(parse_repo_arg("ns/name/../etc").is_err());
        assert_eq!(parse_bucket_arg("a/b/c/d").unwrap(), ("a/b".to_string(), "c/d".to_string()));
        assert!(parse_bucket_arg("a").is_err());
        assert!(parse_bucket_arg("a/../b").is_err());
    }

    #[test]
    fn urls_encode_paths_and_revisions() {
        let u = HubUrls::new("http://h:1/");
        let r = RepoRef { kind: RepoKind::Dataset, id: "a/b".into() };
        assert_eq!(
            u.tree(&r, "refs/pr/1", "dir x/#1", 1000),
            "http://h:1/api/datasets/a/b/tree/refs%2Fpr%2F1/dir%20x/%231?limit=1000"
        );
        assert_eq!(u.resolve(&r, "main", "a?b%/é"), "http://h:1/datasets/a/b/resolve/main/a%3Fb%25/%C3%A9");
        assert!(u.is_same_origin("http://h:1/api/x"));
        assert!(!u.is_same_origin("http://h:10/api/x"));
        assert!(!u.is_same_origin("http://evil/http://h:1/"));
    }

    #[test]
    fn link_header() {
        assert_eq!(next_link("<http://h/api?cursor=a>; rel=\"next\"").as_deref(), Some("http://h/api?cursor=a"));
        assert_eq!(next_link("<http://h/p>; rel=\"prev\", <http://h/n>; rel=\"next\"").as_deref(), Some("http://h/n"));
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn tree_page() {
        let body = br#"[{"type":"file","oid":"abc","size":5,"path":"a.txt"},
            {"type":"file","oid":"def","size":132,"path":"big.bin","lfs":{"oid":"x","size":999,"pointerSize":132},"xetHash":"AB00000000000000000000000000000000000000000000000000000000000000"},
            {"type":"directory","oid":"t","size":0,"path":"sub"},{"type":"submodule","path":"s"}]"#;
        let e = parse_tree_page(body).unwrap().entries;
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1].kind,
            TreeEntryKind::File { size: 999, source: ContentSource::Xet { hash: format!("ab{}", "0".repeat(62)) } }
        );
        assert_eq!(e[2].kind, TreeEntryKind::Directory);
        assert!(parse_tree_page(b"{}").is_err());
        // Hostile entries are left out, each with a reason; the rest of the page stands.
        let hostile = format!(
            r#"[{{"type":"file","path":"x"}},{{"type":"file","path":"y","size":1,"xetHash":"zz"}},
            {{"type":"file","path":"../up","size":1}},{{"type":"file","path":"/abs","size":1}},
            {{"type":"file","path":"a//b","size":1}},{{"type":"file","path":"a/./b","size":1}},
            {{"type":"file","path":"nul\u0000","size":1}},{{"type":"file","path":"{}","size":1}},
            {{"type":"file","path":"neg","size":-5}},{{"type":"file","path":"huge","size":9223372036854775808}},
            {{"type":"directory"}},{{"path":"notype","size":1}},{{"type":"file","path":"ok.txt","size":3}}]"#,
            "n".repeat(256)
        );
        let page = parse_tree_page(hostile.as_bytes()).unwrap();
        assert_eq!(page.entries.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), vec!["ok.txt"]);
        assert_eq!(page.skipped.len(), 12, "{:?}", page.skipped);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-01-02T03:04:05.000Z"), Some(1767323045));
        assert_eq!(parse_rfc3339("2026-01-02T04:04:05+01:00"), Some(1767323045));
        assert_eq!(parse_rfc3339("nope"), None);
    }

    #[test]
    fn errors_keep_hub_codes() {
        let resp = HttpResponse {
            status: 404,
            headers: vec![("x-error-code".into(), "RevisionNotFound".into())],
            body: bytes::Bytes::from_static(br#"{"error":"Invalid rev id: nope"}"#),
        };
        let f = failure_from_response(&resp);
        assert_eq!(f.kind, FailureKind::NotFound);
        assert_eq!(f.message, "RevisionNotFound: Invalid rev id: nope");
        let resp = HttpResponse {
            status: 429,
            headers: vec![("ratelimit".into(), "\"api\";r=0;t=7".into())],
            body: Default::default(),
        };
        assert_eq!(failure_from_response(&resp).retry_after, Some(std::time::Duration::from_secs(7)));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(s in "\\PC{0,40}") {
            prop_assert_eq!(percent_decode(&encode_path(&s)).unwrap(), s.clone());
            let seg = encode_segment(&s);
            prop_assert!(!seg.contains('/'));
            prop_assert_eq!(percent_decode(&seg).unwrap(), s);
        }

        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_tree_page(&body);
            let _ = parse_revision_info(&body);
            let _ = parse_xet_token(&body);
            let _ = next_link(&String::from_utf8_lossy(&body));
            let _ = parse_rfc3339(&String::from_utf8_lossy(&body));
        }
    }
}

//! hubsim's Hub HTTP API (repo info, revisions, tree, paths-info, refs, resolve, xet tokens,
//! whoami, repo creation; commits, branches and tags in `commits`) plus the emulator-only `/_emulator/*` seeding routes.
//!
//! Routing is done by hand on the raw request path, because revisions and file paths arrive
//! percent-encoded (`%2F` and `/` must be accepted alike) and must be decoded only after the
//! fixed route prefix is matched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{self, Commit, FileEntry, HubState, Repo, RepoType, TreeItem};
use crate::{buckets, commits};

/// A fault armed through `POST /_emulator/faults`: the next `count` Hub requests whose path
/// contains `path_contains` get `status` (with `RateLimit` for 429) or, with `body`, a 200 with
/// that body instead of the real answer.
#[derive(Clone, Debug, Deserialize)]
pub struct Fault {
    pub path_contains: String,
    pub count: u32,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Option<String>,
}

pub struct App {
    pub state: Mutex<HubState>,
    pub faults: Mutex<Vec<Fault>>,
    /// Port of the CAS (`casUrl`) and of the byte server (xet resolve redirects).
    pub cas_port: u16,
    pub bytes_port: u16,
    pub xet_token_ttl_secs: u64,
    /// The CAS store, for file sizes (bucket `addFile` does not carry one).
    pub cas: Arc<dyn xet_client::cas_client::DirectAccessClient>,
    /// The same store's shards, read to map the SHA-256 of an LFS commit entry to a xet hash.
    pub shards: Option<Arc<dyn xet_client::cas_client::DeletionControlableClient>>,
    pub shard_index: Mutex<commits::ShardIndex>,
    pub requests: AtomicU64,
}

pub type Shared = Arc<App>;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

pub(crate) fn now_rfc3339() -> String {
    rfc3339(now_ms())
}

/// Format milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // civil_from_days (Howard Hinnant)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", sod / 3600, sod % 3600 / 60, sod % 60, ms.rem_euclid(1000))
}

pub(crate) fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| decode(&v.replace('+', " ")).unwrap_or_default())
    })
}

pub(crate) fn error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let mut resp = (status, axum::Json(json!({ "error": message }))).into_response();
    if let Some(code) = code {
        resp.headers_mut()
            .insert("x-error-code", HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("Error")));
    }
    if let Ok(v) = HeaderValue::from_str(message) {
        resp.headers_mut().insert("x-error-message", v);
    }
    resp
}

pub(crate) fn host(headers: &HeaderMap) -> String {
    headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string()
}

pub(crate) fn host_name(headers: &HeaderMap) -> String {
    let h = host(headers);
    match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => h,
    }
}

/// Who is calling: `Ok(None)` anonymous, `Err` for a token the Hub does not know.
fn caller(app: &App, headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let token = auth.strip_prefix("Bearer ").unwrap_or(auth).trim();
    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    match st.user_for_token(token) {
        Some(u) => Ok(Some(u.to_string())),
        None => Err(error(StatusCode::UNAUTHORIZED, None, "Invalid credentials in Authorization header")),
    }
}

/// Look up a repo the caller may read, with the Hub's visibility rules (401 anonymous, 404
/// authenticated, both `RepoNotFound`).
fn readable_repo<'a>(st: &'a HubState, kind: RepoType, id: &str, user: Option<&str>) -> Result<&'a Repo, Response> {
    match st.repos.get(&state::repo_key(kind, id)) {
        Some(r) if st.can_read(r, user) => Ok(r),
        _ => {
            let status = if user.is_none() { StatusCode::UNAUTHORIZED } else { StatusCode::NOT_FOUND };
            Err(error(status, Some("RepoNotFound"), &format!("Repository Not Found for url: {id}")))
        }
    }
}

fn resolve_rev<'a>(repo: &'a Repo, rev: &str) -> Result<&'a Commit, Response> {
    repo.resolve(rev)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}")))
}

pub async fn handle(
    axum::extract::State(app): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // Count Hub traffic only: the emulator's own routes are not requests a client makes.
    if !path.starts_with("/_emulator/") {
        app.requests.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(resp) = injected_fault(&app, &path) {
        return resp;
    }
    let user = match caller(&app, &headers) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let user = user.as_deref();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["_emulator", "stats"]) => axum::Json(json!({ "requests": app.requests.load(Ordering::Relaxed) })).into_response(),
        (Method::POST, ["_emulator", "commit"]) => emulator_commit(&app, user, &body),
        (Method::GET, ["_emulator", "xet-write-token"]) => xet_token(&app, &headers),
        (Method::POST, ["_emulator", "faults"]) => match serde_json::from_slice::<Fault>(&body) {
            Ok(f) => {
                app.faults.lock().unwrap_or_else(|e| e.into_inner()).push(f);
                axum::Json(json!({})).into_response()
            }
            Err(e) => error(StatusCode::BAD_REQUEST, None, &e.to_string()),
        },
        (Method::DELETE, ["_emulator", "faults"]) => {
            app.faults.lock().unwrap_or_else(|e| e.into_inner()).clear();
            axum::Json(json!({})).into_response()
        }
        (Method::GET, ["api", "whoami-v2"]) => match user {
            Some(u) => axum::Json(json!({ "name": u, "type": "user", "orgs": [], "auth": { "type": "access_token", "accessToken": { "displayName": "hubsim", "role": "write" } } })).into_response(),
            None => error(StatusCode::UNAUTHORIZED, None, "Invalid credentials in Authorization header"),
        },
        (Method::POST, ["api", "repos", "create"]) => create_repo(&app, user, &headers, &body),
        // Model-card metadata check before a README.md upload: hubsim accepts any.
        (Method::POST, ["api", "validate-yaml"]) => axum::Json(json!({ "errors": [], "warnings": [] })).into_response(),
        (_, ["api", "buckets", rest @ ..]) => buckets::api(&app, &method, &uri, &headers, user, rest, &body).await,
        (Method::GET | Method::HEAD, ["buckets", ns, name, "resolve", path @ ..]) if !path.is_empty() => {
            buckets::resolve(&app, &method, &headers, user, &format!("{ns}/{name}"), path)
        }
        (Method::POST | Method::DELETE, ["api", ty, ns, name, op @ ("preupload" | "commit" | "branch" | "tag"), rev @ ..])
            if RepoType::from_api(ty).is_some() && !rev.is_empty() =>
        {
            let kind = RepoType::from_api(ty).expect("checked by guard");
            let id = format!("{ns}/{name}");
            let Some(rev) = decode(&rev.join("/")) else {
                return error(StatusCode::BAD_REQUEST, None, "bad percent-encoding");
            };
            let create = method == Method::POST;
            match *op {
                "preupload" if create => commits::preupload(&app, user, kind, &id, &rev, &body),
                "commit" if create => commits::commit(&app, &uri, &headers, user, kind, &id, &rev, &body).await,
                "branch" => commits::branch(&app, create, user, kind, &id, &rev, &body),
                "tag" => commits::tag(&app, create, user, kind, &id, &rev, &body),
                _ => error(StatusCode::METHOD_NOT_ALLOWED, None, "Method Not Allowed"),
            }
        }
        (_, ["api", ty, ns, name, rest @ ..]) if RepoType::from_api(ty).is_some() => {
            let kind = RepoType::from_api(ty).expect("checked by guard");
            let id = format!("{ns}/{name}");
            api_repo(&app, &method, &uri, &headers, user, kind, &id, rest, &body)
        }
        (Method::GET | Method::HEAD, _) => match parse_resolve(&segs) {
            Some((kind, id, rev, file)) => resolve(&app, &method, &headers, user, kind, &id, &rev, &file),
            None => error(StatusCode::NOT_FOUND, None, "Not Found"),
        },
        _ => error(StatusCode::NOT_FOUND, None, "Not Found"),
    }
}

fn injected_fault(app: &App, path: &str) -> Option<Response> {
    if path.starts_with("/_emulator/") {
        return None;
    }
    let mut faults = app.faults.lock().unwrap_or_else(|e| e.into_inner());
    let idx = faults.iter().position(|f| f.count > 0 && path.contains(&f.path_contains))?;
    let fault = faults[idx].clone();
    faults[idx].count -= 1;
    if faults[idx].count == 0 {
        faults.remove(idx);
    }
    if let Some(body) = fault.body {
        return Some((StatusCode::OK, [("content-type", "application/json")], body).into_response());
    }
    let status = StatusCode::from_u16(fault.status.unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = error(status, None, "injected fault");
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert("ratelimit", HeaderValue::from_static("\"api\";r=0;t=1"));
    }
    Some(resp)
}

/// `/{prefix}{ns}/{name}/resolve/{rev}/{path...}` -> (type, id, rev, path), decoded.
fn parse_resolve(segs: &[&str]) -> Option<(RepoType, String, String, String)> {
    let (kind, rest) = match segs.first() {
        Some(&"datasets") => (RepoType::Dataset, &segs[1..]),
        Some(&"spaces") => (RepoType::Space, &segs[1..]),
        _ => (RepoType::Model, segs),
    };
    match rest {
        [ns, name, "resolve", rev, path @ ..] if !path.is_empty() => {
            Some((kind, format!("{ns}/{name}"), decode(rev)?, decode(&path.join("/"))?))
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn api_repo(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    user: Option<&str>,
    kind: RepoType,
    id: &str,
    rest: &[&str],
    body: &[u8],
) -> Response {
    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let repo = match readable_repo(&st, kind, id, user) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let decode_or_400 = |s: &str| decode(s).ok_or_else(|| error(StatusCode::BAD_REQUEST, None, "bad percent-encoding"));
    let result: Result<Response, Response> = (|| match (method.clone(), rest) {
        (Method::GET, []) => {
            let commit = repo.main_commit();
            Ok(axum::Json(repo_info(repo, commit)).into_response())
        }
        (Method::GET, ["revision", rev]) => {
            let commit = resolve_rev(repo, &decode_or_400(rev)?)?;
            Ok(axum::Json(repo_info(repo, Some(commit))).into_response())
        }
        (Method::GET, ["refs"]) => {
            let r = |prefix: &str, m: &std::collections::BTreeMap<String, String>| -> Vec<Value> {
                m.iter()
                    .map(|(n, sha)| json!({ "name": n, "ref": format!("{prefix}{n}"), "targetCommit": sha }))
                    .collect()
            };
            Ok(axum::Json(json!({ "branches": r("refs/heads/", &repo.branches), "tags": r("refs/tags/", &repo.tags), "converts": [] })).into_response())
        }
        (Method::GET, ["tree", rev, path @ ..]) => {
            let commit = resolve_rev(repo, &decode_or_400(rev)?)?;
            let dir = decode_or_400(&path.join("/"))?.trim_matches('/').to_string();
            tree(uri, headers, commit, &dir)
        }
        (Method::POST, ["paths-info", rev]) => {
            let commit = resolve_rev(repo, &decode_or_400(rev)?)?;
            paths_info(commit, headers, body)
        }
        (Method::GET, ["xet-read-token", _rev]) | (Method::GET, ["xet-write-token", _rev]) => {
            Ok(xet_token(app, headers))
        }
        _ => Err(error(StatusCode::NOT_FOUND, None, "Not Found")),
    })();
    result.unwrap_or_else(|e| e)
}

fn repo_info(repo: &Repo, commit: Option<&Commit>) -> Value {
    let siblings: Vec<Value> =
        commit.map(|c| c.files.keys().map(|p| json!({ "rfilename": p })).collect()).unwrap_or_default();
    json!({
        "_id": repo.id, "id": repo.id, "private": repo.private, "gated": false, "disabled": false,
        "sha": commit.map(|c| c.sha.clone()),
        "lastModified": commit.map(|c| c.date.clone()).unwrap_or_else(|| repo.created_at.clone()),
        "createdAt": repo.created_at, "siblings": siblings, "tags": [], "downloads": 0, "likes": 0,
        "author": repo.id.split('/').next(),
    })
}

fn entry_json(commit: &Commit, item: &TreeItem<'_>) -> Value {
    match item {
        TreeItem::Dir(d, _) => json!({ "type": "directory", "oid": commit.dir_oid(d), "size": 0, "path": d }),
        TreeItem::File(path, FileEntry::Regular { oid, size }) => {
            json!({ "type": "file", "oid": oid, "size": size, "path": path })
        }
        TreeItem::File(path, FileEntry::Xet { xet_hash, sha256, size, pointer_oid, pointer_size }) => json!({
            "type": "file", "oid": pointer_oid, "size": size, "path": path, "xetHash": xet_hash,
            "lfs": { "oid": sha256, "size": size, "pointerSize": pointer_size },
        }),
    }
}

fn tree(uri: &Uri, headers: &HeaderMap, commit: &Commit, dir: &str) -> Result<Response, Response> {
    if !commit.is_dir(dir) {
        return Err(error(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            &format!("{dir} does not exist on {}", commit.sha),
        ));
    }
    let recursive = query_param(uri, "recursive").is_some_and(|v| v == "true" || v == "1");
    let items = commit.list(dir, recursive);
    let mut resp = paginate(uri, headers, &items, TreeItem::found_at, |i| entry_json(commit, i))?;
    resp.headers_mut().insert("x-repo-commit", HeaderValue::from_str(&commit.sha).expect("hex"));
    Ok(resp)
}

/// One page of `items` as a JSON array (`limit` and `cursor` from the query), with a `Link`
/// header to the next page as an absolute URL on the origin the client called. `items` come in
/// the order of the stored paths they were met at (`found_at`; several items may share one),
/// and the cursor names the position of the last item sent, as the Hub's opaque cursors do: a
/// listing changed between two pages neither repeats an item nor skips one it held before.
pub(crate) fn paginate<T>(
    uri: &Uri,
    headers: &HeaderMap,
    items: &[T],
    found_at: impl Fn(&T) -> &str,
    to_json: impl Fn(&T) -> Value,
) -> Result<Response, Response> {
    let limit = query_param(uri, "limit").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1000).clamp(1, 1000);
    // Each item's position: the path it was met at, and its rank among the items met there.
    let mut positions: Vec<(&str, usize)> = Vec::with_capacity(items.len());
    for item in items {
        let at = found_at(item);
        let rank = positions.last().filter(|(last, _)| *last == at).map_or(0, |(_, r)| r + 1);
        positions.push((at, rank));
    }
    let start = match query_param(uri, "cursor") {
        None => 0,
        Some(c) => {
            let after = parse_cursor(&c).ok_or_else(|| error(StatusCode::BAD_REQUEST, None, "invalid cursor"))?;
            positions.partition_point(|(at, rank)| (*at, *rank) <= (after.0.as_str(), after.1))
        }
    };
    let end = (start + limit).min(items.len());
    let page: Vec<Value> = items[start..end].iter().map(to_json).collect();
    let mut resp = axum::Json(page).into_response();
    if end < items.len() {
        let mut next_query: Vec<String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("cursor="))
            .map(String::from)
            .collect();
        let (at, rank) = positions[end - 1];
        next_query.push(format!("cursor={}-{rank}", state::hex(at.as_bytes())));
        let next = format!("http://{}{}?{}", host(headers), uri.path(), next_query.join("&"));
        if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            resp.headers_mut().insert("link", v);
        }
    }
    Ok(resp)
}

/// A cursor `paginate` made: the hex of a stored path, a dash, a rank.
fn parse_cursor(cursor: &str) -> Option<(String, usize)> {
    let (at, rank) = cursor.split_once('-')?;
    let bytes = (0..at.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(at.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((String::from_utf8(bytes).ok()?, rank.parse().ok()?))
}

fn paths_info(commit: &Commit, headers: &HeaderMap, body: &[u8]) -> Result<Response, Response> {
    let is_json = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let paths: Vec<String> = if is_json {
        #[derive(Deserialize)]
        struct Body {
            paths: Vec<String>,
        }
        serde_json::from_slice::<Body>(body).map_err(|e| error(StatusCode::BAD_REQUEST, None, &e.to_string()))?.paths
    } else {
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| kv.strip_prefix("paths="))
            .filter_map(|v| decode(&v.replace('+', " ")))
            .collect()
    };
    let mut out = Vec::new();
    for p in paths {
        let p = p.trim_matches('/').to_string();
        if let Some(entry) = commit.files.get(&p) {
            out.push(entry_json(commit, &TreeItem::File(&p, entry)));
        } else if commit.is_dir(&p) && !p.is_empty() {
            out.push(entry_json(commit, &TreeItem::Dir(p, "")));
        }
    }
    Ok(axum::Json(out).into_response())
}

pub(crate) fn xet_token(app: &App, headers: &HeaderMap) -> Response {
    let cas_url = format!("http://{}:{}", host_name(headers), app.cas_port);
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
        + app.xet_token_ttl_secs;
    let token = format!("hubsim-xet-{:016x}", rand::random::<u64>());
    let mut resp = axum::Json(json!({ "casUrl": cas_url, "accessToken": token, "exp": exp })).into_response();
    let h = resp.headers_mut();
    h.insert("x-xet-cas-url", HeaderValue::from_str(&cas_url).expect("ascii"));
    h.insert("x-xet-access-token", HeaderValue::from_str(&token).expect("ascii"));
    h.insert("x-xet-token-expiration", HeaderValue::from(exp));
    resp
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    user: Option<&str>,
    kind: RepoType,
    id: &str,
    rev: &str,
    path: &str,
) -> Response {
    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let repo = match readable_repo(&st, kind, id, user) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let commit = match resolve_rev(repo, rev) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let Some(entry) = commit.files.get(path) else {
        let mut resp =
            error(StatusCode::NOT_FOUND, Some("EntryNotFound"), &format!("{path} does not exist on {}", commit.sha));
        resp.headers_mut().insert("x-repo-commit", HeaderValue::from_str(&commit.sha).expect("hex"));
        return resp;
    };
    let mut resp = match entry {
        FileEntry::Regular { oid, size } => {
            let data = st.blobs.get(oid).cloned().unwrap_or_default();
            let etag = format!("\"{oid}\"");
            if headers
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start_matches("W/") == etag)
            {
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                r.headers_mut().insert("etag", HeaderValue::from_str(&etag).expect("hex"));
                r
            } else {
                let mut r = ranged(method, headers, data, *size);
                r.headers_mut().insert("etag", HeaderValue::from_str(&etag).expect("hex"));
                r
            }
        }
        FileEntry::Xet { xet_hash, sha256, size, .. } => {
            let hn = host_name(headers);
            let mut r = StatusCode::FOUND.into_response();
            let h = r.headers_mut();
            h.insert(
                "location",
                HeaderValue::from_str(&format!("http://{hn}:{}/xet/{xet_hash}", app.bytes_port)).expect("ascii"),
            );
            h.insert("x-xet-hash", HeaderValue::from_str(xet_hash).expect("hex"));
            h.insert("x-linked-size", HeaderValue::from(*size));
            h.insert("x-linked-etag", HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex"));
            h.insert("etag", HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex"));
            let link = format!(
                "<http://{}/api/{}/{}/xet-read-token/{}>; rel=\"xet-auth\", <http://{hn}:{}/v1/reconstructions/{xet_hash}>; rel=\"xet-reconstruction-info\"",
                host(headers), kind.api(), id, commit.sha, app.cas_port
            );
            h.insert("link", HeaderValue::from_str(&link).expect("ascii"));
            r
        }
    };
    let h = resp.headers_mut();
    h.insert("x-repo-commit", HeaderValue::from_str(&commit.sha).expect("hex"));
    if let Ok(v) = HeaderValue::from_str(&http_date(&commit.date)) {
        h.insert("last-modified", v);
    }
    resp
}

/// `2026-01-02T03:04:05.000Z` -> `Fri, 02 Jan 2026 03:04:05 GMT`.
pub(crate) fn http_date(rfc3339: &str) -> String {
    let num = |r: std::ops::Range<usize>| rfc3339.get(r).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let days = {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468
    };
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let wd = WEEKDAYS[days.rem_euclid(7) as usize];
    let mon = MONTHS[(m.clamp(1, 12) - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y:04} {}:{}:{} GMT",
        &rfc3339.get(11..13).unwrap_or("00"),
        &rfc3339.get(14..16).unwrap_or("00"),
        &rfc3339.get(17..19).unwrap_or("00")
    )
}

/// Serve `data` (of `size` bytes) honouring a single `Range` header.
pub fn ranged(method: &Method, headers: &HeaderMap, data: Bytes, size: u64) -> Response {
    match headers.get("range").and_then(|v| v.to_str().ok()).and_then(|r| parse_range(r, size)) {
        Some(Ok((a, b))) => range_response(method, Some((a, b)), data.slice(a as usize..=b as usize), size),
        Some(Err(())) => unsatisfiable(size),
        None => range_response(method, None, data, size),
    }
}

pub fn unsatisfiable(size: u64) -> Response {
    let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    r.headers_mut().insert("content-range", HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"));
    r
}

/// A 200 (whole file) or 206 (`range`, inclusive) response whose body is `slice`.
pub fn range_response(method: &Method, range: Option<(u64, u64)>, slice: Bytes, size: u64) -> Response {
    let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let len = slice.len();
    let body = if *method == Method::HEAD { Body::empty() } else { Body::from(slice) };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert("content-length", HeaderValue::from(len));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    h.insert("content-type", HeaderValue::from_static("application/octet-stream"));
    if let Some((a, b)) = range {
        h.insert("content-range", HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")).expect("ascii"));
    }
    r
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` -> inclusive (a, b); `Some(Err)` when unsatisfiable,
/// `None` when absent or not understood (serve the whole body).
pub fn parse_range(v: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end =
            if b.is_empty() { size.saturating_sub(1) } else { b.parse::<u64>().ok()?.min(size.saturating_sub(1)) };
        (start, end)
    };
    if start >= size || start > end {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

fn create_repo(app: &App, user: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Response {
    #[derive(Deserialize)]
    struct Create {
        name: String,
        organization: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        private: Option<bool>,
        visibility: Option<String>,
    }
    let Some(user) = user else { return error(StatusCode::UNAUTHORIZED, None, "You must be authenticated") };
    let req: Create = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, &e.to_string()),
    };
    let Some(kind) = RepoType::from_singular(req.kind.as_deref().unwrap_or("model")) else {
        return error(StatusCode::BAD_REQUEST, None, "invalid repo type");
    };
    let ns = req.organization.unwrap_or_else(|| user.to_string());
    let id = format!("{ns}/{}", req.name);
    let private = req.private.unwrap_or(false) || req.visibility.as_deref() == Some("private");
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let key = state::repo_key(kind, &id);
    let url = format!("http://{}/{}{id}", host(headers), kind.url_prefix());
    if st.repos.contains_key(&key) {
        // The Hub's 409 carries the repo's url (Python's `create_repo(exist_ok=True)` reads it).
        let body = json!({ "error": "You already created this model repo", "url": url });
        return (StatusCode::CONFLICT, axum::Json(body)).into_response();
    }
    st.repos.insert(key, new_repo(kind, &id, private, Some(user)));
    if let Err(e) = st.persist() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, None, &e.to_string());
    }
    axum::Json(json!({ "url": url, "name": id })).into_response()
}

fn new_repo(kind: RepoType, id: &str, private: bool, owner: Option<&str>) -> Repo {
    Repo {
        kind,
        id: id.to_string(),
        owner: owner.map(str::to_string),
        private,
        created_at: now_rfc3339(),
        branches: Default::default(),
        tags: Default::default(),
        commits: Default::default(),
    }
}

/// Body of `POST /_emulator/commit` (what `hubsim seed` sends).
#[derive(Deserialize)]
pub struct SeedCommit {
    pub repo_type: String,
    pub repo_id: String,
    pub branch: String,
    pub tag: Option<String>,
    pub private: bool,
    pub title: String,
    pub files: Vec<SeedFile>,
}

#[derive(Deserialize)]
pub struct SeedFile {
    pub path: String,
    /// Base64 content of a regular file.
    pub content_b64: Option<String>,
    pub xet_hash: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

fn emulator_commit(app: &App, user: Option<&str>, body: &[u8]) -> Response {
    use base64::Engine;
    let req: SeedCommit = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, &e.to_string()),
    };
    let Some(kind) = RepoType::from_singular(&req.repo_type) else {
        return error(StatusCode::BAD_REQUEST, None, "invalid repo type");
    };
    if req.repo_id.split('/').count() != 2 || req.repo_id.split('/').any(str::is_empty) {
        return error(StatusCode::BAD_REQUEST, None, "repo id must be NAMESPACE/NAME");
    }
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let key = state::repo_key(kind, &req.repo_id);
    if let Some(existing) = st.repos.get(&key) {
        if existing.private && !st.can_read(existing, user) {
            return error(StatusCode::FORBIDDEN, None, "not the owner of this repo");
        }
    } else {
        st.repos.insert(key.clone(), new_repo(kind, &req.repo_id, req.private, user));
    }
    let mut files = std::collections::BTreeMap::new();
    for f in req.files {
        let path = f.path.trim_matches('/').to_string();
        if path.is_empty() || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return error(StatusCode::BAD_REQUEST, None, &format!("invalid path {:?}", f.path));
        }
        let entry = match (f.content_b64, f.xet_hash, f.sha256, f.size) {
            (Some(b64), None, _, _) => {
                let Ok(data) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                    return error(StatusCode::BAD_REQUEST, None, "bad base64");
                };
                let oid = state::git_blob_oid(&data);
                let size = data.len() as u64;
                st.blobs.insert(oid.clone(), data.into());
                FileEntry::Regular { oid, size }
            }
            (None, Some(xet_hash), Some(sha256), Some(size)) => {
                let pointer = state::lfs_pointer(&sha256, size);
                FileEntry::Xet {
                    xet_hash,
                    sha256,
                    size,
                    pointer_oid: state::git_blob_oid(pointer.as_bytes()),
                    pointer_size: pointer.len() as u64,
                }
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    &format!("file {path:?}: give content_b64, or xet_hash + sha256 + size"),
                )
            }
        };
        files.insert(path, entry);
    }
    let sha = st.new_commit_sha(&req.repo_id);
    let repo = st.repos.get_mut(&key).expect("inserted above");
    if req.private {
        repo.private = true;
    }
    let parent = repo.branches.get(&req.branch).cloned();
    repo.commits.insert(sha.clone(), Commit { sha: sha.clone(), parent, title: req.title, date: now_rfc3339(), files });
    repo.branches.insert(req.branch, sha.clone());
    if let Some(tag) = req.tag {
        repo.tags.insert(tag, sha.clone());
    }
    if let Err(e) = st.persist() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, None, &e.to_string());
    }
    axum::Json(json!({ "commitOid": sha })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("items=1-2", 100), None);
    }

    /// Pages of `items` (each item met at its own path) from `cursor`: the items and the next cursor.
    fn page(items: &[&str], limit: usize, cursor: Option<&str>) -> (Vec<String>, Option<String>) {
        let query = cursor.map_or(String::new(), |c| format!("&cursor={c}"));
        let uri: Uri = format!("/api/x?limit={limit}{query}").parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("hub"));
        let resp = paginate(&uri, &headers, items, |i| i, |i| json!(i)).expect("a page");
        let next =
            resp.headers().get("link").and_then(|l| l.to_str().ok()).map(|l| {
                l.split("cursor=").nth(1).and_then(|c| c.split(['>', '&']).next()).expect("a cursor").to_string()
            });
        let body = body_of(resp);
        (serde_json::from_slice::<Vec<String>>(&body).expect("a JSON page"), next)
    }

    fn body_of(resp: Response) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).expect("body").to_vec()
    }

    #[test]
    fn a_listing_changed_between_pages_neither_repeats_nor_skips_what_it_held() {
        let (first, cursor) = page(&["a", "b", "c", "d"], 2, None);
        assert_eq!(first, ["a", "b"]);
        // "0" and "aa" arrive before the cursor, "bb" after it; "c" goes.
        let (second, cursor) = page(&["0", "a", "aa", "b", "bb", "d"], 2, cursor.as_deref());
        assert_eq!(second, ["bb", "d"]);
        assert_eq!(cursor, None);
        let uri: Uri = "/api/x?cursor=nothex".parse().expect("uri");
        assert!(paginate(&uri, &HeaderMap::new(), &["a"], |i| i, |i| json!(i)).is_err(), "a bad cursor is a 400");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1767323045123), "2026-01-02T03:04:05.123Z");
        assert_eq!(http_date("2026-01-02T03:04:05.123Z"), "Fri, 02 Jan 2026 03:04:05 GMT");
    }
}

//! hubsim's Buckets API (hub-protocol §7): create/list/info/delete/settings, tree with the
//! Hub's raw-prefix semantics, paths-info, NDJSON batch (sizes looked up from CAS), resolve
//! HEAD/GET and bucket xet tokens.
//!
//! Visibility follows repos: a private bucket answers 401 to anonymous callers and 404 to
//! other users; writes need the bucket's namespace user or its creator (403 otherwise).

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use xet_core_structures::merklehash::MerkleHash;

use crate::routes::{self, decode, error, host, host_name, now_ms, paginate, query_param, rfc3339, App};
use crate::state::{Bucket, BucketFile, BucketItem, HubState};

/// The all-zero hash xet clients use for an empty file; no shard ever registers it.
const EMPTY_FILE_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn info_json(b: &Bucket) -> Value {
    json!({
        "id": b.id, "private": b.private, "createdAt": rfc3339(b.created_ms), "updatedAt": rfc3339(b.updated_ms),
        "size": b.total_size(), "totalFiles": b.files.len(), "author": b.id.split('/').next(),
    })
}

fn file_json(path: &str, f: &BucketFile) -> Value {
    json!({
        "type": "file", "path": path, "size": f.size, "xetHash": f.xet_hash,
        "mtime": rfc3339(f.mtime_ms), "uploadedAt": rfc3339(f.uploaded_ms),
    })
}

fn not_found(id: &str, user: Option<&str>) -> Response {
    let status = if user.is_none() { StatusCode::UNAUTHORIZED } else { StatusCode::NOT_FOUND };
    error(status, Some("RepoNotFound"), &format!("Bucket Not Found for url: {id}"))
}

fn readable<'a>(st: &'a HubState, id: &str, user: Option<&str>) -> Result<&'a Bucket, Response> {
    match st.buckets.get(id) {
        Some(b) if st.can_read_bucket(b, user) => Ok(b),
        _ => Err(not_found(id, user)),
    }
}

fn writable<'a>(st: &'a mut HubState, id: &str, user: Option<&str>) -> Result<&'a mut Bucket, Response> {
    let allowed = match st.buckets.get(id) {
        Some(b) if st.can_write_bucket(b, user) => true,
        Some(b) if st.can_read_bucket(b, user) => {
            let status = if user.is_none() { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
            return Err(error(status, None, &format!("You have no write access to bucket {id}")));
        }
        _ => false,
    };
    if !allowed {
        return Err(not_found(id, user));
    }
    Ok(st.buckets.get_mut(id).expect("checked above"))
}

fn persisted(st: &HubState, ok: Response) -> Response {
    match st.persist() {
        Ok(()) => ok,
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, None, &e.to_string()),
    }
}

/// `/api/buckets/...`; `rest` is the path after `buckets`, still percent-encoded.
#[allow(clippy::too_many_arguments)]
pub async fn api(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    user: Option<&str>,
    rest: &[&str],
    body: &Bytes,
) -> Response {
    let me = |ns: &str| if ns == "me" { user.unwrap_or(ns).to_string() } else { ns.to_string() };
    match (method.clone(), rest) {
        (Method::GET, [ns]) => list(app, uri, headers, user, &me(ns)),
        (Method::POST, [ns, name]) => create(app, headers, user, &format!("{}/{name}", me(ns)), body),
        (Method::POST, ["batch" | "paths-info" | "settings", ..]) => error(StatusCode::NOT_FOUND, None, "Not Found"),
        (Method::POST, [ns, name, "batch"]) => batch(app, user, &format!("{ns}/{name}"), body).await,
        (_, [ns, name, tail @ ..]) => {
            let id = format!("{ns}/{name}");
            match (method.clone(), tail) {
                (Method::GET, []) => {
                    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
                    readable(&st, &id, user).map(|b| axum::Json(info_json(b)).into_response()).unwrap_or_else(|e| e)
                }
                (Method::DELETE, []) => {
                    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = writable(&mut st, &id, user) {
                        return e;
                    }
                    st.buckets.remove(&id);
                    persisted(&st, axum::Json(json!({})).into_response())
                }
                (Method::PUT, ["settings"]) => settings(app, user, &id, body),
                (Method::GET, ["tree", prefix @ ..]) => tree(app, uri, headers, user, &id, prefix),
                (Method::POST, ["paths-info"]) => paths_info(app, user, &id, body),
                (Method::GET, ["xet-read-token"]) => {
                    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
                    match readable(&st, &id, user) {
                        Ok(_) => routes::xet_token(app, headers),
                        Err(e) => e,
                    }
                }
                (Method::GET, ["xet-write-token"]) => {
                    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
                    match writable(&mut st, &id, user) {
                        Ok(_) => routes::xet_token(app, headers),
                        Err(e) => e,
                    }
                }
                _ => error(StatusCode::NOT_FOUND, None, "Not Found"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, None, "Not Found"),
    }
}

fn list(app: &App, uri: &Uri, headers: &HeaderMap, user: Option<&str>, ns: &str) -> Response {
    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = format!("{ns}/");
    let search = query_param(uri, "search").unwrap_or_default();
    let found: Vec<&Bucket> = st
        .buckets
        .values()
        .filter(|b| b.id.starts_with(&prefix) && b.id.contains(&search) && st.can_read_bucket(b, user))
        .collect();
    let known_ns = !found.is_empty()
        || st.tokens.values().any(|u| u == ns)
        || st.buckets.keys().chain(st.repos.values().map(|r| &r.id)).any(|id| id.starts_with(&prefix));
    if !known_ns {
        return error(StatusCode::NOT_FOUND, None, &format!("{ns} is not a user or organization"));
    }
    paginate(uri, headers, &found, |b| b.id.as_str(), |b| info_json(b)).unwrap_or_else(|e| e)
}

fn create(app: &App, headers: &HeaderMap, user: Option<&str>, id: &str, body: &[u8]) -> Response {
    #[derive(Deserialize, Default)]
    struct Create {
        #[serde(default)]
        private: Option<bool>,
        #[serde(default)]
        visibility: Option<String>,
    }
    let Some(user) = user else { return error(StatusCode::UNAUTHORIZED, None, "You must be authenticated") };
    let req: Create = if body.iter().all(u8::is_ascii_whitespace) {
        Create::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, None, &e.to_string()),
        }
    };
    let name_ok = |s: &str| {
        !s.is_empty() && s.len() <= 96 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let Some((ns, name)) = id.split_once('/') else { return error(StatusCode::BAD_REQUEST, None, "bad bucket id") };
    if !name_ok(ns) || !name_ok(name) {
        return error(StatusCode::BAD_REQUEST, None, &format!("invalid bucket id {id:?}"));
    }
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    // Organisations are not modelled: another user's namespace is refused, anything else allowed.
    if ns != user && st.tokens.values().any(|u| u == ns) {
        return error(StatusCode::FORBIDDEN, None, &format!("You cannot create buckets in {ns}"));
    }
    let url = format!("http://{}/buckets/{id}", host(headers));
    if st.buckets.contains_key(id) {
        // Python's `create_bucket(exist_ok=True)` reads `url` from the 409 body too.
        let body = json!({ "error": "You already created this bucket", "url": url });
        return (StatusCode::CONFLICT, axum::Json(body)).into_response();
    }
    let now = now_ms();
    st.buckets.insert(
        id.to_string(),
        Bucket {
            id: id.to_string(),
            owner: Some(user.to_string()),
            private: req.private.unwrap_or(false) || req.visibility.as_deref() == Some("private"),
            created_ms: now,
            updated_ms: now,
            files: Default::default(),
        },
    );
    persisted(&st, axum::Json(json!({ "url": url, "id": id, "name": id })).into_response())
}

fn settings(app: &App, user: Option<&str>, id: &str, body: &[u8]) -> Response {
    #[derive(Deserialize)]
    struct Settings {
        private: Option<bool>,
    }
    let req: Settings = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, &e.to_string()),
    };
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let bucket = match writable(&mut st, id, user) {
        Ok(b) => b,
        Err(e) => return e,
    };
    if let Some(p) = req.private {
        bucket.private = p;
    }
    persisted(&st, axum::Json(json!({})).into_response())
}

fn tree(app: &App, uri: &Uri, headers: &HeaderMap, user: Option<&str>, id: &str, prefix: &[&str]) -> Response {
    let Some(prefix) = decode(&prefix.join("/")) else { return error(StatusCode::BAD_REQUEST, None, "bad encoding") };
    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let bucket = match readable(&st, id, user) {
        Ok(b) => b,
        Err(e) => return e,
    };
    // Absent means recursive (hub-protocol §7.3).
    let recursive = query_param(uri, "recursive").is_none_or(|v| v == "true" || v == "1");
    let items = bucket.list(&prefix, recursive);
    paginate(uri, headers, &items, BucketItem::found_at, |item| match item {
        BucketItem::File(path, f) => file_json(path, f),
        BucketItem::Dir(d, _) => json!({ "type": "directory", "path": d, "uploadedAt": rfc3339(bucket.updated_ms) }),
    })
    .unwrap_or_else(|e| e)
}

fn paths_info(app: &App, user: Option<&str>, id: &str, body: &[u8]) -> Response {
    #[derive(Deserialize)]
    struct Body {
        paths: Vec<String>,
    }
    let req: Body = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, &e.to_string()),
    };
    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let bucket = match readable(&st, id, user) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let out: Vec<Value> =
        req.paths.iter().filter_map(|p| bucket.files.get_key_value(p.as_str())).map(|(p, f)| file_json(p, f)).collect();
    axum::Json(out).into_response()
}

/// One NDJSON line of a batch, named as on the wire.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[allow(clippy::enum_variant_names)]
enum BatchOp {
    #[serde(rename_all = "camelCase")]
    AddFile {
        path: String,
        xet_hash: String,
        mtime: Option<i64>,
        content_type: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    CopyFile {
        path: String,
        xet_hash: String,
        mtime: Option<i64>,
        content_type: Option<String>,
    },
    DeleteFile {
        path: String,
    },
}

fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 4096
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

async fn batch(app: &App, user: Option<&str>, id: &str, body: &[u8]) -> Response {
    {
        let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writable(&mut st, id, user) {
            return e;
        }
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return error(StatusCode::BAD_REQUEST, None, "batch body is not UTF-8"),
    };
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<BatchOp>(line) {
            Ok(op) => ops.push(op),
            Err(e) => return error(StatusCode::BAD_REQUEST, None, &format!("line {}: {e}", n + 1)),
        }
    }
    if ops.len() > 1000 {
        return error(StatusCode::BAD_REQUEST, None, "at most 1000 operations per batch");
    }
    // Sizes come from CAS: a hash the CAS cannot reconstruct is refused before anything changes.
    let mut sized = Vec::with_capacity(ops.len());
    for op in ops {
        let (path, size) = match &op {
            BatchOp::AddFile { path, xet_hash, .. } | BatchOp::CopyFile { path, xet_hash, .. } => {
                let size = if xet_hash == EMPTY_FILE_HASH {
                    0
                } else {
                    let Ok(h) = MerkleHash::from_hex(xet_hash) else {
                        return error(StatusCode::BAD_REQUEST, None, &format!("invalid xetHash for {path}"));
                    };
                    match app.cas.get_file_size(&h).await {
                        Ok(s) => s,
                        Err(_) => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                None,
                                &format!("unknown xetHash {xet_hash} for {path}"),
                            )
                        }
                    }
                };
                (path, size)
            }
            BatchOp::DeleteFile { path } => (path, 0),
        };
        if !valid_path(path) {
            return error(StatusCode::BAD_REQUEST, None, &format!("invalid path {path:?}"));
        }
        sized.push((op, size));
    }
    let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let bucket = match writable(&mut st, id, user) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let now = now_ms();
    for (op, size) in sized {
        match op {
            BatchOp::AddFile { path, xet_hash, mtime, content_type }
            | BatchOp::CopyFile { path, xet_hash, mtime, content_type } => {
                let file =
                    BucketFile { xet_hash, size, mtime_ms: mtime.unwrap_or(now), uploaded_ms: now, content_type };
                bucket.files.insert(path, file);
            }
            BatchOp::DeleteFile { path } => {
                bucket.files.remove(&path);
            }
        }
    }
    bucket.touch(now);
    persisted(&st, axum::Json(json!({})).into_response())
}

/// `HEAD|GET /buckets/{ns}/{name}/resolve/{path}`.
pub fn resolve(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    user: Option<&str>,
    id: &str,
    raw_path: &[&str],
) -> Response {
    let Some(path) = decode(&raw_path.join("/")) else { return error(StatusCode::BAD_REQUEST, None, "bad encoding") };
    let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
    let bucket = match readable(&st, id, user) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(f) = bucket.files.get(&path) else {
        return error(StatusCode::NOT_FOUND, Some("EntryNotFound"), &format!("{path} does not exist in bucket {id}"));
    };
    let hn = host_name(headers);
    let mut r = if *method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        let mut r = StatusCode::FOUND.into_response();
        let loc = format!("http://{hn}:{}/xet/{}", app.bytes_port, f.xet_hash);
        r.headers_mut().insert("location", HeaderValue::from_str(&loc).expect("ascii"));
        r
    };
    let h = r.headers_mut();
    h.insert("x-xet-hash", HeaderValue::from_str(&f.xet_hash).expect("hex"));
    h.insert("x-linked-size", HeaderValue::from(f.size));
    if *method == Method::HEAD {
        h.insert("content-length", HeaderValue::from(f.size));
    }
    h.insert("etag", HeaderValue::from_str(&format!("\"{}\"", f.xet_hash)).expect("hex"));
    if let Ok(v) = HeaderValue::from_str(&routes::http_date(&rfc3339(f.mtime_ms))) {
        h.insert("last-modified", v);
    }
    let link = format!("<http://{}/api/buckets/{id}/xet-read-token>; rel=\"xet-auth\"", host(headers));
    h.insert("link", HeaderValue::from_str(&link).expect("ascii"));
    r
}

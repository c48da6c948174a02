//! The byte server: target of the cross-origin 302 that xet-backed resolve URLs answer with.
//! Serves whole files by xet hash (with `Range`), reading through the CAS store directly.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use xet_client::cas_client::DirectAccessClient;
use xet_client::cas_types::FileRange;
use xet_core_structures::merklehash::MerkleHash;

use crate::routes::{parse_range, range_response, unsatisfiable};

type Store = Arc<dyn DirectAccessClient>;

pub async fn serve(listener: tokio::net::TcpListener, store: Store) {
    let router = axum::Router::new().route("/xet/{hash}", axum::routing::get(file)).with_state(store);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!("byte server stopped: {e}");
    }
}

async fn file(State(store): State<Store>, Path(hash): Path<String>, method: Method, headers: HeaderMap) -> Response {
    let Ok(h) = MerkleHash::from_hex(&hash) else { return (StatusCode::BAD_REQUEST, "bad hash").into_response() };
    let Ok(size) = store.get_file_size(&h).await else {
        return (StatusCode::NOT_FOUND, "unknown file").into_response();
    };
    let range = match headers.get("range").and_then(|v| v.to_str().ok()).and_then(|r| parse_range(r, size)) {
        Some(Err(())) => return unsatisfiable(size),
        Some(Ok(r)) => Some(r),
        None => None,
    };
    if method == Method::HEAD || size == 0 {
        let len = range.map_or(size, |(a, b)| b - a + 1);
        let mut r = range_response(&method, range, bytes::Bytes::new(), size);
        r.headers_mut().insert("content-length", len.into());
        return r;
    }
    match store.get_file_data(&h, range.map(|(a, b)| FileRange::new(a, b + 1))).await {
        Ok(data) => range_response(&method, range, data, size),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

//! The weblet's files: the ones built into the binary (`weblet/dist` at build time, with the .br
//! and .gz copies the build makes), or a folder given with `--weblet-dir`. Compressed (gzip or
//! brotli as the browser accepts; the build ships both beside each file, so the usual files cost no
//! compression per request), cache headers (index.html always revalidated, hashed assets kept a
//! year), a strict Content-Security-Policy and the other security headers. Nothing here ever sets
//! a cookie.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::body::Body;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::services::ServeDir;

use crate::web::HttpService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The weblet as built into the binary. `debug-embed` makes debug builds carry the files too, so a
/// copied debug binary serves the same bytes; `build.rs` rebuilds the crate when a file changes.
#[derive(rust_embed::Embed)]
#[folder = "weblet/dist/"]
struct BuiltWeblet;

/// Serves the weblet's files from `dir`, or the ones built into the binary; `index.html` for `/`.
pub fn static_service(dir: Option<&Path>) -> HttpService {
    match dir {
        Some(dir) => with_headers(ServeDir::new(dir).precompressed_br().precompressed_gzip()),
        None => {
            with_headers(tower::service_fn(
                |request: Request<Body>| async move { Ok::<_, Infallible>(built_in(&request)) },
            ))
        }
    }
}

/// Adds on-the-fly compression for files without a precompressed copy, and the cache and security
/// headers, to a service of files.
fn with_headers<S, B>(files: S) -> HttpService
where
    S: tower::Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    // Brotli's default level (11) costs ~0.4 s of CPU for the 170 KB bundle, on the thread that
    // forwards calls: a fast level instead.
    let files =
        ServiceBuilder::new().layer(CompressionLayer::new().quality(CompressionLevel::Precise(4))).service(files);
    let service = tower::service_fn(move |request: Request<Body>| {
        let files = files.clone();
        async move {
            let immutable = is_hashed_asset(request.uri().path());
            let response = tower::ServiceExt::oneshot(files, request).await?;
            let mut response = response.map(Body::new);
            harden(response.headers_mut(), immutable);
            Ok::<Response<Body>, Infallible>(response)
        }
    });
    BoxCloneSyncService::new(service)
}

/// One file of the built-in weblet, as the folder would serve it: its precompressed copy when the
/// browser takes that encoding, a content type from its name, and an ETag (the file's SHA-256,
/// taken at build time) so an unchanged file is answered 304.
fn built_in(request: &Request<Body>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        return response;
    }
    let path = request.uri().path().trim_start_matches('/');
    let path = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_owned() };
    let Some(plain) = BuiltWeblet::get(&path) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let content_type = HeaderValue::from_str(plain.metadata.mimetype()).ok();
    let (file, encoding) = accepted_encodings(request.headers())
        .into_iter()
        .find_map(|(encoding, suffix)| BuiltWeblet::get(&format!("{path}{suffix}")).map(|file| (file, Some(encoding))))
        .unwrap_or((plain, None));
    let etag = etag(&file.metadata.sha256_hash());
    let unchanged = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if unchanged {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        let length = file.data.len();
        let body = match request.method() {
            &Method::HEAD => Body::empty(),
            _ => Body::new(http_body_util::Full::new(Bytes::from(file.data.into_owned()))),
        };
        let mut response = Response::new(body);
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        response
    };
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// The precompressed encodings the browser takes (`q` above zero), best first: brotli before gzip
/// at equal weight. Each comes with the suffix of its copy.
fn accepted_encodings(headers: &HeaderMap) -> Vec<(&'static str, &'static str)> {
    let mut accepted: Vec<(&'static str, &'static str, f32)> = Vec::new();
    for value in headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|value| value.to_str().ok()) {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let weight = parts
                .find_map(|param| param.trim().strip_prefix("q=").or_else(|| param.trim().strip_prefix("Q=")))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            let known = match name.to_ascii_lowercase().as_str() {
                "br" => ("br", ".br"),
                "gzip" => ("gzip", ".gz"),
                _ => continue,
            };
            if weight > 0.0 {
                accepted.push((known.0, known.1, weight));
            }
        }
    }
    // A stable sort keeps brotli first at equal weight.
    accepted.sort_by_key(|&(name, _, _)| name != "br");
    accepted.sort_by(|a, b| b.2.total_cmp(&a.2));
    accepted.into_iter().map(|(name, suffix, _)| (name, suffix)).collect()
}

/// A strong ETag from a file's SHA-256.
fn etag(hash: &[u8; 32]) -> String {
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("\"{hex}\"")
}

fn harden(headers: &mut http::HeaderMap, immutable: bool) {
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.remove(header::SET_COOKIE);
}

/// `app.3f9a2c1b.js`-style names (a hex or base-36 hash of 8+ characters before the extension)
/// never change content, so they may be cached for good.
fn is_hashed_asset(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut parts = name.rsplit('.');
    let (Some(_ext), Some(hash), Some(_stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_alphanumeric()) && hash.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &[(&str, &str)]) -> Response<Body> {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        built_in(&request.body(Body::empty()).unwrap())
    }

    #[test]
    fn the_built_in_weblet_serves_its_files_and_their_compressed_copies() {
        let page = get("/", &[]);
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html");
        assert!(page.headers().get(header::CONTENT_ENCODING).is_none());

        let script = get("/app.js", &[("accept-encoding", "gzip;q=0.5, br;q=0.9")]);
        assert_eq!(script.headers()[header::CONTENT_ENCODING], "br");
        let expected = BuiltWeblet::get("app.js.br").unwrap().data.len().to_string();
        assert_eq!(script.headers()[header::CONTENT_LENGTH], expected.as_str());
        let gzip = get("/app.css", &[("accept-encoding", "br;q=0, gzip")]);
        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");

        let etag = script.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = get("/app.js", &[("accept-encoding", "br"), ("if-none-match", &etag)]);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        assert_eq!(get("/missing.js", &[]).status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/../Cargo.toml", &[]).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn only_hashed_names_are_immutable() {
        assert!(is_hashed_asset("/assets/app.3f9a2c1b.js"));
        assert!(!is_hashed_asset("/app.js"));
        assert!(!is_hashed_asset("/index.html"));
        assert!(!is_hashed_asset("/"));
    }
}

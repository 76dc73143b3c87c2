//! The pull-link server: printers that fetch their documents themselves (a Xerox EIP weblet's
//! print-from-URL, IPP Print-URI) download the print-ready PDF here, once, with the one-time link
//! `SubmitJob` handed out. Only `GET /print-files/<token>.pdf` exists; every other request is 404.
//! The link is spent by the first response that sends the document to its last byte; a download
//! whose connection broke, or that asked for a part (`Range`), leaves it for another try.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{ACCEPT_RANGES, CONTENT_RANGE, RANGE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::config::ConnectionLimits;
use crate::domain::jobs::{PullDownload, PullLinks, PullTicket};
use crate::serve::Protocol;

/// The path prefix of pull links.
pub const PATH_PREFIX: &str = "/print-files/";

/// Serves pull links on `listener` (over TLS when `tls` is given) until `shutdown` completes,
/// with the same connection bounds as the gRPC listener: silent and idle connections are closed,
/// a request's headers must arrive within the request time limit, and shutdown drains for at
/// most the grace period.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    links: Arc<PullLinks>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let service = tower::service_fn(move |request| answer(request, links.clone()));
    crate::serve::serve(listener, tls, Protocol::Http1, limits, service, shutdown).await;
}

async fn answer(request: Request<Incoming>, links: Arc<PullLinks>) -> Result<Response<Download>, Infallible> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Download::text(text));
        *response.status_mut() = status;
        response.headers_mut().insert("content-type", "text/plain; charset=utf-8".parse().expect("static header"));
        response.headers_mut().insert("cache-control", "no-store".parse().expect("static header"));
        Ok(response)
    };
    let token = request.uri().path().strip_prefix(PATH_PREFIX).and_then(|rest| rest.strip_suffix(".pdf"));
    let Some(token) = token else { return plain(StatusCode::NOT_FOUND, "not found\n") };
    if request.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let download = match links.open(token).await {
        Ok(Some(download)) => download,
        // Used, expired, or never issued: the same answer, so links cannot be probed.
        Ok(None) => return plain(StatusCode::GONE, "this print link has been used or has expired\n"),
        Err(err) => {
            tracing::error!(error = %err, "pull link lookup failed");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again shortly\n");
        }
    };
    let PullDownload { pdf, ticket } = download;
    let len = pdf.len() as u64;
    let range = match request.headers().get(RANGE).map(|value| byte_range(value.as_bytes(), len)) {
        None => None,
        Some(Some(range)) => Some(range),
        Some(None) => {
            finish(&links, ticket, false).await;
            let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE, "that range is not in the document\n")?;
            response.headers_mut().insert(CONTENT_RANGE, format!("bytes */{len}").parse().expect("digits"));
            return Ok(response);
        }
    };
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let part = if len == 0 { Bytes::new() } else { pdf.slice(start as usize..=end as usize) };
    // Only a response that sends the document to its last byte can spend the link. A part that
    // stops short gives the link back before it is sent, so the printer's next request finds it.
    let body = if len == 0 || end + 1 == len {
        Download::new(part, move |sent_all| {
            tokio::spawn(async move { finish(&links, ticket, sent_all).await });
        })
    } else {
        finish(&links, ticket, false).await;
        Download::new(part, |_| {})
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert("content-type", "application/pdf".parse().expect("static header"));
    headers.insert("cache-control", "no-store".parse().expect("static header"));
    headers.insert(ACCEPT_RANGES, "bytes".parse().expect("static header"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {start}-{end}/{len}");
        response.headers_mut().insert(CONTENT_RANGE, value.parse().expect("digits"));
    }
    Ok(response)
}

async fn finish(links: &PullLinks, ticket: PullTicket, sent_all: bool) {
    if sent_all {
        tracing::info!("a printer fetched its document through a pull link");
    }
    if let Err(err) = links.finish(ticket, sent_all).await {
        tracing::error!(error = %err, "could not record the end of a pull-link download");
    }
}

/// One range `bytes=a-b`, `bytes=a-` or `bytes=-n` within a document of `len` bytes: `Some`
/// range (inclusive), or `None` when it cannot be satisfied. Anything else (several ranges, other
/// units) is not a range we serve, and the whole document is sent instead.
fn byte_range(value: &[u8], len: u64) -> Option<(u64, u64)> {
    let whole = Some((0, len.saturating_sub(1)));
    let Some(spec) = std::str::from_utf8(value).ok().and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return whole;
    };
    if spec.contains(',') {
        return whole;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => (a, b.min(len.checked_sub(1)?)),
        (Ok(a), Err(_)) if last.is_empty() => (a, len.checked_sub(1)?),
        (Err(_), Ok(n)) if first.is_empty() && n > 0 => (len.saturating_sub(n), len.checked_sub(1)?),
        _ => return None,
    };
    (range.0 <= range.1 && range.0 < len).then_some(range)
}

/// A response body sent in chunks that, when hyper is done with it, says whether every chunk
/// was handed to the connection (a connection that broke mid-way drops it earlier).
pub struct Download {
    chunks: VecDeque<Bytes>,
    ended: Option<Box<dyn FnOnce(bool) + Send>>,
    len: u64,
}

/// How much of the document one frame carries.
const CHUNK_BYTES: usize = 16 * 1024;

impl Download {
    fn new(data: Bytes, ended: impl FnOnce(bool) + Send + 'static) -> Self {
        let len = data.len() as u64;
        let chunks = (0..data.len()).step_by(CHUNK_BYTES).map(|i| data.slice(i..(i + CHUNK_BYTES).min(data.len())));
        Download { chunks: chunks.collect(), ended: Some(Box::new(ended)), len }
    }

    fn text(text: &'static str) -> Self {
        Download::new(Bytes::from_static(text.as_bytes()), |_| {})
    }
}

impl Body for Download {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(ended) = self.ended.take() {
            ended(self.chunks.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_http_says() {
        assert_eq!(byte_range(b"bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range(b"bytes=900-", 1000), Some((900, 999)));
        assert_eq!(byte_range(b"bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range(b"bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(byte_range(b"bytes=1000-", 1000), None, "past the end");
        assert_eq!(byte_range(b"bytes=5-1", 1000), None);
        assert_eq!(byte_range(b"bytes=0-1,5-9", 1000), Some((0, 999)), "several ranges: the whole document");
        assert_eq!(byte_range(b"items=0-1", 1000), Some((0, 999)), "other units: the whole document");
    }

    #[test]
    fn a_download_says_whether_it_sent_everything() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(None));
        let data = Bytes::from(vec![7u8; 40 * 1024]);
        let mut body = Download::new(data.clone(), {
            let seen = seen.clone();
            move |all| *seen.lock().unwrap() = Some(all)
        });
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        drop(body);
        assert_eq!(*seen.lock().unwrap(), Some(false), "dropped after one of three chunks");

        let mut body = Download::new(data, {
            let seen = seen.clone();
            move |all| *seen.lock().unwrap() = Some(all)
        });
        let mut sent = 0;
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            sent += frame.into_data().unwrap().len();
        }
        assert_eq!(sent, 40 * 1024);
        drop(body);
        assert_eq!(*seen.lock().unwrap(), Some(true));
    }
}

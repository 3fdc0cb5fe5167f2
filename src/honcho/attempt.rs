//! One attempt of a request: the HTTP exchange (method, bearer token), the status counted, the
//! body read within the response size cap (without a copy when it arrives in one chunk), and
//! transport failures classified into [`UpstreamError`]. Whether to try again is
//! [`super::retry`]'s; the time the attempt takes counts as the job's busy time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use url::Url;

use super::busy::BusyGuard;
use super::decode::error_detail;
use super::retry_after::parse_retry_after;
use super::{Client, Endpoint, Method, UpstreamError};

impl Client {
    /// One attempt: sends the request, counts its status and reads its body; a non-success
    /// status is an error carrying Honcho's detail and its `Retry-After`.
    pub(super) async fn attempt(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
    ) -> Result<Bytes, UpstreamError> {
        // Honcho works from here until the answer is read (or the attempt is abandoned);
        // waits for the rate bound, Retry-After or a backoff are not its work.
        let _busy = BusyGuard(Instant::now());
        let mut response = match self.request(method, url).send().await {
            Ok(response) => response,
            Err(error) => {
                self.count(endpoint, None);
                return Err(classify_transport_error(&error));
            }
        };
        let status = response.status();
        self.count(endpoint, Some(status.as_u16()));
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_body(&mut response, self.inner.max_response_bytes).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(UpstreamError::Status {
                status: status.as_u16(),
                detail: error_detail(&body),
                retry_after,
            })
        }
    }

    /// The request, with the bearer token when there is one.
    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let inner = &self.inner;
        let request = match method {
            Method::Get => inner.http.get(url),
            Method::PostEmptyJson => inner
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body("{}"),
        };
        match &inner.token {
            Some(token) => request.header(AUTHORIZATION, token.header_value()),
            None => request,
        }
    }
}

/// The whole body, or [`UpstreamError::TooLarge`] as soon as it is announced or grows past
/// `max_bytes`.
async fn read_body(
    response: &mut reqwest::Response,
    max_bytes: usize,
) -> Result<Bytes, UpstreamError> {
    if let Some(length) = response.content_length()
        && length > max_bytes as u64
    {
        return Err(UpstreamError::TooLarge(max_bytes));
    }
    let expected = response.content_length().map_or(0, |length| {
        usize::try_from(length).unwrap_or(0).min(max_bytes)
    });
    let mut body = BodyBuffer::default();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max_bytes {
                    return Err(UpstreamError::TooLarge(max_bytes));
                }
                body.push(chunk, expected);
            }
            Ok(None) => return Ok(body.into_bytes()),
            Err(error) => return Err(UpstreamError::Body(error_chain(&error))),
        }
    }
}

/// A response body as it arrives. A body that arrives in one chunk (a page read whole from the
/// socket, the usual case on a local network) is kept as that chunk, without a copy; more chunks
/// are joined once into a buffer sized from Content-Length (already checked against the cap), so
/// a page is not copied again while the buffer grows.
#[derive(Default)]
enum BodyBuffer {
    #[default]
    Empty,
    One(Bytes),
    Joined(Vec<u8>),
}

impl BodyBuffer {
    fn len(&self) -> usize {
        match self {
            BodyBuffer::Empty => 0,
            BodyBuffer::One(chunk) => chunk.len(),
            BodyBuffer::Joined(buffer) => buffer.len(),
        }
    }

    /// Appends `chunk`; `expected` is the body's announced length (0 when unknown).
    fn push(&mut self, chunk: Bytes, expected: usize) {
        match self {
            BodyBuffer::Empty => *self = BodyBuffer::One(chunk),
            BodyBuffer::One(first) => {
                let mut buffer = Vec::with_capacity(expected.max(first.len() + chunk.len()));
                buffer.extend_from_slice(first);
                buffer.extend_from_slice(&chunk);
                *self = BodyBuffer::Joined(buffer);
            }
            BodyBuffer::Joined(buffer) => buffer.extend_from_slice(&chunk),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            BodyBuffer::Empty => Bytes::new(),
            BodyBuffer::One(chunk) => chunk,
            BodyBuffer::Joined(buffer) => Bytes::from(buffer),
        }
    }
}

/// `connect` only when no connection was made (refused, DNS, TLS handshake); a connection that
/// was made and then closed before a complete response (dropped before the headers, or a
/// chunked body cut short) is `body`: Honcho or a proxy in front of it broke mid-answer.
fn classify_transport_error(error: &reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        UpstreamError::Timeout(Duration::ZERO)
    } else if error.is_connect() {
        UpstreamError::Connect(error_chain(error))
    } else if error.is_body() || error.is_decode() || error.is_request() {
        UpstreamError::Body(error_chain(error))
    } else {
        UpstreamError::Connect(error_chain(error))
    }
}

/// The error and its sources, joined (reqwest hides the useful part in the sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::honcho::test_support::{client_for, status_error};

    #[tokio::test]
    async fn a_refused_connection_is_connect_but_one_closed_mid_answer_is_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        let closer = tokio::spawn(async move {
            // Accept, read the request, close without answering.
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buffer = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
        });
        let closed = status_error(&client_for(&format!("http://{address}"))).await;
        assert_eq!(closed.reason(), "body", "{closed}");
        closer.await.expect("closer task");
        // The listener is gone now: nothing listens on the port.
        let refused = status_error(&client_for(&format!("http://{address}"))).await;
        assert_eq!(refused.reason(), "connect", "{refused}");
    }

    #[test]
    fn a_body_in_one_chunk_is_kept_without_a_copy_and_more_chunks_are_joined() {
        let chunk = Bytes::from_static(br#"{"items":[]}"#);
        let mut body = BodyBuffer::default();
        body.push(chunk.clone(), chunk.len());
        assert_eq!(
            body.into_bytes().as_ptr(),
            chunk.as_ptr(),
            "the one chunk is handed on, not copied"
        );
        let mut body = BodyBuffer::default();
        for part in [&br#"{"it"#[..], br#"ems":"#, b"[]}"] {
            body.push(Bytes::copy_from_slice(part), 12);
        }
        assert_eq!(body.len(), 12);
        assert_eq!(&body.into_bytes()[..], br#"{"items":[]}"#);
        assert!(BodyBuffer::default().into_bytes().is_empty());
    }
}

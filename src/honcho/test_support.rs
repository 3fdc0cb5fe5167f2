//! Test helpers shared by the client's rooms: a fake Honcho on loopback and a client for it.

use std::time::{Duration, Instant};

use super::{ApiVersion, Client, Endpoint, StatusFilter, UpstreamError};

/// A client of `url` without retries and a 5 s request budget.
pub(super) fn client_for(url: &str) -> Client {
    let mut settings = crate::config::Settings::with_url(url.parse().expect("test URL"));
    settings.honcho.retries = 0;
    settings.poll.timeout = Duration::from_secs(5);
    Client::from_settings(&settings).expect("client builds")
}

/// The error of one status call (the fake servers never answer it well).
pub(super) async fn status_error(client: &Client) -> UpstreamError {
    client
        .fetch_status(
            ApiVersion::V3,
            "w",
            &StatusFilter::default(),
            Endpoint::Status,
        )
        .await
        .expect_err("the fake server never answers")
}

/// A fake Honcho on loopback answering every request with `status`, `headers` and an
/// empty queue/status body; hands back the `Authorization` header of each request and when
/// it arrived.
pub(super) async fn fake_honcho(
    status: &'static str,
    headers: &'static str,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Instant, Option<String>)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("bound address");
    let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            let authorization = text
                .lines()
                .find_map(|line| line.strip_prefix("authorization: "))
                .map(str::to_string);
            let _ = seen.send((Instant::now(), authorization));
            let body = r#"{"total_work_units":0,"completed_work_units":0,"in_progress_work_units":0,"pending_work_units":0}"#;
            let response = format!(
                "HTTP/1.1 {status}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (format!("http://{address}"), requests)
}

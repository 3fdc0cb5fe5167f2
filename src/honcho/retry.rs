//! Sending one logical request: its in-flight slot (`poll.concurrency`, FIFO, held through the
//! retries), then retries inside its budget (`poll.timeout`): the pending `Retry-After`
//! waited out or, if it outlasts the budget, reported without sending; the rate bound's slot;
//! capped exponential backoff with full jitter between attempts, or the server's own
//! `Retry-After` when it is within the backoff cap. One attempt's exchange is
//! [`super::attempt`]'s; this room only decides whether and when to try again.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngExt;
use url::Url;

use super::{Client, Endpoint, Method, UpstreamError};

impl Client {
    /// Sends one logical request holding one in-flight slot; each attempt's time counts as the
    /// calling job's busy time (see [`measure_busy`]).
    pub(super) async fn send(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
    ) -> Result<Bytes, UpstreamError> {
        let _slot = self
            .inner
            .in_flight
            .acquire()
            .await
            .expect("the in-flight semaphore is never closed");
        self.send_with_retries(endpoint, method, url).await
    }

    /// Sends one logical request with retries inside the request budget; returns the body.
    pub(super) async fn send_with_retries(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
    ) -> Result<Bytes, UpstreamError> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.request_budget;
        let mut attempt = 0;
        loop {
            self.wait_for_retry_after(deadline).await?;
            if !inner.rate.acquire_before(deadline).await {
                return Err(UpstreamError::RateLimited(inner.request_budget));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(UpstreamError::Timeout(inner.request_budget));
            }
            let error = match self.attempt_within(remaining, endpoint, method, &url).await {
                Ok(body) => return Ok(body),
                Err(error) => error,
            };
            inner.retry_after.hold_if_asked(&error);
            let Some(delay) = self.retry_delay(&error, attempt, deadline) else {
                return Err(error);
            };
            tracing::debug!(endpoint = endpoint.as_str(), attempt, ?delay, %error, "retrying Honcho request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Waits out a pending `Retry-After`; fails without sending anything when it lasts past
    /// `deadline` (Honcho asked not to come back yet).
    async fn wait_for_retry_after(&self, deadline: Instant) -> Result<(), UpstreamError> {
        if let Some((wait, status)) = self.inner.retry_after.pending() {
            if Instant::now() + wait >= deadline {
                return Err(UpstreamError::Status {
                    status,
                    detail: format!("not sent: honouring Retry-After for {wait:?} more"),
                    retry_after: Some(wait),
                });
            }
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// One attempt, abandoned (and counted without a status) after `remaining`.
    async fn attempt_within(
        &self,
        remaining: Duration,
        endpoint: Endpoint,
        method: Method,
        url: &Url,
    ) -> Result<Bytes, UpstreamError> {
        match tokio::time::timeout(remaining, self.attempt(endpoint, method, url.clone())).await {
            Ok(result) => result,
            Err(_) => {
                self.count(endpoint, None);
                Err(UpstreamError::Timeout(self.inner.request_budget))
            }
        }
    }

    /// How long to wait before trying again after `error` on attempt `attempt`, or `None` when
    /// it is not retried: not retryable, retries used up, a `Retry-After` beyond the backoff
    /// cap (the server is honoured, not asked sooner), or no time left before `deadline`.
    fn retry_delay(
        &self,
        error: &UpstreamError,
        attempt: u32,
        deadline: Instant,
    ) -> Option<Duration> {
        let inner = &self.inner;
        if !error.is_retryable() || attempt >= inner.retries {
            return None;
        }
        let delay = match error {
            UpstreamError::Status {
                retry_after: Some(retry_after),
                ..
            } => (*retry_after <= inner.max_backoff).then_some(*retry_after)?,
            _ => backoff_delay(attempt, inner.initial_backoff, inner.max_backoff),
        };
        (Instant::now() + delay < deadline).then_some(delay)
    }
}

/// Exponential backoff with full jitter: a random delay in `[d/2, d]`, `d = initial × 2^attempt`
/// capped at `max`.
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exponential = initial.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = exponential / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 0..10 {
            let delay = backoff_delay(attempt, initial, max);
            let ceiling = (initial * 2u32.pow(attempt)).min(max);
            assert!(
                delay <= ceiling,
                "attempt {attempt}: {delay:?} > {ceiling:?}"
            );
            assert!(
                delay >= ceiling / 2,
                "attempt {attempt}: {delay:?} < half of {ceiling:?}"
            );
        }
    }
}

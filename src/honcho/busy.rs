//! Honcho busy time per job: how long the current job's requests' attempts took (waits for a
//! slot, the rate bound, `Retry-After` or a backoff not counted). A task-local counter and the
//! guard that adds to it; it sends nothing and knows no endpoint.

use std::time::{Duration, Instant};

tokio::task_local! {
    /// Time the current job held in-flight slots (Honcho busy time on its behalf).
    static JOB_BUSY: std::cell::Cell<Duration>;
}

/// Adds the time since its start to the current job's busy time when dropped (an attempt cut
/// off by the request budget counts too).
pub(super) struct BusyGuard(pub(super) Instant);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let elapsed = self.0.elapsed();
        let _ = JOB_BUSY.try_with(|busy| busy.set(busy.get() + elapsed));
    }
}

/// Runs `job` and returns its output with the time its requests' attempts took: how long Honcho
/// worked for it (waiting for a slot, the rate bound, `Retry-After` or a backoff not counted).
pub async fn measure_busy<F: std::future::Future>(job: F) -> (F::Output, Duration) {
    JOB_BUSY
        .scope(std::cell::Cell::new(Duration::ZERO), async move {
            let output = job.await;
            (output, JOB_BUSY.with(std::cell::Cell::get))
        })
        .await
}

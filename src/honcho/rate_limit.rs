//! The bound on the exporter's request rate to Honcho (`honcho.max_requests_per_second`):
//! request starts spaced at least `1 / rate` apart across all tasks. It only hands out start
//! slots; it sends nothing and does not know what is sent.

use std::time::{Duration, Instant};

/// Spaces request starts at least `1 / max_per_second` apart, across all tasks.
pub(super) struct RateLimiter {
    interval: Duration,
    next_slot: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    pub(super) fn new(max_per_second: f64) -> Self {
        let interval = if max_per_second > 0.0 && max_per_second.is_finite() {
            Duration::from_secs_f64(1.0 / max_per_second)
        } else {
            Duration::ZERO
        };
        RateLimiter {
            interval,
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next free slot if it comes before `deadline` and returns true; returns
    /// false at once, without taking a slot, if it does not. A request that could never be
    /// sent in time must not hold a slot: with many workspaces, slots taken by requests that
    /// then time out would leave almost none for the requests that can still be sent.
    pub(super) async fn acquire_before(&self, deadline: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        let wait_until = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            if slot >= deadline {
                return false;
            }
            *next = slot + self.interval;
            slot
        };
        // A free slot is taken without sleeping: `sleep_until` on an instant already passed
        // still waits for the next timer tick (~1 ms), before every request.
        if wait_until > Instant::now() {
            tokio::time::sleep_until(wait_until.into()).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rate_limiter_refuses_a_slot_past_the_deadline_without_taking_it() {
        let limiter = RateLimiter::new(10.0);
        let far = Instant::now() + Duration::from_secs(10);
        assert!(limiter.acquire_before(far).await, "the first slot is now");
        // The next slot is 100 ms away: not before a deadline 10 ms away.
        let near = Instant::now() + Duration::from_millis(10);
        assert!(!limiter.acquire_before(near).await);
        assert!(!limiter.acquire_before(near).await);
        // The refusals took nothing: the next slot is still ~100 ms after the first.
        let next = *limiter.next_slot.lock().await;
        assert!(next <= Instant::now() + Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_free_rate_slot_is_taken_without_sleeping() {
        use futures_util::FutureExt;
        let limiter = RateLimiter::new(1.0);
        let far = Instant::now() + Duration::from_secs(10);
        // Ready on the first poll: no timer was waited for.
        assert_eq!(limiter.acquire_before(far).now_or_never(), Some(true));
        // The next slot is a second away: that one does wait.
        assert_eq!(limiter.acquire_before(far).now_or_never(), None);
    }
}

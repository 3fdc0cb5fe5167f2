//! `Retry-After`: parsing the header (delta-seconds or any of RFC 9110's three HTTP date
//! formats, capped) and the hold it sets: after a 429 or 5xx that asked for one, no request
//! leaves before the instant it names, in this poll cycle or the next ones. It decides when a
//! request may leave; it sends nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::UpstreamError;

/// The longest `Retry-After` honoured: a hostile or broken value (an HTTP date years ahead)
/// must not silence the exporter for longer than this.
pub(super) const MAX_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The instant before which no request leaves, with the status that asked for it (reported by
/// the requests not sent), shared by every request of one client.
#[derive(Debug, Default)]
pub(super) struct RetryAfterHold {
    not_before: Mutex<Option<(Instant, u16)>>,
}

impl RetryAfterHold {
    /// How long to wait before the next request may leave, if a `Retry-After` is pending, and
    /// the status that asked for it.
    pub(super) fn pending(&self) -> Option<(Duration, u16)> {
        let not_before = *self
            .not_before
            .lock()
            .expect("Retry-After lock is never poisoned: no panics while held");
        not_before
            .map(|(instant, status)| (instant.saturating_duration_since(Instant::now()), status))
            .filter(|(wait, _)| !wait.is_zero())
    }

    /// Holds off when `error` is a 429 or 5xx carrying a `Retry-After`.
    pub(super) fn hold_if_asked(&self, error: &UpstreamError) {
        if let UpstreamError::Status {
            status,
            retry_after: Some(retry_after),
            ..
        } = error
            && (*status == 429 || *status >= 500)
        {
            self.hold_off(*retry_after, *status);
        }
    }

    /// Remembers the `Retry-After` of a 429 or 5xx (503) (bounded) so that no request leaves
    /// before it, in this poll cycle or the next ones; a later instant already held stays.
    fn hold_off(&self, retry_after: Duration, status: u16) {
        let until = Instant::now() + retry_after.min(MAX_HONOURED_RETRY_AFTER);
        let mut not_before = self
            .not_before
            .lock()
            .expect("Retry-After lock is never poisoned: no panics while held");
        *not_before = Some(match *not_before {
            Some((current, current_status)) if current >= until => (current, current_status),
            _ => (until, status),
        });
    }
}

/// `Retry-After` as delta-seconds or an HTTP date in any of the three formats of RFC 9110
/// (IMF-fixdate, RFC 850, asctime), capped at [`MAX_HONOURED_RETRY_AFTER`]: a number too large
/// for u64 or a date years ahead still means "not now", so it is capped, never ignored.
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        value
            .parse::<u64>()
            .map_or(MAX_HONOURED_RETRY_AFTER, Duration::from_secs)
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_HONOURED_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::honcho::Client;
    use crate::honcho::test_support::{fake_honcho, status_error};

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
        assert_eq!(parse_retry_after(""), None);
    }

    #[test]
    fn retry_after_accepts_the_three_http_date_formats_of_rfc_9110() {
        let in_a_minute = chrono::Utc::now() + chrono::TimeDelta::seconds(60);
        for (format, pattern) in [
            ("IMF-fixdate", "%a, %d %b %Y %H:%M:%S GMT"),
            ("RFC 850", "%A, %d-%b-%y %H:%M:%S GMT"),
            ("asctime", "%a %b %e %H:%M:%S %Y"),
        ] {
            let text = in_a_minute.format(pattern).to_string();
            let wait = parse_retry_after(&text)
                .unwrap_or_else(|| panic!("{format} date {text:?} not accepted"));
            assert!(
                wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
                "{format} date {text:?}: {wait:?}"
            );
        }
        // The examples of RFC 9110 section 5.6.7, long past: no wait.
        for past in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(past), Some(Duration::ZERO), "{past}");
        }
    }

    #[test]
    fn retry_after_beyond_the_cap_is_capped_not_ignored() {
        for huge in [
            "99999999999999999999999",
            "18446744073709551615",
            "99999999999",
            "301",
        ] {
            assert_eq!(
                parse_retry_after(huge),
                Some(MAX_HONOURED_RETRY_AFTER),
                "{huge}"
            );
        }
        let next_year = (chrono::Utc::now() + chrono::TimeDelta::days(365))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        assert_eq!(
            parse_retry_after(&next_year),
            Some(MAX_HONOURED_RETRY_AFTER)
        );
    }

    #[tokio::test]
    async fn retry_after_on_503_is_held_across_calls_like_on_429() {
        for status in ["503 Service Unavailable", "429 Too Many Requests"] {
            let (url, mut requests) = fake_honcho(status, "retry-after: 20\r\n").await;
            let mut settings = crate::config::Settings::with_url(url.parse().expect("test URL"));
            // Default retries; a 2 s request budget, as a 2 s poll interval would have.
            settings.poll.timeout = Duration::from_secs(2);
            let client = Client::from_settings(&settings).expect("client");
            let mut sent = 0;
            for cycle in 0..4 {
                let error = status_error(&client).await;
                assert!(
                    error.to_string().contains(&status[..3]),
                    "{status} cycle {cycle}: {error}"
                );
                while requests.try_recv().is_ok() {
                    sent += 1;
                }
            }
            assert_eq!(
                sent, 1,
                "{status}: requests sent in 4 cycles within Retry-After: 20"
            );
        }
    }
}

//! Publication: what the server serves, handed over from the poller. The poller renders a
//! [`Snapshot`] into cached bytes ([`Published::render`]) and swaps it into [`SharedPublished`];
//! the server only reads it ([`current`]) and appends the scrape-time tail
//! ([`Published::body`]).
//!
//! Owns the cached bytes and the scrape-time assembly of a body. It does no I/O and knows
//! nothing of how the snapshot was polled: the server depends on this module, never on the
//! poller.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::Settings;
use crate::exposition::{self, Format};
use crate::families;
use crate::snapshot::{ExporterStats, Snapshot};

/// What the server serves: the bytes rendered after the last poll cycle.
#[derive(Debug, Clone)]
pub struct Published {
    /// The snapshot the bytes were rendered from (for scrape-time ages and the landing page).
    pub snapshot: Arc<Snapshot>,
    /// Poll-time families, OpenMetrics, without `# EOF`.
    pub openmetrics: Bytes,
    /// `openmetrics` gzipped (one gzip member).
    pub openmetrics_gzip: Bytes,
    /// Poll-time families, text 0.0.4.
    pub text: Bytes,
    /// `text` gzipped (one gzip member).
    pub text_gzip: Bytes,
    /// Whether a poll cycle has completed (readiness).
    pub ready: bool,
}

impl Published {
    /// Before the first cycle: only the exporter's own metrics.
    pub fn initial(settings: &Settings) -> Self {
        let snapshot = Snapshot {
            exporter: ExporterStats {
                poll_interval: settings.poll.interval,
                ..ExporterStats::default()
            },
            ..Snapshot::default()
        };
        Self::render(snapshot, false)
    }

    /// Renders the poll-time part of `snapshot` in both formats.
    pub fn render(snapshot: Snapshot, ready: bool) -> Self {
        let poll_families = families::poll_families(&snapshot);
        let mut openmetrics = Vec::with_capacity(64 * 1024);
        exposition::render(&poll_families, Format::OpenMetrics, &mut openmetrics);
        let mut text = Vec::with_capacity(64 * 1024);
        exposition::render(&poll_families, Format::Text, &mut text);
        Published {
            openmetrics_gzip: Bytes::from(exposition::gzip(&openmetrics)),
            text_gzip: Bytes::from(exposition::gzip(&text)),
            openmetrics: Bytes::from(openmetrics),
            text: Bytes::from(text),
            snapshot: Arc::new(snapshot),
            ready,
        }
    }

    /// The whole body for a scrape at `now` (Unix seconds): the cached poll-time bytes, then the
    /// scrape-time families (ages, process metrics), then `# EOF` for OpenMetrics. With `gzip`,
    /// the cached gzip member followed by a fresh one for the small tail (RFC 1952 members
    /// concatenate).
    pub fn body(&self, format: Format, gzip: bool, now: f64) -> Vec<Bytes> {
        let mut tail_families = families::scrape_families(&self.snapshot, now);
        tail_families.extend(crate::process::process_families());
        let mut tail = Vec::with_capacity(4096);
        exposition::render(&tail_families, format, &mut tail);
        exposition::finish(format, &mut tail);
        let head = match (format, gzip) {
            (Format::OpenMetrics, false) => self.openmetrics.clone(),
            (Format::OpenMetrics, true) => self.openmetrics_gzip.clone(),
            (Format::Text, false) => self.text.clone(),
            (Format::Text, true) => self.text_gzip.clone(),
        };
        let tail = if gzip { exposition::gzip(&tail) } else { tail };
        vec![head, Bytes::from(tail)]
    }
}

/// The handle the server reads from; the poller writes it once per cycle.
pub type SharedPublished = Arc<RwLock<Arc<Published>>>;

/// Reads the current publication.
pub fn current(shared: &SharedPublished) -> Arc<Published> {
    shared
        .read()
        .expect("the publication lock is never poisoned: nothing panics while holding it")
        .clone()
}

/// Unix seconds now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

//! Publication: what the server serves, handed over from the poller. The poller publishes a
//! [`SnapshotSource`] (everything it knows, with the time each value stops being servable) as
//! soon as results arrive; this module renders it into cached bytes and checks freshness at
//! scrape time: a scrape after a value's bound re-renders without it, mid-cycle included, so
//! nothing older than its bound is ever served.
//!
//! Owns the cached bytes and the scrape-time assembly of a body. It does no I/O and knows
//! nothing of how the snapshot was polled: the server depends on this module, never on the
//! poller.

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::Settings;
use crate::exposition::{self, Format};
use crate::families;
use crate::snapshot::{ExporterStats, Snapshot};

/// What can produce the servable [`Snapshot`] at any time: values past their bound left out.
pub trait SnapshotSource: Send + Sync {
    /// The snapshot to serve at `now` (Unix seconds).
    fn snapshot_at(&self, now: f64) -> Snapshot;
    /// The first time after `now` at which a value served at `now` stops being servable.
    fn next_expiry(&self, now: f64) -> Option<f64>;
}

/// The poll-time bytes of one snapshot and until when they may be served.
#[derive(Debug)]
struct Rendered {
    snapshot: Arc<Snapshot>,
    openmetrics: Bytes,
    /// Gzipped on the first scrape that asks for it (results arrive often; many are never
    /// scraped gzipped).
    openmetrics_gzip: OnceLock<Bytes>,
    text: Bytes,
    text_gzip: OnceLock<Bytes>,
    /// Unix seconds from which one of the values rendered is past its bound.
    valid_until: f64,
}

impl Rendered {
    fn new(snapshot: Snapshot, valid_until: f64) -> Self {
        let poll_families = families::poll_families(&snapshot);
        let mut openmetrics = Vec::with_capacity(64 * 1024);
        exposition::render(&poll_families, Format::OpenMetrics, &mut openmetrics);
        let mut text = Vec::with_capacity(64 * 1024);
        exposition::render(&poll_families, Format::Text, &mut text);
        Rendered {
            openmetrics_gzip: OnceLock::new(),
            text_gzip: OnceLock::new(),
            openmetrics: Bytes::from(openmetrics),
            text: Bytes::from(text),
            snapshot: Arc::new(snapshot),
            valid_until,
        }
    }
}

/// What the server serves.
pub struct Published {
    source: Option<Arc<dyn SnapshotSource>>,
    rendered: Mutex<Arc<Rendered>>,
    /// Whether the exporter has data to serve (readiness).
    pub ready: bool,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Published {
    /// Before the first results: only the exporter's own metrics.
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

    /// A fixed snapshot, served as it is (benchmarks, tests).
    pub fn render(snapshot: Snapshot, ready: bool) -> Self {
        Published {
            source: None,
            rendered: Mutex::new(Arc::new(Rendered::new(snapshot, f64::INFINITY))),
            ready,
        }
    }

    /// What `source` serves, rendered at `now` and re-rendered at scrape time once a value in
    /// it passes its bound.
    pub fn from_source(source: Arc<dyn SnapshotSource>, now: f64, ready: bool) -> Self {
        let rendered = Rendered::new(
            source.snapshot_at(now),
            source.next_expiry(now).unwrap_or(f64::INFINITY),
        );
        Published {
            source: Some(source),
            rendered: Mutex::new(Arc::new(rendered)),
            ready,
        }
    }

    /// The snapshot served at `now` (for the landing page).
    pub fn snapshot(&self, now: f64) -> Arc<Snapshot> {
        Arc::clone(&self.rendered_at(now).snapshot)
    }

    /// The rendering valid at `now`, re-rendered once if a value passed its bound.
    fn rendered_at(&self, now: f64) -> Arc<Rendered> {
        let mut rendered = self
            .rendered
            .lock()
            .expect("the rendering lock is never poisoned: rendering does not panic");
        if now >= rendered.valid_until
            && let Some(source) = &self.source
        {
            *rendered = Arc::new(Rendered::new(
                source.snapshot_at(now),
                source.next_expiry(now).unwrap_or(f64::INFINITY),
            ));
        }
        Arc::clone(&rendered)
    }

    /// The whole body for a scrape at `now` (Unix seconds): the cached poll-time bytes, then the
    /// scrape-time families (ages, process metrics), then `# EOF` for OpenMetrics. With `gzip`,
    /// the cached gzip member followed by a fresh one for the small tail (RFC 1952 members
    /// concatenate).
    pub fn body(&self, format: Format, gzip: bool, now: f64) -> Vec<Bytes> {
        let rendered = self.rendered_at(now);
        let mut tail_families = families::scrape_families(&rendered.snapshot, now);
        tail_families.extend(crate::process::process_families());
        let mut tail = Vec::with_capacity(4096);
        exposition::render(&tail_families, format, &mut tail);
        exposition::finish(format, &mut tail);
        let head = match (format, gzip) {
            (Format::OpenMetrics, false) => rendered.openmetrics.clone(),
            (Format::OpenMetrics, true) => rendered
                .openmetrics_gzip
                .get_or_init(|| Bytes::from(exposition::gzip(&rendered.openmetrics)))
                .clone(),
            (Format::Text, false) => rendered.text.clone(),
            (Format::Text, true) => rendered
                .text_gzip
                .get_or_init(|| Bytes::from(exposition::gzip(&rendered.text)))
                .clone(),
        };
        let tail = if gzip { exposition::gzip(&tail) } else { tail };
        vec![head, Bytes::from(tail)]
    }
}

/// The handle the server reads from; the poller swaps in a new publication as results arrive.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one workspace whose status expires at 10.
    struct Expiring;

    impl SnapshotSource for Expiring {
        fn snapshot_at(&self, now: f64) -> Snapshot {
            let mut snapshot = Snapshot::default();
            let workspace = snapshot.workspaces.entry("w".to_string()).or_default();
            if now < 10.0 {
                workspace.status = Some(crate::snapshot::summarize_status(
                    crate::honcho::types::QueueStatus {
                        counts: crate::honcho::types::ItemCounts {
                            total: 1,
                            pending: 1,
                            ..Default::default()
                        },
                        sessions: None,
                    },
                    10,
                ));
            }
            snapshot
        }
        fn next_expiry(&self, now: f64) -> Option<f64> {
            (now < 10.0).then_some(10.0)
        }
    }

    fn text(published: &Published, now: f64) -> String {
        published
            .body(Format::Text, false, now)
            .iter()
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect()
    }

    #[test]
    fn a_value_past_its_bound_is_not_served_even_before_the_next_publication() {
        let published = Published::from_source(Arc::new(Expiring), 0.0, true);
        assert!(text(&published, 9.9).contains("honcho_queue_items{workspace=\"w\""));
        assert!(!text(&published, 10.0).contains("honcho_queue_items{workspace=\"w\""));
    }
}

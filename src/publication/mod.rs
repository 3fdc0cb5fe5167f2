//! Publication: what the server serves, handed over from the poller. The poller publishes a
//! [`SnapshotSource`] (everything it knows, with the time each value stops being servable) as
//! soon as results arrive; this module renders it into cached bytes and checks freshness at
//! scrape time: a scrape after a value's bound re-renders without it, mid-cycle included, so
//! nothing older than its bound is ever served.
//!
//! Owns the cached bytes (the rendering) and when it is re-rendered; the assembly of a body
//! from them is `body`'s, the verdict history carried from publication to publication is
//! `verdicts`'s. It does no I/O and knows nothing of how the snapshot was polled: the server
//! depends on this module, never on the poller.
//!
//! # What is kept, and why
//!
//! A body is, family by family, the metadata lines (the only bytes that differ between
//! OpenMetrics and text 0.0.4) and the sample lines (the same in both). So each family's samples
//! are rendered once and gzipped as their own gzip member, and each format's metadata lines as
//! small members of their own; gzip members concatenate (RFC 1952), so both formats are served
//! gzipped from one copy, which is what Prometheus asks for. The plain samples are kept as well
//! while the exposition is at most [`PLAIN_CACHE_LIMIT`]; beyond that (hundreds of thousands of
//! series) only the gzipped copy is kept and a plain scrape inflates it as it is sent, so memory
//! stays near 15 bytes per series. Rendering goes a few workspaces at a time
//! ([`families::Part`]), so no full list of families is ever built.
//!
//! Ages are the scrape-time part: each age sample is kept as its line up to the value plus the
//! Unix time its age counts from, and a scrape writes the ages at its own `now`.
//!
//! # Verdicts
//!
//! Each publication carries the verdicts ([`crate::verdict`]) of what it serves: [`publish`]
//! hands the previous publication's verdict history on to the next one, observes the new
//! snapshot in it, and evaluates the [`Report`] that `/`, `/status` and
//! `honcho_queue_verdict` (rendered after the poll-time families) then all show. A re-render at
//! scrape time (a value past its bound) re-evaluates without observing.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::Settings;
use crate::exposition::deflate::{self, Checksum, Compressor};
use crate::exposition::{self, Format};
use crate::families::{self, Part};
use crate::metric::MetricFamily;
use crate::snapshot::{RollupMemory, Snapshot};
use crate::verdict::{self, Criteria, Report};

mod body;
mod verdicts;

pub use body::{Chunks, ScrapeBody};
use verdicts::{Verdicts, judge};

/// What can produce the servable [`Snapshot`] at any time: values past their bound left out.
pub trait SnapshotSource: Send + Sync {
    /// The snapshot to serve at `now` (Unix seconds).
    fn snapshot_at(&self, now: f64) -> Snapshot;
    /// The first time after `now` at which a value served at `now` stops being servable.
    fn next_expiry(&self, now: f64) -> Option<f64>;
}

/// A snapshot that never changes (benchmarks, tests, the database source's first answer).
struct Fixed(Snapshot);

impl SnapshotSource for Fixed {
    fn snapshot_at(&self, _now: f64) -> Snapshot {
        self.0.clone()
    }

    fn next_expiry(&self, _now: f64) -> Option<f64> {
        None
    }
}

/// Plain (uncompressed) sample lines are cached while all of them together are at most this
/// many bytes (about 120,000 series); beyond it only the compressed copy is kept.
pub const PLAIN_CACHE_LIMIT: usize = 16 << 20;

/// Workspaces rendered at a time: bounds the families held while rendering.
const WORKSPACES_PER_PART: usize = 64;

/// The two formats, in the order of the per-format arrays below.
const FORMATS: [Format; 2] = [Format::OpenMetrics, Format::Text];

fn format_index(format: Format) -> usize {
    match format {
        Format::OpenMetrics => 0,
        Format::Text => 1,
    }
}

/// One family's metadata lines in each format, plain and compressed.
#[derive(Debug, Clone)]
struct Header {
    plain: [Bytes; 2],
    deflated: [deflate::Piece; 2],
}

impl Header {
    fn new(family: &MetricFamily, compressor: &mut Compressor) -> Self {
        let plain = FORMATS.map(|format| {
            let mut out = Vec::with_capacity(256);
            exposition::render_header(family, format, &mut out);
            Bytes::from(out)
        });
        let deflated = [compressor.piece(&plain[0]), compressor.piece(&plain[1])];
        Header { plain, deflated }
    }
}

/// One poll-time family, rendered.
#[derive(Debug, Clone)]
struct FamilyBytes {
    header: Header,
    /// The sample lines, a part of the snapshot at a time, while the exposition is small
    /// enough to keep them.
    samples: Option<Vec<Bytes>>,
    /// The sample lines compressed, a piece per part of the snapshot.
    deflated: Vec<deflate::Piece>,
    /// Of all the sample lines.
    checksum: Checksum,
}

/// One scrape-time family: its samples' lines up to the value, and the times their ages count
/// from.
#[derive(Debug, Clone)]
struct AgeFamily {
    header: Header,
    /// A part of the snapshot at a time: its samples' lines up to the value, back to back, and
    /// per sample where its prefix ends there and the Unix time its age counts from.
    parts: Vec<(Bytes, Vec<(u32, f64)>)>,
}

/// The poll-time bytes of one snapshot and until when they may be served.
#[derive(Debug, Clone)]
struct Rendered {
    families: Vec<FamilyBytes>,
    ages: Vec<AgeFamily>,
    /// Unix seconds from which one of the values rendered is past its bound.
    valid_until: f64,
    /// The verdicts of this rendering (its `honcho_queue_verdict` family is the last of
    /// `families`).
    report: Arc<Report>,
}

impl Rendered {
    fn new(snapshot: &Snapshot, valid_until: f64, report: Arc<Report>) -> Self {
        let mut rendered = Self::with_plain_limit(snapshot, valid_until, PLAIN_CACHE_LIMIT);
        rendered.add_verdicts(report);
        rendered
    }

    /// Appends the verdict family of `report` (none when it has no workspace) and keeps it.
    fn add_verdicts(&mut self, report: Arc<Report>) {
        if !report.workspaces.is_empty() {
            let family = verdict::metric::verdict_family(&report);
            let mut compressor = Compressor::new();
            let mut samples = Vec::new();
            exposition::render_samples(&family, &mut samples);
            let piece = compressor.piece(&samples);
            self.families.push(FamilyBytes {
                header: Header::new(&family, &mut compressor),
                samples: self
                    .families
                    .iter()
                    .all(|family| family.samples.is_some())
                    .then(|| vec![Bytes::from(samples)]),
                checksum: Checksum::default().then(piece.plain),
                deflated: vec![piece],
            });
        }
        self.report = report;
    }

    /// [`Rendered::new`] keeping plain samples only while they total at most `plain_limit`.
    fn with_plain_limit(snapshot: &Snapshot, valid_until: f64, plain_limit: usize) -> Self {
        let mut compressor = Compressor::new();
        let mut families: Vec<FamilyBytes> = Vec::new();
        let mut ages: Vec<AgeFamily> = Vec::new();
        let mut plain_len = 0;
        let mut scratch = Vec::with_capacity(64 * 1024);
        for part in Part::split(snapshot, WORKSPACES_PER_PART) {
            let poll_families = families::poll_families_of(&part);
            if families.is_empty() {
                families = poll_families
                    .iter()
                    .map(|family| FamilyBytes {
                        header: Header::new(family, &mut compressor),
                        samples: Some(Vec::new()),
                        deflated: Vec::new(),
                        checksum: Checksum::default(),
                    })
                    .collect();
            }
            debug_assert_eq!(
                poll_families.len(),
                families.len(),
                "every part has every family"
            );
            for (bytes, family) in families.iter_mut().zip(&poll_families) {
                scratch.clear();
                exposition::render_samples(family, &mut scratch);
                if scratch.is_empty() {
                    continue;
                }
                let piece = compressor.piece(&scratch);
                bytes.checksum = bytes.checksum.then(piece.plain);
                bytes.deflated.push(piece);
                plain_len += scratch.len();
                if let Some(samples) = bytes.samples.as_mut().filter(|_| plain_len <= plain_limit) {
                    samples.push(Bytes::copy_from_slice(&scratch));
                }
            }
            if plain_len > plain_limit {
                // Over the limit: no family keeps plain lines any more.
                for bytes in &mut families {
                    bytes.samples = None;
                }
            }
            let age_families = families::age_families(&part);
            if ages.is_empty() {
                ages = age_families
                    .iter()
                    .map(|family| AgeFamily {
                        header: Header::new(family, &mut compressor),
                        parts: Vec::new(),
                    })
                    .collect();
            }
            for (age, family) in ages.iter_mut().zip(&age_families) {
                if family.samples.is_empty() {
                    continue;
                }
                scratch.clear();
                let mut samples = Vec::with_capacity(family.samples.len());
                for sample in &family.samples {
                    exposition::render_sample_prefix(family, sample, &mut scratch);
                    // A part's prefixes are far below 4 GiB.
                    samples.push((scratch.len() as u32, sample.value));
                }
                age.parts.push((Bytes::copy_from_slice(&scratch), samples));
            }
        }
        Rendered {
            families,
            ages,
            valid_until,
            report: Arc::new(Report::default()),
        }
    }

    /// The scrape-time part of a body at `now`: the ages, the process metrics and, for
    /// OpenMetrics, `# EOF`.
    fn tail(&self, format: Format, now: f64) -> Vec<u8> {
        let index = format_index(format);
        let mut tail = Vec::with_capacity(
            4096 + self
                .ages
                .iter()
                .flat_map(|age| &age.parts)
                .map(|(prefixes, samples)| prefixes.len() + 16 * samples.len())
                .sum::<usize>(),
        );
        for age in &self.ages {
            tail.extend_from_slice(&age.header.plain[index]);
            for (prefixes, samples) in &age.parts {
                let mut start = 0;
                for &(end, since) in samples {
                    let end = end as usize;
                    tail.extend_from_slice(&prefixes[start..end]);
                    exposition::render_millis_value(families::age_millis(now, since), &mut tail);
                    start = end;
                }
            }
        }
        exposition::render(&crate::process::process_families(), format, &mut tail);
        exposition::finish(format, &mut tail);
        tail
    }
}

/// What the server serves.
pub struct Published {
    source: Arc<dyn SnapshotSource>,
    rendered: Mutex<Arc<Rendered>>,
    /// The verdict history and criteria, handed from publication to publication.
    verdicts: Arc<Mutex<Verdicts>>,
    /// Whether the exporter has data to serve (readiness).
    pub ready: bool,
    /// What the workspace ceiling decided for this publication, for the next one (its
    /// hysteresis and counter live from publication to publication, across reloads). Set and
    /// read by `crate::source::publish` only; this module does not look at it.
    pub ceiling: RollupMemory,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Published {
    /// A fixed snapshot, served as it is (benchmarks, tests), its verdicts judged with the
    /// default criteria from one look.
    pub fn render(snapshot: Snapshot, ready: bool) -> Self {
        Self::build(
            Arc::new(Fixed(snapshot)),
            unix_now(),
            ready,
            Verdicts::new(Criteria::of(&Settings::defaults())),
        )
    }

    /// The same publication, its verdicts judged with `criteria` from now on (the first
    /// publication of a source, whose successors inherit them through [`publish`]).
    pub fn judged_by(self, criteria: Criteria) -> Self {
        let verdicts = Verdicts::new(criteria);
        let now = unix_now();
        let snapshot = self.source.snapshot_at(now);
        let report = judge(&verdicts, &snapshot, self.ready, now, false);
        let rendered = Rendered::new(
            &snapshot,
            self.source.next_expiry(now).unwrap_or(f64::INFINITY),
            report,
        );
        Published {
            source: self.source,
            rendered: Mutex::new(Arc::new(rendered)),
            verdicts,
            ready: self.ready,
            ceiling: self.ceiling,
        }
    }

    /// What `source` serves, rendered at `now` and re-rendered at scrape time once a value in
    /// it passes its bound. Its verdicts start a new history (sources publish through
    /// [`publish`], which keeps it).
    pub fn from_source(source: Arc<dyn SnapshotSource>, now: f64, ready: bool) -> Self {
        Self::build(
            source,
            now,
            ready,
            Verdicts::new(Criteria::of(&Settings::defaults())),
        )
    }

    fn build(
        source: Arc<dyn SnapshotSource>,
        now: f64,
        ready: bool,
        verdicts: Arc<Mutex<Verdicts>>,
    ) -> Self {
        let snapshot = source.snapshot_at(now);
        let report = judge(&verdicts, &snapshot, ready, now, true);
        let rendered = Rendered::new(
            &snapshot,
            source.next_expiry(now).unwrap_or(f64::INFINITY),
            report,
        );
        Published {
            source,
            rendered: Mutex::new(Arc::new(rendered)),
            verdicts,
            ready,
            ceiling: RollupMemory::default(),
        }
    }

    /// The verdicts served at `now` (for `/`, `/status` and `doctor`): the same the metric
    /// shows.
    pub fn verdicts(&self, now: f64) -> Arc<Report> {
        Arc::clone(&self.rendered_at(now).report)
    }

    /// The snapshot served at `now` (for the landing page), built when asked.
    pub fn snapshot(&self, now: f64) -> Snapshot {
        self.source.snapshot_at(now)
    }

    /// The rendering valid at `now`, re-rendered once if a value passed its bound.
    fn rendered_at(&self, now: f64) -> Arc<Rendered> {
        let mut rendered = self
            .rendered
            .lock()
            .expect("the rendering lock is never poisoned: rendering does not panic");
        if now >= rendered.valid_until {
            let snapshot = self.source.snapshot_at(now);
            let report = judge(&self.verdicts, &snapshot, self.ready, now, false);
            *rendered = Arc::new(Rendered::new(
                &snapshot,
                self.source.next_expiry(now).unwrap_or(f64::INFINITY),
                report,
            ));
        }
        Arc::clone(&rendered)
    }

    /// The whole body for a scrape at `now` (Unix seconds): the cached poll-time families, then
    /// the scrape-time ones (ages, process metrics), then `# EOF` for OpenMetrics. With `gzip`,
    /// one gzip member: the cached compressed pieces, the scrape-time part compressed now, and
    /// a trailer whose CRC is combined from the pieces'.
    pub fn body(&self, format: Format, gzip: bool, now: f64) -> ScrapeBody {
        body::assemble(&self.rendered_at(now), format, gzip, now)
    }
}

/// The handle the server reads from; the poller swaps in a new publication as results arrive.
pub type SharedPublished = Arc<RwLock<Arc<Published>>>;

/// Publishes what `source` serves at `now` in place of the current publication, handing its
/// verdict history on (and observing the new snapshot in it): what both sources call.
/// `settings`' verdict criteria apply from this publication on (a reload may change them).
pub fn publish(
    shared: &SharedPublished,
    source: Arc<dyn SnapshotSource>,
    now: f64,
    ready: bool,
    settings: &Settings,
    ceiling: RollupMemory,
) {
    let verdicts = Arc::clone(&current(shared).verdicts);
    Verdicts::adopt(&verdicts, Criteria::of(settings));
    let mut published = Published::build(source, now, ready, verdicts);
    published.ceiling = ceiling;
    let published = Arc::new(published);
    *shared
        .write()
        .expect("the publication lock is never poisoned: nothing panics while holding it") =
        published;
}

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
    use std::io::Read as _;

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
            .into_iter()
            .map(|chunk| String::from_utf8_lossy(&chunk).into_owned())
            .collect()
    }

    /// `workspaces` workspaces with status, work units (ages included) and health, plus
    /// exporter-wide samples (discovery health, request counts).
    fn busy_snapshot(workspaces: usize) -> Snapshot {
        let status =
            include_str!("../../tests/data/honcho/dev-1790/queue-status__globex-research.json");
        let page = include_str!("../../tests/data/honcho/dev-1790/work-units__acme-support.json");
        let health = crate::snapshot::EndpointHealth {
            up: true,
            last_success: Some(1_795_318_000.0),
        };
        let mut snapshot = Snapshot::default();
        snapshot.exporter.discovery = Some(health);
        snapshot.exporter.poll_cycles = 3;
        for index in 0..workspaces {
            let mut aggregator = crate::snapshot::WorkUnitAggregator::new(
                1_795_318_080.0,
                std::time::Duration::from_secs(1815),
                20,
                std::collections::HashSet::new(),
            );
            aggregator.add_page(&serde_json::from_str(page).expect("fixture page parses"));
            let workspace = snapshot
                .workspaces
                .entry(format!("ws-{index:04}"))
                .or_default();
            workspace.status = Some(crate::snapshot::summarize_status(
                serde_json::from_str(status).expect("fixture status parses"),
                10,
            ));
            workspace.work_units = Some(aggregator.finish());
            workspace.last_complete_walk =
                Some((1_795_318_050.0, std::time::Duration::from_millis(1500)));
            workspace
                .health
                .insert(crate::honcho::Endpoint::Status, health);
            workspace
                .health
                .insert(crate::honcho::Endpoint::WorkUnits, health);
        }
        snapshot
    }

    /// The whole snapshot's families rendered in one go: what a body must start with.
    fn rendered_whole(snapshot: &Snapshot, format: Format, now: f64) -> Vec<u8> {
        let mut out = Vec::new();
        exposition::render(&families::poll_families(snapshot), format, &mut out);
        exposition::render(&families::scrape_families(snapshot, now), format, &mut out);
        out
    }

    fn body_bytes(rendered: &Rendered, format: Format, gzip: bool, now: f64) -> Vec<u8> {
        let published = Published {
            source: Arc::new(Fixed(Snapshot::default())),
            rendered: Mutex::new(Arc::new(rendered.clone())),
            verdicts: Verdicts::new(Criteria::of(&Settings::defaults())),
            ready: true,
            ceiling: RollupMemory::default(),
        };
        let body = published.body(format, gzip, now);
        let length = body.length;
        let bytes: Vec<u8> = body.into_iter().flat_map(|chunk| chunk.to_vec()).collect();
        assert_eq!(bytes.len(), length, "Content-Length matches the body");
        if !gzip {
            return bytes;
        }
        let mut plain = Vec::new();
        // One member: GzDecoder stops after the first, as curl does.
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut plain)
            .expect("the gzip body decodes");
        plain
    }

    #[test]
    fn part_by_part_rendering_gives_the_bytes_of_a_whole_rendering_in_every_form() {
        // 150 workspaces: three parts; the exporter-wide samples must come out once, first.
        let snapshot = busy_snapshot(150);
        let now = 1_795_318_100.25;
        for plain_limit in [PLAIN_CACHE_LIMIT, 0] {
            let rendered = Rendered::with_plain_limit(&snapshot, f64::INFINITY, plain_limit);
            assert_eq!(
                rendered
                    .families
                    .iter()
                    .all(|family| family.samples.is_some()),
                plain_limit > 0,
                "plain samples are kept only under the limit"
            );
            for format in FORMATS {
                let whole = rendered_whole(&snapshot, format, now);
                for gzip in [false, true] {
                    let body = body_bytes(&rendered, format, gzip, now);
                    assert!(
                        body.starts_with(&whole),
                        "{format:?}, gzip {gzip}, plain limit {plain_limit}: the body differs from the whole rendering"
                    );
                    let rest = String::from_utf8(body[whole.len()..].to_vec()).expect("UTF-8");
                    assert!(
                        rest.lines().all(|line| line.starts_with("process_")
                            || line.starts_with("# HELP process_")
                            || line.starts_with("# TYPE process_")
                            || line.starts_with("# UNIT process_")
                            || line == "# EOF"),
                        "only process metrics follow the families: {rest}"
                    );
                    assert_eq!(rest.ends_with("# EOF\n"), format == Format::OpenMetrics);
                }
            }
        }
    }

    #[test]
    fn ages_are_written_at_the_scrape_time() {
        let snapshot = busy_snapshot(1);
        let published = Published::render(snapshot, true);
        let walk_age = |now| {
            text(&published, now)
                .lines()
                .find_map(|line| {
                    line.strip_prefix("honcho_exporter_walk_age_seconds{workspace=\"ws-0000\"} ")
                        .map(str::to_string)
                })
                .expect("a walk age")
        };
        assert_eq!(walk_age(1_795_318_060.5), "10.5");
        assert_eq!(walk_age(1_795_318_070.0), "20");
        // Clock skew: never negative.
        assert_eq!(walk_age(1_795_318_000.0), "0");
    }

    #[test]
    fn verdicts_keep_their_history_from_publication_to_publication_and_the_metric_agrees() {
        let mut settings = Settings::defaults();
        let shared: SharedPublished = Arc::new(RwLock::new(Arc::new(
            Published::render(Snapshot::default(), false).judged_by(Criteria::of(&settings)),
        )));
        let snapshot = busy_snapshot(1);
        publish(
            &shared,
            Arc::new(Fixed(snapshot.clone())),
            100.0,
            true,
            &settings,
            RollupMemory::default(),
        );
        publish(
            &shared,
            Arc::new(Fixed(snapshot.clone())),
            250.0,
            true,
            &settings,
            RollupMemory::default(),
        );
        let published = current(&shared);
        let report = published.verdicts(250.0);
        assert_eq!(report.history_seconds, 150.0);
        let worst = report.workspaces[0].worst().as_str();
        assert!(
            text(&published, 250.0).contains(&format!(
                "honcho_queue_verdict{{workspace=\"ws-0000\",verdict=\"{worst}\"}} 1"
            )),
            "the metric shows the page's verdict"
        );
        // A reload's new thresholds apply from the next publication, the history kept.
        settings.verdict.stuck_after = std::time::Duration::from_secs(1);
        publish(
            &shared,
            Arc::new(Fixed(snapshot)),
            300.0,
            true,
            &settings,
            RollupMemory::default(),
        );
        let report = current(&shared).verdicts(300.0);
        assert_eq!(report.history_seconds, 200.0);
    }

    #[test]
    fn a_value_past_its_bound_is_not_served_even_before_the_next_publication() {
        let published = Published::from_source(Arc::new(Expiring), 0.0, true);
        assert!(text(&published, 9.9).contains("honcho_queue_items{workspace=\"w\""));
        assert!(!text(&published, 10.0).contains("honcho_queue_items{workspace=\"w\""));
    }
}

//! The exporter's self-metrics: the health of each upstream, the poll cycle's numbers, the
//! requests and errors by upstream, what the Honcho server offers, the coverage (workspaces,
//! capped series), the build and the token file's rejected reloads. Pure: reads the snapshot
//! part it is given, nothing else; the database source's own numbers are in `source.rs`.

use crate::metric::{MetricFamily, MetricType};
use crate::snapshot::{CAPPED_WORKSPACES, EndpointHealth, ExporterStats, Snapshot};

use super::source::postgres_families;
use super::{Labels, Part, UPSTREAM_LABEL, global_only, labels};

/// The self-metric families, in output order.
pub(super) fn exporter_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    let snapshot = part.snapshot;
    let stats = &snapshot.exporter;
    if let Some(mut token) = token_reload_family(stats) {
        global_only(part, [&mut token]);
        families.push(token);
    }
    families.extend(health_families(part));
    let mut exporter_wide = Vec::with_capacity(10);
    exporter_wide.extend(cycle_families(stats));
    exporter_wide.extend(upstream_families(stats));
    exporter_wide.extend(server_families(stats));
    exporter_wide.extend(coverage_families(snapshot));
    exporter_wide.push(build_family());
    global_only(part, &mut exporter_wide);
    families.extend(exporter_wide);
    let mut postgres_families = postgres_families(snapshot);
    global_only(part, &mut postgres_families);
    families.extend(postgres_families);
}

/// `up` and the last success per upstream: discovery and the database (exporter-wide), then
/// each workspace's endpoints.
fn health_families(part: &Part<'_>) -> [MetricFamily; 2] {
    let stats = &part.snapshot.exporter;
    let mut up = MetricFamily::new(
        "honcho_exporter_up",
        "1 if the last poll of this endpoint of Honcho succeeded",
        MetricType::Gauge,
    );
    let mut last_success = MetricFamily::new(
        "honcho_exporter_last_success_timestamp_seconds",
        "Unix time of the last successful poll of this endpoint; queue data comes from polls on the exporter's own timer, so this says how fresh it is",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut push_health = |label_set: Labels, health: &EndpointHealth| {
        up.push(label_set.clone(), f64::from(u8::from(health.up)));
        if let Some(timestamp) = health.last_success {
            last_success.push(label_set, timestamp);
        }
    };
    if let Some(discovery) = stats.discovery.as_ref().filter(|_| part.global) {
        push_health(labels(&[(UPSTREAM_LABEL, "discovery")]), discovery);
    }
    if let Some(postgres) = stats.postgres.as_ref().filter(|_| part.global) {
        push_health(
            labels(&[(UPSTREAM_LABEL, crate::honcho::Endpoint::Postgres.as_str())]),
            &postgres.health,
        );
    }
    for &(workspace, data) in &part.workspaces {
        for (endpoint, health) in &data.health {
            push_health(
                labels(&[
                    ("workspace", workspace),
                    (UPSTREAM_LABEL, endpoint.as_str()),
                ]),
                health,
            );
        }
    }
    [up, last_success]
}

/// The poll cycle: last duration, configured interval, cycles completed.
fn cycle_families(stats: &ExporterStats) -> [MetricFamily; 3] {
    let mut duration = MetricFamily::new(
        "honcho_exporter_poll_duration_seconds",
        "Duration of the last complete poll cycle",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    if let Some(value) = stats.poll_duration {
        duration.push(Vec::new(), value.as_secs_f64());
    }
    let mut interval = MetricFamily::new(
        "honcho_exporter_poll_interval_seconds",
        "Configured poll interval: Honcho is polled on this timer, not at scrape time",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    interval.push(Vec::new(), stats.poll_interval.as_secs_f64());
    let mut cycles = MetricFamily::new(
        "honcho_exporter_poll_cycles",
        "Poll cycles completed",
        MetricType::Counter,
    );
    cycles.push(Vec::new(), stats.poll_cycles as f64);
    [duration, interval, cycles]
}

/// Requests sent and failed polls, by upstream.
fn upstream_families(stats: &ExporterStats) -> [MetricFamily; 2] {
    let mut requests = MetricFamily::new(
        "honcho_exporter_upstream_requests",
        "HTTP requests sent to Honcho, by upstream endpoint and status code (error: no response)",
        MetricType::Counter,
    );
    for ((endpoint, code), count) in &stats.requests {
        requests.push(
            labels(&[(UPSTREAM_LABEL, endpoint.as_str()), ("code", code)]),
            *count as f64,
        );
    }
    let mut errors = MetricFamily::new(
        "honcho_exporter_poll_errors",
        "Failed polls of Honcho by upstream endpoint and reason (after retries)",
        MetricType::Counter,
    );
    for ((endpoint, reason), count) in &stats.errors {
        errors.push(
            labels(&[(UPSTREAM_LABEL, endpoint.as_str()), ("reason", reason)]),
            *count as f64,
        );
    }
    [requests, errors]
}

/// What the Honcho server offers: its features and API generation, once known.
fn server_families(stats: &ExporterStats) -> [MetricFamily; 2] {
    let mut features = MetricFamily::new(
        "honcho_exporter_feature_available",
        "1 if the Honcho server offers the feature (status_split: stalled/ready in queue/status; work_units: the work-units walk)",
        MetricType::Gauge,
    );
    for (feature, known) in [
        ("status_split", stats.status_split),
        ("work_units", stats.work_units_available),
    ] {
        if let Some(available) = known {
            features.push(
                labels(&[("feature", feature)]),
                f64::from(u8::from(available)),
            );
        }
    }
    let mut generation = MetricFamily::new(
        "honcho_exporter_api_generation",
        "The Honcho API generation in use (a: 2.x deriver/status; b: 3.x queue/status; c: 3.x with the split and work-units)",
        MetricType::Gauge,
    );
    if let Some(value) = stats.generation {
        generation.push(labels(&[("generation", value.as_str())]), 1.0);
    }
    [features, generation]
}

/// What the snapshot covers: workspaces polled, series dropped by caps, and (once the
/// workspace ceiling first rolled workspaces up) the workspaces folded into `__other__`.
fn coverage_families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    let rollup = snapshot.exporter.rollup;
    let mut workspaces = MetricFamily::new(
        "honcho_exporter_workspaces",
        "Workspaces polled",
        MetricType::Gauge,
    );
    let polled = rollup.map_or(snapshot.workspaces.len() as u64, |stats| stats.polled);
    workspaces.push(Vec::new(), polled as f64);
    let mut capped = MetricFamily::new(
        "honcho_exporter_series_capped",
        "Series not exported because of a cap (session_items: sessions folded into __other__; work_unit_detail: problem units beyond the detail limit), summed over polls",
        MetricType::Counter,
    );
    for family in ["session_items", "work_unit_detail", CAPPED_WORKSPACES] {
        let count = snapshot.exporter.capped.get(family);
        if family == CAPPED_WORKSPACES && rollup.is_none() {
            continue;
        }
        capped.push(labels(&[("family", family)]), *count.unwrap_or(&0) as f64);
    }
    let mut families = vec![workspaces, capped];
    if let Some(stats) = rollup {
        let mut rolled_up = MetricFamily::new(
            "honcho_exporter_workspaces_rolled_up",
            "Workspaces beyond workspaces.max_exported, summed into workspace=__other__ (exported once the ceiling was first reached)",
            MetricType::Gauge,
        );
        rolled_up.push(Vec::new(), stats.rolled_up as f64);
        families.push(rolled_up);
    }
    families
}

fn build_family() -> MetricFamily {
    let mut build = MetricFamily::new(
        "honcho_exporter_build",
        "The exporter's version and the revision it was built from",
        MetricType::Info,
    );
    build.push(
        labels(&[("version", crate::VERSION), ("revision", crate::REVISION)]),
        1.0,
    );
    build
}

/// Rejected token file changes by reason; only when the token comes from a file.
fn token_reload_family(stats: &ExporterStats) -> Option<MetricFamily> {
    let rejected = stats.token_reload_errors.as_ref()?;
    let mut token = MetricFamily::new(
        "honcho_exporter_token_reload_errors",
        "Changes of the Honcho token file that were not used, by reason (unreadable, empty, invalid): the previous token stays in use. Each version of the file counts once",
        MetricType::Counter,
    );
    for (reason, count) in rejected {
        token.push(labels(&[("reason", reason)]), *count as f64);
    }
    Some(token)
}

//! Maps a [`Snapshot`] onto metric families. Pure; the only place metric names, help texts and
//! label names live. Iterates sorted maps only, so output is deterministic.
//!
//! Two parts: [`poll_families`] is rendered once per poll and cached as bytes;
//! [`age_families`] holds what must be computed at scrape time (ages from `now`): its samples
//! carry timestamps, turned into ages by [`age`] when a scrape renders them.
//!
//! Both can be built for a [`Part`] of a snapshot (the exporter-wide samples and/or a run of
//! workspaces) with the same families in the same order, so a large snapshot is rendered a few
//! workspaces at a time: within every family the exporter-wide samples come first, then each
//! workspace's in name order, so concatenating the parts' samples family by family gives the
//! whole snapshot's bytes.

use crate::classify::{TaskType, UnitState};
use crate::honcho::types::ItemCounts;
use crate::metric::{MetricFamily, MetricType};
use crate::snapshot::{EndpointHealth, Snapshot, WorkspaceSnapshot};

/// The verdict family (`honcho_queue_verdict`) is built from the publication's verdicts, not
/// from a snapshot: its builder lives with the verdicts, and the publication renders it after
/// the poll families.
pub use crate::verdict::metric::{VERDICT_FAMILY, verdict_family};

type Labels = Vec<(&'static str, String)>;

/// The label naming which Honcho API endpoint (or, later, data source) a poll, request or error
/// belongs to: `status`, `work_units`, `discovery`, `scope`. Named `upstream`, not `endpoint`:
/// prometheus-operator attaches an `endpoint` target label to every series it scrapes, and with
/// the default `honorLabels: false` ours would be renamed `exported_endpoint`. No label of ours
/// may share a name with a target label (`job`, `instance`, `endpoint`, `namespace`, `pod`,
/// `service`, `container`); `tests/integration/golden.rs` holds every family to that.
pub const UPSTREAM_LABEL: &str = "upstream";

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(name, value)| (*name, (*value).to_string()))
        .collect()
}

/// The item states of an [`ItemCounts`]: with the split when known, else plain `pending`.
fn item_states(counts: &ItemCounts) -> Vec<(&'static str, u64)> {
    let mut states = vec![
        ("completed", counts.completed),
        ("in_progress", counts.in_progress),
    ];
    match (counts.pending_ready, counts.pending_stalled) {
        (Some(ready), Some(stalled)) => {
            states.push(("pending_ready", ready));
            states.push(("pending_stalled", stalled));
        }
        _ => states.push(("pending", counts.pending)),
    }
    states
}

/// What a family builder covers: a run of a snapshot's workspaces, and (for one part of a
/// snapshot only) the exporter-wide samples.
#[derive(Debug)]
pub struct Part<'a> {
    snapshot: &'a Snapshot,
    workspaces: Vec<(&'a str, &'a WorkspaceSnapshot)>,
    global: bool,
}

impl<'a> Part<'a> {
    /// All of `snapshot`.
    pub fn whole(snapshot: &'a Snapshot) -> Self {
        Part {
            snapshot,
            workspaces: snapshot
                .workspaces
                .iter()
                .map(|(name, data)| (name.as_str(), data))
                .collect(),
            global: true,
        }
    }

    /// `snapshot` in parts of at most `workspaces` workspaces each (at least one part; the
    /// first one carries the exporter-wide samples).
    pub fn split(snapshot: &'a Snapshot, workspaces: usize) -> Vec<Self> {
        let all = Part::whole(snapshot).workspaces;
        let mut parts: Vec<Part<'a>> = all
            .chunks(workspaces.max(1))
            .enumerate()
            .map(|(index, run)| Part {
                snapshot,
                workspaces: run.to_vec(),
                global: index == 0,
            })
            .collect();
        if parts.is_empty() {
            parts.push(Part {
                snapshot,
                workspaces: Vec::new(),
                global: true,
            });
        }
        parts
    }
}

/// Everything rendered once per poll.
pub fn poll_families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    poll_families_of(&Part::whole(snapshot))
}

/// [`poll_families`] for one part of a snapshot: the same families, only that part's samples.
pub fn poll_families_of(part: &Part<'_>) -> Vec<MetricFamily> {
    let mut families = Vec::with_capacity(32);
    queue_status_families(part, &mut families);
    work_unit_families(part, &mut families);
    deriver_families(part, &mut families);
    exporter_families(part, &mut families);
    families
}

fn queue_status_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    let mut items = MetricFamily::new(
        "honcho_queue_items",
        "Queue items (rows) by state, from queue/status; pending splits into pending_ready and pending_stalled where the server reports the split. Polled every poll interval, not at scrape",
        MetricType::Gauge,
    );
    let mut session_items = MetricFamily::new(
        "honcho_queue_session_items",
        "Queue items by session (internal id) and state: the top sessions by pending items, the rest summed under __other__, items of no session (dreams) under __none__",
        MetricType::Gauge,
    );
    let mut session_info = MetricFamily::new(
        "honcho_queue_session",
        "Maps an internal session id to its name (known from the work-units walk)",
        MetricType::Info,
    );
    let mut scope_items = MetricFamily::new(
        "honcho_queue_scope_items",
        "Queue items by state for each configured scope (a queue/status poll filtered by observer, sender and/or session name)",
        MetricType::Gauge,
    );
    for &(workspace, data) in &part.workspaces {
        if let Some(status) = &data.status {
            for (state, value) in item_states(&status.counts) {
                items.push(
                    labels(&[("workspace", workspace), ("state", state)]),
                    value as f64,
                );
            }
            for row in &status.sessions {
                for (state, value) in item_states(&row.counts) {
                    session_items.push(
                        labels(&[
                            ("workspace", workspace),
                            ("session_id", &row.session_id),
                            ("state", state),
                        ]),
                        value as f64,
                    );
                }
            }
        }
        if let Some(units) = &data.work_units {
            for (session_id, session_name) in &units.session_names {
                session_info.push(
                    labels(&[
                        ("workspace", workspace),
                        ("session_id", session_id),
                        ("session_name", session_name),
                    ]),
                    1.0,
                );
            }
        }
        for (scope, counts) in &data.scopes {
            for (state, value) in item_states(counts) {
                scope_items.push(
                    labels(&[("workspace", workspace), ("scope", scope), ("state", state)]),
                    value as f64,
                );
            }
        }
    }
    families.extend([items, session_items, session_info, scope_items]);
}

fn work_unit_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    let mut units = MetricFamily::new(
        "honcho_queue_work_units",
        "Work units by task type and state (in_progress, ready, stalled, overdue = stalled past the batch max age + grace; a partition), from the work-units walk",
        MetricType::Gauge,
    );
    let mut unit_items = MetricFamily::new(
        "honcho_queue_work_unit_items",
        "Pending items of the work units in each task type and state",
        MetricType::Gauge,
    );
    let mut tokens = MetricFamily::new(
        "honcho_queue_pending_tokens",
        "Pending tokens of the work units in each task type and state",
        MetricType::Gauge,
    );
    let mut oldest = MetricFamily::new(
        "honcho_queue_oldest_item_timestamp_seconds",
        "Unix time of the oldest pending item among the work units in each task type and state (absent when there are none)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut until_threshold = MetricFamily::new(
        "honcho_queue_tokens_until_threshold",
        "Smallest number of tokens a stalled work unit still needs to reach the batch threshold (how close the nearest batch is to firing)",
        MetricType::Gauge,
    );
    let mut unit_until_threshold = MetricFamily::new(
        "honcho_queue_work_unit_tokens_until_threshold",
        "Tokens this problem work unit still needs to reach the batch threshold (top problem units only)",
        MetricType::Gauge,
    );
    let mut unit_tokens = MetricFamily::new(
        "honcho_queue_work_unit_pending_tokens",
        "Pending tokens of this problem work unit (top problem units only)",
        MetricType::Gauge,
    );
    let mut truncated = MetricFamily::new(
        "honcho_exporter_walk_truncated",
        "1 if the last work-units walk of the workspace stopped at the page cap, so the work-unit numbers cover only the oldest units",
        MetricType::Gauge,
    );
    let mut listed_units = MetricFamily::new(
        "honcho_queue_work_units_listed",
        "Work units Honcho lists for the workspace (the total of the work-units walk's first page), refreshed every poll interval even while a full walk takes longer",
        MetricType::Gauge,
    );
    let mut walk_duration = MetricFamily::new(
        "honcho_exporter_walk_duration_seconds",
        "Duration of the last complete work-units walk of the workspace (the next one starts no sooner than poll.duty_factor times it)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut invalid_timestamps = MetricFamily::new(
        "honcho_exporter_work_units_invalid_timestamp",
        "Work units of the last walk of the workspace whose oldest_item_at is not a timestamp: their age is unknown, so they are counted in no state",
        MetricType::Gauge,
    );
    for &(workspace, data) in &part.workspaces {
        if data
            .health
            .contains_key(&crate::honcho::Endpoint::WorkUnits)
        {
            truncated.push(
                labels(&[("workspace", workspace)]),
                f64::from(u8::from(data.walk_truncated)),
            );
        }
        if let Some(listed) = data.units_listed {
            listed_units.push(labels(&[("workspace", workspace)]), listed as f64);
        }
        if let Some((_, duration)) = data.last_complete_walk {
            walk_duration.push(labels(&[("workspace", workspace)]), duration.as_secs_f64());
        }
        let Some(aggregate) = &data.work_units else {
            continue;
        };
        invalid_timestamps.push(
            labels(&[("workspace", workspace)]),
            aggregate.invalid_timestamps as f64,
        );
        // Only the head of the walk known: ages and detail, but no per-state counts yet.
        let counts = !data.head_only;
        for task_type in TaskType::ALL {
            // `other` exists only while a unit of an unknown task type does.
            if task_type == TaskType::Other && !aggregate.has_units(TaskType::Other) {
                continue;
            }
            for state in UnitState::ALL {
                let cell = aggregate.cell(task_type, state);
                let label_set = labels(&[
                    ("workspace", workspace),
                    ("task_type", task_type.as_str()),
                    ("state", state.as_str()),
                ]);
                if counts {
                    units.push(label_set.clone(), cell.units as f64);
                    unit_items.push(label_set.clone(), cell.items as f64);
                    tokens.push(label_set.clone(), cell.tokens as f64);
                }
                if let Some(timestamp) = cell.oldest_item_timestamp {
                    oldest.push(label_set, timestamp);
                }
            }
            if let Some(value) = aggregate.tokens_until_threshold[task_type.index()]
                && counts
            {
                until_threshold.push(
                    labels(&[("workspace", workspace), ("task_type", task_type.as_str())]),
                    value as f64,
                );
            }
        }
        for unit in &aggregate.detail {
            let label_set = detail_labels(workspace, unit);
            unit_until_threshold.push(label_set.clone(), unit.tokens_until_threshold as f64);
            unit_tokens.push(label_set, unit.pending_tokens as f64);
        }
    }
    families.extend([
        units,
        unit_items,
        tokens,
        oldest,
        until_threshold,
        unit_until_threshold,
        unit_tokens,
        truncated,
        listed_units,
        walk_duration,
        invalid_timestamps,
    ]);
}

fn detail_labels(workspace: &str, unit: &crate::snapshot::UnitDetail) -> Labels {
    labels(&[
        ("workspace", workspace),
        ("task_type", unit.task_type.as_str()),
        ("state", unit.state.as_str()),
        ("session_name", &unit.session_name),
        ("observed", &unit.observed),
        ("work_unit_key", &unit.work_unit_key),
    ])
}

fn deriver_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    let snapshot = part.snapshot;
    let mut max_tokens = MetricFamily::new(
        "honcho_deriver_representation_batch_max_tokens",
        "Honcho's DERIVER_REPRESENTATION_BATCH_MAX_TOKENS, from the work-units envelope",
        MetricType::Gauge,
    );
    if let Some(value) = snapshot.batch_max_tokens {
        max_tokens.push(Vec::new(), value as f64);
    }
    let mut flush = MetricFamily::new(
        "honcho_deriver_flush_enabled",
        "1 if Honcho's DERIVER_FLUSH_ENABLED is on (nothing is ever stalled), from the work-units envelope",
        MetricType::Gauge,
    );
    if let Some(value) = snapshot.flush_enabled {
        flush.push(Vec::new(), f64::from(u8::from(value)));
    }
    global_only(part, &mut [&mut max_tokens, &mut flush]);
    families.extend([max_tokens, flush]);
}

/// Drops the samples of exporter-wide families from a part that does not carry them.
fn global_only(part: &Part<'_>, families: &mut [&mut MetricFamily]) {
    if !part.global {
        for family in families {
            family.samples.clear();
        }
    }
}

fn exporter_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    let snapshot = part.snapshot;
    let stats = &snapshot.exporter;
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
    let mut workspaces = MetricFamily::new(
        "honcho_exporter_workspaces",
        "Workspaces polled",
        MetricType::Gauge,
    );
    workspaces.push(Vec::new(), snapshot.workspaces.len() as f64);
    let mut capped = MetricFamily::new(
        "honcho_exporter_series_capped",
        "Series not exported because of a cap (session_items: sessions folded into __other__; work_unit_detail: problem units beyond the detail limit), summed over polls",
        MetricType::Counter,
    );
    for family in ["session_items", "work_unit_detail"] {
        capped.push(
            labels(&[("family", family)]),
            *stats.capped.get(family).unwrap_or(&0) as f64,
        );
    }
    let mut build = MetricFamily::new(
        "honcho_exporter_build",
        "The exporter's version and the revision it was built from",
        MetricType::Info,
    );
    build.push(
        labels(&[("version", crate::VERSION), ("revision", crate::REVISION)]),
        1.0,
    );
    if let Some(rejected) = &stats.token_reload_errors {
        let mut token = MetricFamily::new(
            "honcho_exporter_token_reload_errors",
            "Changes of the Honcho token file that were not used, by reason (unreadable, empty, invalid): the previous token stays in use. Each version of the file counts once",
            MetricType::Counter,
        );
        for (reason, count) in rejected {
            token.push(labels(&[("reason", reason)]), *count as f64);
        }
        global_only(part, &mut [&mut token]);
        families.push(token);
    }
    let mut postgres_families = postgres_families(snapshot);
    global_only(part, &mut postgres_families.iter_mut().collect::<Vec<_>>());
    global_only(
        part,
        &mut [
            &mut duration,
            &mut interval,
            &mut cycles,
            &mut requests,
            &mut errors,
            &mut features,
            &mut generation,
            &mut workspaces,
            &mut capped,
            &mut build,
        ],
    );
    families.extend([
        up,
        last_success,
        duration,
        interval,
        cycles,
        requests,
        errors,
        features,
        generation,
        workspaces,
        capped,
        build,
    ]);
    families.extend(postgres_families);
}

/// The source in use, and the database source's own numbers.
fn postgres_families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    let postgres = snapshot.exporter.postgres.as_ref();
    let mut source = MetricFamily::new(
        "honcho_exporter_source",
        "Where the queue numbers come from: api (Honcho's HTTP API) or postgres (Honcho's database)",
        MetricType::Gauge,
    );
    for name in ["api", "postgres"] {
        let in_use = (name == "postgres") == postgres.is_some();
        source.push(labels(&[("source", name)]), f64::from(u8::from(in_use)));
    }
    let mut database_time = MetricFamily::new(
        "honcho_exporter_postgres_query_duration_seconds",
        "Time the last successful database cycle spent waiting on Honcho's database (one read-only transaction over all workspaces)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut mapping_time = MetricFamily::new(
        "honcho_exporter_postgres_mapping_duration_seconds",
        "Time the last successful database cycle spent in the exporter mapping rows onto metrics",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut revision = MetricFamily::new(
        "honcho_exporter_postgres_schema",
        "Honcho's schema revision (alembic_version) as last checked, and the Honcho it belongs to (unknown: columns checked, revision not known)",
        MetricType::Info,
    );
    if let Some(stats) = postgres {
        if let Some(value) = stats.database_time {
            database_time.push(Vec::new(), value.as_secs_f64());
        }
        if let Some(value) = stats.mapping_time {
            mapping_time.push(Vec::new(), value.as_secs_f64());
        }
        if let Some(value) = &stats.schema_revision {
            let honcho = crate::postgres::queries::honcho_of_revision(value).unwrap_or("unknown");
            revision.push(labels(&[("revision", value), ("honcho", honcho)]), 1.0);
        }
    }
    vec![source, database_time, mapping_time, revision]
}

/// What is computed at scrape time: ages. Each sample's value is the Unix time its age is
/// measured from; a scrape at `now` writes [`age`]`(now, value)` instead.
pub fn age_families(part: &Part<'_>) -> Vec<MetricFamily> {
    let mut oldest_age = MetricFamily::new(
        "honcho_queue_oldest_item_age_seconds",
        "Age at scrape time of the oldest pending item among the work units in each task type and state",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut unit_age = MetricFamily::new(
        "honcho_queue_work_unit_age_seconds",
        "Age at scrape time of the oldest pending item of this problem work unit (top problem units: overdue, stalled, in progress; oldest first)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut walk_age = MetricFamily::new(
        "honcho_exporter_walk_age_seconds",
        "Age at scrape time of the last complete work-units walk of the workspace, whose per-state counts are served (a large backlog is walked less often, see poll.duty_factor)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    for &(workspace, data) in &part.workspaces {
        add_ages(workspace, data, &mut oldest_age, &mut unit_age);
        if let Some((finished_at, _)) = data.last_complete_walk {
            walk_age.push(labels(&[("workspace", workspace)]), finished_at);
        }
    }
    vec![oldest_age, unit_age, walk_age]
}

/// [`age_families`] of a whole snapshot with the ages at `now` filled in.
pub fn scrape_families(snapshot: &Snapshot, now: f64) -> Vec<MetricFamily> {
    let mut families = age_families(&Part::whole(snapshot));
    for family in &mut families {
        for sample in &mut family.samples {
            sample.value = age(now, sample.value);
        }
    }
    families
}

fn add_ages(
    workspace: &str,
    data: &WorkspaceSnapshot,
    oldest_age: &mut MetricFamily,
    unit_age: &mut MetricFamily,
) {
    let Some(aggregate) = &data.work_units else {
        return;
    };
    for task_type in TaskType::ALL {
        for state in UnitState::ALL {
            if let Some(timestamp) = aggregate.cell(task_type, state).oldest_item_timestamp {
                oldest_age.push(
                    labels(&[
                        ("workspace", workspace),
                        ("task_type", task_type.as_str()),
                        ("state", state.as_str()),
                    ]),
                    timestamp,
                );
            }
        }
    }
    for unit in &aggregate.detail {
        unit_age.push(detail_labels(workspace, unit), unit.oldest_item_timestamp);
    }
}

/// Seconds from `timestamp` to `now`, never negative (clock skew), to the millisecond.
pub fn age(now: f64, timestamp: f64) -> f64 {
    age_millis(now, timestamp) / 1000.0
}

/// [`age`] in whole milliseconds (an integral f64).
pub fn age_millis(now: f64, timestamp: f64) -> f64 {
    ((now - timestamp).max(0.0) * 1000.0).round()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{self, Format};

    fn rendered(snapshot: &Snapshot) -> String {
        let mut out = Vec::new();
        exposition::render(&poll_families(snapshot), Format::Text, &mut out);
        String::from_utf8(out).expect("UTF-8 exposition")
    }

    #[test]
    fn token_reload_errors_are_exported_by_reason_only_with_a_token_file() {
        let mut snapshot = Snapshot::default();
        assert!(!rendered(&snapshot).contains("token_reload_errors"));
        snapshot.exporter.token_reload_errors = Some(std::collections::BTreeMap::from([
            ("empty", 2),
            ("invalid", 0),
            ("unreadable", 1),
        ]));
        let text = rendered(&snapshot);
        for line in [
            "# TYPE honcho_exporter_token_reload_errors_total counter",
            "honcho_exporter_token_reload_errors_total{reason=\"empty\"} 2",
            "honcho_exporter_token_reload_errors_total{reason=\"invalid\"} 0",
            "honcho_exporter_token_reload_errors_total{reason=\"unreadable\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}

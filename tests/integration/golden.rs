//! Golden exposition files for fixture-backed scenarios (generations A, B, C, and C with flush
//! on), built by the pure path (fixture bodies → snapshot → families → exposition) at a fixed
//! time, so the files are byte-stable. Each is accepted by Python `prometheus_client`'s strict
//! OpenMetrics parser and by `promtool check metrics`, and the sums the design promises hold.
//!
//! Regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test --test integration golden`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use honcho_exporter::exposition::{self, Format};
use honcho_exporter::families;
use honcho_exporter::honcho::Endpoint;
use honcho_exporter::honcho::types::{QueueStatus, WorkUnitsPage};
use honcho_exporter::snapshot::{
    EndpointHealth, ExporterStats, Generation, Snapshot, WorkUnitAggregator, WorkspaceSnapshot,
    summarize_status,
};

use crate::util::{data_dir, fixture, parse_samples, select, sum};
use crate::validators::{assert_valid_openmetrics, assert_valid_text};

/// 2026-11-22T03:28:00Z, just after the fixtures were recorded.
const RECORDED_AT: f64 = 1_795_318_080.0;
const OVERDUE_AFTER: Duration = Duration::from_secs(1815);

struct WorkspaceFixtures {
    name: &'static str,
    status: &'static str,
    pages: &'static [&'static str],
    scopes: &'static [(&'static str, &'static str)],
}

fn up(at: f64) -> EndpointHealth {
    EndpointHealth {
        up: true,
        last_success: Some(at),
    }
}

fn build(generation: Generation, workspaces: &[WorkspaceFixtures]) -> Snapshot {
    let mut snapshot = Snapshot {
        taken_at: RECORDED_AT,
        exporter: ExporterStats {
            poll_duration: Some(Duration::from_millis(250)),
            poll_interval: Duration::from_secs(15),
            poll_cycles: 1,
            discovery: Some(up(RECORDED_AT - 1.0)),
            generation: Some(generation),
            status_split: Some(generation == Generation::C),
            work_units_available: Some(generation == Generation::C),
            requests: BTreeMap::from([
                ((Endpoint::Discovery, "200".to_string()), 1),
                ((Endpoint::Status, "200".to_string()), 4),
            ]),
            errors: BTreeMap::from([((Endpoint::Status, "timeout"), 1)]),
            ..ExporterStats::default()
        },
        ..Snapshot::default()
    };
    for workspace in workspaces {
        let status: QueueStatus =
            serde_json::from_slice(&fixture(workspace.status)).expect("status fixture parses");
        let summary = summarize_status(status, 2);
        let mut data = WorkspaceSnapshot::default();
        data.health.insert(Endpoint::Status, up(RECORDED_AT - 1.0));
        if !workspace.pages.is_empty() {
            let wanted: HashSet<String> = summary
                .sessions
                .iter()
                .map(|row| row.session_id.clone())
                .collect();
            let mut aggregator = WorkUnitAggregator::new(RECORDED_AT, OVERDUE_AFTER, 3, wanted);
            for page in workspace.pages {
                let body = fixture(page);
                let parsed: WorkUnitsPage<'_> =
                    serde_json::from_slice(&body).expect("page fixture parses");
                data.units_listed.get_or_insert(parsed.total);
                aggregator.add_page(&parsed);
            }
            data.last_complete_walk = Some((RECORDED_AT - 1.0, Duration::from_millis(120)));
            let aggregate = aggregator.finish();
            snapshot.batch_max_tokens = aggregate.batch_max_tokens;
            snapshot.flush_enabled = aggregate.flush_enabled;
            data.work_units = Some(aggregate);
            data.health
                .insert(Endpoint::WorkUnits, up(RECORDED_AT - 1.0));
        }
        for (scope, file) in workspace.scopes {
            let status: QueueStatus =
                serde_json::from_slice(&fixture(file)).expect("scope fixture parses");
            data.scopes.insert(scope.to_string(), status.counts);
        }
        if !workspace.scopes.is_empty() {
            data.health.insert(Endpoint::Scope, up(RECORDED_AT - 1.0));
        }
        snapshot
            .exporter
            .capped
            .insert("session_items", summary.capped_sessions);
        data.status = Some(summary);
        snapshot.workspaces.insert(workspace.name.to_string(), data);
    }
    snapshot
}

fn render(snapshot: &Snapshot, format: Format) -> String {
    let mut body = Vec::new();
    exposition::render(&families::poll_families(snapshot), format, &mut body);
    exposition::render(
        &families::scrape_families(snapshot, RECORDED_AT + 20.0),
        format,
        &mut body,
    );
    exposition::finish(format, &mut body);
    String::from_utf8(body).expect("exposition is UTF-8")
}

fn check_golden(name: &str, actual: &str) {
    let path = data_dir().join("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let first_difference = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the rendered output at line {}:\n  golden: {:?}\n  actual: {:?}\n(run with UPDATE_GOLDEN=1 if the change is intended)",
            path.display(),
            first_difference + 1,
            expected.lines().nth(first_difference),
            actual.lines().nth(first_difference)
        );
    }
}

/// The exporter reads its token from a file (one change of it was empty and kept the old token).
fn with_token_file(mut snapshot: Snapshot) -> Snapshot {
    snapshot.exporter.token_reload_errors = Some(BTreeMap::from([
        ("empty", 1),
        ("invalid", 0),
        ("unreadable", 0),
    ]));
    snapshot
}

fn scenario(name: &str) -> Snapshot {
    match name {
        "generation_c" => with_token_file(build(
            Generation::C,
            &[
                WorkspaceFixtures {
                    name: "acme-support",
                    status: "dev-1790/queue-status__acme-support.json",
                    pages: &["dev-1790/work-units__acme-support.json"],
                    scopes: &[],
                },
                WorkspaceFixtures {
                    name: "globex-research",
                    status: "dev-1790/queue-status__globex-research.json",
                    pages: &[
                        "dev-1790/work-units__globex-research__size2_page1.json",
                        "dev-1790/work-units__globex-research__size2_page2.json",
                        "dev-1790/work-units__globex-research__size2_page3.json",
                    ],
                    scopes: &[
                        (
                            "dan_as_sender",
                            "dev-1790/queue-status__globex-research__sender_id=subject-dan.json",
                        ),
                        (
                            "interview_01",
                            "dev-1790/queue-status__globex-research__session_id=interview-01.json",
                        ),
                    ],
                },
                WorkspaceFixtures {
                    name: "initech-empty",
                    status: "dev-1790/queue-status__initech-empty.json",
                    pages: &["dev-1790/work-units__unknown-workspace.json"],
                    scopes: &[],
                },
                WorkspaceFixtures {
                    name: "umbrella-archive",
                    status: "dev-1790/queue-status__umbrella-archive.json",
                    pages: &["dev-1790/work-units__umbrella-archive.json"],
                    scopes: &[],
                },
            ],
        )),
        "generation_c_flush" => build(
            Generation::C,
            &[WorkspaceFixtures {
                name: "globex-research",
                status: "dev-1790-flush/queue-status__globex-research.json",
                pages: &["dev-1790-flush/work-units__globex-research.json"],
                scopes: &[],
            }],
        ),
        "generation_b" => build(
            Generation::B,
            &[
                WorkspaceFixtures {
                    name: "globex-research",
                    status: "main/queue-status__globex-research.json",
                    pages: &[],
                    scopes: &[(
                        "dan_as_sender",
                        "main/queue-status__globex-research__sender_id=subject-dan.json",
                    )],
                },
                WorkspaceFixtures {
                    name: "initech-empty",
                    status: "main/queue-status__unknown-workspace.json",
                    pages: &[],
                    scopes: &[],
                },
            ],
        ),
        "generation_a" => build(
            Generation::A,
            &[
                WorkspaceFixtures {
                    name: "acme-support",
                    status: "v2.5.1/deriver-status__acme-support.json",
                    pages: &[],
                    scopes: &[],
                },
                WorkspaceFixtures {
                    name: "globex-research",
                    status: "v2.5.1/deriver-status__globex-research.json",
                    pages: &[],
                    scopes: &[],
                },
            ],
        ),
        // The generation C numbers as the database source publishes them (its self-metrics
        // instead of the API's request counts).
        "postgres" => {
            let mut snapshot = scenario("generation_c");
            snapshot.exporter.requests = Default::default();
            snapshot.exporter.discovery = None;
            snapshot.exporter.errors = [
                ((honcho_exporter::honcho::Endpoint::Postgres, "timeout"), 2),
                ((honcho_exporter::honcho::Endpoint::Postgres, "schema"), 1),
            ]
            .into_iter()
            .collect();
            for workspace in snapshot.workspaces.values_mut() {
                workspace.health.clear();
            }
            snapshot.exporter.postgres = Some(honcho_exporter::snapshot::PostgresStats {
                health: honcho_exporter::snapshot::EndpointHealth {
                    up: true,
                    last_success: Some(snapshot.taken_at),
                },
                database_time: Some(std::time::Duration::from_millis(640)),
                mapping_time: Some(std::time::Duration::from_millis(85)),
                schema_revision: Some("e4eba9cfaa6f".to_string()),
                honcho_version: honcho_exporter::source::postgres::queries::honcho_of_revision(
                    "e4eba9cfaa6f",
                ),
                password_reload_errors: None,
            });
            snapshot
        }
        other => panic!("unknown scenario {other}"),
    }
}

const SCENARIOS: [&str; 5] = [
    "generation_a",
    "generation_b",
    "generation_c",
    "generation_c_flush",
    "postgres",
];

#[test]
fn golden_files_match_and_pass_both_strict_parsers() {
    for name in SCENARIOS {
        let snapshot = scenario(name);
        let openmetrics = render(&snapshot, Format::OpenMetrics);
        let text = render(&snapshot, Format::Text);
        check_golden(&format!("{name}.om.txt"), &openmetrics);
        check_golden(&format!("{name}.prom"), &text);
        assert_valid_openmetrics(openmetrics.as_bytes());
        assert_valid_text(text.as_bytes());
    }
}

#[test]
fn item_states_sum_to_the_api_total_in_every_generation() {
    for name in SCENARIOS {
        let samples = parse_samples(&render(&scenario(name), Format::Text));
        for (workspace, data) in &scenario(name).workspaces {
            let total = data.status.as_ref().expect("status").counts.total as f64;
            assert_eq!(
                sum(&samples, "honcho_queue_items", &[("workspace", workspace)]),
                total,
                "{name}/{workspace}"
            );
        }
    }
}

#[test]
fn session_series_sum_to_the_workspace_series_per_state() {
    for name in SCENARIOS {
        let samples = parse_samples(&render(&scenario(name), Format::Text));
        for sample in select(&samples, "honcho_queue_items", &[]) {
            let workspace = &sample.labels["workspace"];
            let state = &sample.labels["state"];
            let sessions = sum(
                &samples,
                "honcho_queue_session_items",
                &[("workspace", workspace), ("state", state)],
            );
            assert_eq!(
                sessions, sample.value,
                "{name}/{workspace}/{state}: sessions + __other__ + __none__"
            );
        }
    }
}

#[test]
fn generation_b_has_no_pending_stalled_series_at_all() {
    for name in ["generation_a", "generation_b"] {
        let samples = parse_samples(&render(&scenario(name), Format::Text));
        assert!(
            select(
                &samples,
                "honcho_queue_items",
                &[("state", "pending_stalled")]
            )
            .is_empty(),
            "{name}"
        );
        assert!(
            !select(&samples, "honcho_queue_items", &[("state", "pending")]).is_empty(),
            "{name}"
        );
        assert!(
            select(&samples, "honcho_queue_work_units", &[]).is_empty(),
            "{name}: no walk, no unit series"
        );
    }
}

#[test]
fn generation_c_reports_the_recorded_split_and_unit_states() {
    let samples = parse_samples(&render(&scenario("generation_c"), Format::Text));
    let globex = [("workspace", "globex-research")];
    let value = |name: &str, extra: &[(&str, &str)]| {
        let mut matching = globex.to_vec();
        matching.extend_from_slice(extra);
        sum(&samples, name, &matching)
    };
    assert_eq!(
        value("honcho_queue_items", &[("state", "pending_stalled")]),
        21.0
    );
    assert_eq!(
        value("honcho_queue_items", &[("state", "pending_ready")]),
        2.0
    );
    assert_eq!(
        value(
            "honcho_queue_work_units",
            &[("task_type", "representation"), ("state", "overdue")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "honcho_queue_work_units",
            &[("task_type", "representation"), ("state", "stalled")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "honcho_queue_tokens_until_threshold",
            &[("task_type", "representation")]
        ),
        8.0
    );
    assert_eq!(
        value("honcho_queue_scope_items", &[("scope", "dan_as_sender")]),
        18.0
    );
    // Zero-filled: every task type × state exists for each walked workspace, even the empty one.
    let empty = select(
        &samples,
        "honcho_queue_work_units",
        &[("workspace", "initech-empty")],
    );
    assert_eq!(empty.len(), 12, "3 task types × 4 states");
    assert!(empty.iter().all(|sample| sample.value == 0.0));
    // The session id → name mapping comes from the walk.
    let info = select(
        &samples,
        "honcho_queue_session_info",
        &[("session_id", "tJhLMX6-Pf-uO64KP3wK7")],
    );
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["session_name"], "interview-01");
    // Per-unit detail: capped at 3 per workspace, overdue first.
    let detail = select(&samples, "honcho_queue_work_unit_age_seconds", &globex);
    assert_eq!(detail.len(), 3);
    let overdue = select(
        &samples,
        "honcho_queue_work_unit_age_seconds",
        &[("state", "overdue")],
    );
    assert_eq!(overdue[0].labels["session_name"], "interview-03");
}

#[test]
fn flush_on_means_nothing_stalled() {
    let samples = parse_samples(&render(&scenario("generation_c_flush"), Format::Text));
    assert_eq!(
        sum(
            &samples,
            "honcho_queue_items",
            &[("state", "pending_stalled")]
        ),
        0.0
    );
    assert_eq!(
        sum(&samples, "honcho_queue_work_units", &[("state", "stalled")]),
        0.0
    );
    assert_eq!(
        sum(&samples, "honcho_queue_work_units", &[("state", "overdue")]),
        0.0
    );
    assert_eq!(sum(&samples, "honcho_deriver_flush_enabled", &[]), 1.0);
    assert!(select(&samples, "honcho_queue_tokens_until_threshold", &[]).is_empty());
}

#[test]
fn the_exported_metric_list_for_dashboards_matches_what_the_exporter_exports() {
    // dashboards/exported-metrics.txt is what the dashboard and rule linters check against.
    let mut exported: BTreeMap<String, ()> = BTreeMap::new();
    for name in SCENARIOS {
        for sample in parse_samples(&render(&scenario(name), Format::Text)) {
            exported.insert(sample.name, ());
        }
    }
    // The verdict family is rendered from the publication's verdicts, after the poll families.
    exported.insert(honcho_exporter::families::VERDICT_FAMILY.to_string(), ());
    let mut process = Vec::new();
    exposition::render(
        &honcho_exporter::process::process_families(),
        Format::Text,
        &mut process,
    );
    for sample in parse_samples(&String::from_utf8(process).expect("UTF-8")) {
        exported.insert(sample.name, ());
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/exported-metrics.txt");
    let listed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let listed: BTreeMap<String, ()> = listed
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| (line.to_string(), ()))
        .collect();
    let missing: Vec<_> = exported
        .keys()
        .filter(|name| !listed.contains_key(*name))
        .collect();
    let extra: Vec<_> = listed
        .keys()
        .filter(|name| !exported.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{}: missing {missing:?}, not exported {extra:?}",
        path.display()
    );
}

#[test]
fn no_label_of_ours_is_named_like_a_target_label() {
    // Prometheus sets `job` and `instance`; prometheus-operator's ServiceMonitor adds
    // `endpoint`, `namespace`, `pod`, `service`, `container`. With the default
    // `honorLabels: false` a scraped label of the same name is renamed `exported_<name>`, and
    // every rule and panel matching it breaks (our `endpoint` became `upstream` for this reason).
    const TARGET_LABELS: [&str; 7] = [
        "job",
        "instance",
        "endpoint",
        "namespace",
        "pod",
        "service",
        "container",
    ];
    let mut seen = 0;
    for name in SCENARIOS {
        for sample in parse_samples(&render(&scenario(name), Format::Text)) {
            for label in sample.labels.keys() {
                seen += 1;
                assert!(
                    !TARGET_LABELS.contains(&label.as_str()),
                    "{} carries the label `{label}`, which a scrape target also sets",
                    sample.name
                );
            }
        }
    }
    assert!(seen > 0, "no labelled sample rendered");
    assert_eq!(families::UPSTREAM_LABEL, "upstream");
    let upstream = parse_samples(&render(&scenario("generation_c"), Format::Text));
    assert!(
        !select(&upstream, "honcho_exporter_up", &[("upstream", "status")]).is_empty(),
        "honcho_exporter_up{{upstream=\"status\"}} missing"
    );
}

//! The alerts' live proof: every alert of `deploy/prometheus/honcho-exporter.rules.yml`
//! reaches `firing` in the scenario it is written for, none fires for a healthy Honcho, a real
//! Alertmanager (Debian's `prometheus-alertmanager`) running the shipped
//! `deploy/alertmanager/alertmanager.yml` sends exactly the expected notifications per scenario
//! (to a webhook receiver in this test) and inhibits the ones its `inhibit_rules` cover, and every
//! panel query of `dashboards/*.json` returns data for the scenario it is meant for, all on ONE
//! real Prometheus (Debian's `prometheus`) scraping in-process exporters that poll in-process
//! simulated Honchos over loopback. Each scenario is its own `cluster` target label, the label the
//! shipped Alertmanager config groups and inhibits on, so scenarios never inhibit each other.
//!
//! How it fits in a minute or two without lowering the alert *thresholds*: each evolving
//! simulator starts its model [`SCENARIO_HISTORY`] in the past (`Simulator::new_at`), so when
//! Prometheus starts watching, the deriver has already been down for an hour, the hung unit has
//! been in progress for 80 minutes and the stranded units are long overdue. Ages are wall-clock
//! in the simulator, so the default 3600 s age thresholds and the exporter's default
//! `--classify.overdue-after` (1800 s + one poll interval) are used as shipped. Only the `for:`
//! durations and the windows are lowered, through the `# param:` rewrite of
//! `deploy/prometheus/e2e-overrides.md` ([`E2E_OVERRIDES`] says why for each). The Alertmanager
//! config is rewritten only for the receivers' URL and the group timings
//! ([`alertmanager_config_for_test`]).
//!
//! Owns: the scenario ↔ alert, scenario ↔ notification and panel ↔ scenario tables of the live
//! test, the Rust side of the `# param:` rewrite, the test's webhook receiver and its stand-in for
//! Honcho's deriver `/metrics`. Must not edit the shipped rules, Alertmanager config or
//! dashboards (it reads them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use honcho_exporter::app::Exporter;
use honcho_exporter::config::{Scope, Secret, Settings, TokenSource};
use honcho_sim::{Generation, Scale, Scenario, SimAuth, Simulator, SimulatorConfig};
use serde_json::Value;

use crate::end_to_end::{PrometheusProcess, free_port, query_until, start_prometheus, start_ready};

/// How long each evolving scenario has been running before the test looks at it.
const SCENARIO_HISTORY: Duration = Duration::from_secs(3600);

/// The exporters' poll interval (and Prometheus' scrape and evaluation interval).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Every expected alert must fire within this long after Prometheus starts (typical: ~30 s).
const FIRING_DEADLINE: Duration = Duration::from_secs(150);

/// Prometheus must have watched the healthy scenario at least this long before its silence is
/// checked: the longest lowered `for:` (15 s) plus the ~5 s before the first sample, with margin.
const MIN_OBSERVATION: Duration = Duration::from_secs(45);

/// After every expected alert fired and every expected notification arrived, how long the test
/// keeps listening: several group_wait periods of the rewritten Alertmanager config, so that a
/// notification an inhibition failed to stop would arrive.
const NOTIFICATION_SETTLE: Duration = Duration::from_secs(6);

/// The admin token of the auth-on simulator; its exporter sends another one.
const RIGHT_TOKEN: &str = "e2e-admin-token";

/// One `# param:` override of the rules file.
struct ParamOverride {
    /// `<Alert>.<name>`, as in the marker comment.
    key: &'static str,
    /// The replacement (a number or a Prometheus duration).
    value: &'static str,
}

/// The lowered rule parameters of the live test (defaults in `deploy/prometheus/README.md`).
/// Thresholds stay at their defaults: the scenarios' history reaches them.
const E2E_OVERRIDES: &[ParamOverride] = &[
    // `for:` durations: minutes in production, seconds here; 1 s scrapes and evaluations give
    // several samples within each.
    ParamOverride {
        key: "HonchoExporterDown.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoUnauthorized.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoUnreachable.for",
        value: "5s",
    },
    // Longer than HonchoUnreachable's, as in production (5m vs 10m is the other way round, but
    // there the exporter keeps failing for hours): the inhibiting alert must reach Alertmanager
    // before the group of the inhibited one is flushed.
    ParamOverride {
        key: "HonchoExporterDataStale.for",
        value: "15s",
    },
    // Several polls with ready work and nothing in progress.
    ParamOverride {
        key: "HonchoDeriverNotProcessing.for",
        value: "10s",
    },
    // 20 s = 20 simulated minutes of a healthy deriver, which completes work every few seconds.
    ParamOverride {
        key: "HonchoDeriverIdle.window",
        value: "20s",
    },
    ParamOverride {
        key: "HonchoDeriverIdle.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoDeriverSilentFailure.window",
        value: "10s",
    },
    ParamOverride {
        key: "HonchoDeriverSilentFailure.for",
        value: "5s",
    },
    // Half windows of 15 s (15 simulated minutes): the healthy backlog drains within them.
    ParamOverride {
        key: "HonchoBacklogLagging.window",
        value: "30s",
    },
    ParamOverride {
        key: "HonchoBacklogLagging.half_window",
        value: "15s",
    },
    ParamOverride {
        key: "HonchoBacklogLagging.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoWorkUnitsFeatureLost.for",
        value: "5s",
    },
    // 20 s, longer than HonchoDeriverNotProcessing's 10 s: in deriver_down these fire too and
    // must arrive at Alertmanager after their inhibitor.
    ParamOverride {
        key: "HonchoWorkUnitsOverdue.for",
        value: "20s",
    },
    ParamOverride {
        key: "HonchoOldestPendingItemTooOld.for",
        value: "20s",
    },
    // 25 s = 25 simulated minutes: longer than a healthy dream (5-15 simulated minutes).
    ParamOverride {
        key: "HonchoWorkUnitInProgressTooLong.window",
        value: "25s",
    },
    ParamOverride {
        key: "HonchoWorkUnitInProgressTooLong.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoExporterWalkTruncated.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoExporterSeriesCapped.for",
        value: "5s",
    },
];

/// The repository root.
fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A simulated Honcho serving on `127.0.0.1`, started with [`SCENARIO_HISTORY`] of history.
struct RunningHoncho {
    /// The simulator (truth for the workspace names).
    simulator: Simulator,
    /// `http://127.0.0.1:PORT`.
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningHoncho {
    async fn start(scenario: Scenario, auth: Option<SimAuth>) -> RunningHoncho {
        let config = SimulatorConfig {
            generation: Generation::C,
            scenario,
            // Seed 7 and this scale: the healthy backlog drains within HonchoBacklogLagging's
            // half window (see E2E_OVERRIDES) while deriver_down's only grows.
            seed: 7,
            scale: Scale {
                workspaces: 2,
                sessions_per_workspace: 3,
                work_units_per_workspace: 4,
            },
            // A simulated minute per second: arrivals and processing, not ages.
            speed: 60.0,
            batch_max_tokens: 200,
            flush_enabled: false,
            auth,
            sizes: Vec::new(),
        };
        let simulator = Simulator::new_at(config, SystemTime::now() - SCENARIO_HISTORY);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the simulator");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(simulator.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        RunningHoncho {
            simulator,
            url,
            stop,
            task,
        }
    }

    /// Stops serving (open connections are cut, new ones refused) and waits for the server.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Exporter settings for the live test: 1 s polls and the defaults that follow the interval
/// (max staleness 3 intervals, overdue after 1800 s + 1 interval), as `--poll.interval 1s` gives.
fn live_settings(url: &str) -> Settings {
    let mut settings = crate::end_to_end::test_settings(url);
    settings.poll.interval = POLL_INTERVAL;
    settings.poll.max_staleness = POLL_INTERVAL * 3;
    settings.poll.timeout = Duration::from_secs(5);
    settings.classify.overdue_after = Duration::from_secs(1800) + POLL_INTERVAL;
    settings
}

/// One scrape target of the live Prometheus.
struct Target {
    /// The `cluster` target label: the scenario.
    scenario: &'static str,
    /// `127.0.0.1:PORT`.
    address: String,
}

/// (alert, scenario) pairs that must reach `firing`.
const EXPECTED: &[(&str, &str)] = &[
    ("HonchoExporterDown", "exporter_down"),
    ("HonchoUnauthorized", "unauthorized"),
    ("HonchoUnreachable", "honcho_stopped"),
    ("HonchoExporterDataStale", "honcho_stopped"),
    ("HonchoDeriverNotProcessing", "deriver_down"),
    ("HonchoDeriverNotProcessing", "deriver_wedged"),
    ("HonchoDeriverIdle", "deriver_down"),
    ("HonchoDeriverSilentFailure", "silent_failure"),
    ("HonchoOldestPendingItemTooOld", "deriver_down"),
    ("HonchoBacklogLagging", "deriver_down"),
    ("HonchoWorkUnitsFeatureLost", "feature_lost"),
    ("HonchoWorkUnitsOverdue", "stall_then_overdue"),
    ("HonchoWorkUnitInProgressTooLong", "hung_in_progress"),
    ("HonchoExporterWalkTruncated", "walk_truncated"),
    ("HonchoExporterSeriesCapped", "series_capped"),
];

/// Alerts that may also fire in a scenario because they are true there, too. Anything else
/// firing at any time of the run fails the test (so `healthy` must stay silent).
const ALSO_TRUE: &[(&str, &str)] = &[
    // A wedged deriver is seen exactly like a down one: nothing is claimed for an hour.
    ("HonchoDeriverIdle", "deriver_wedged"),
    ("HonchoOldestPendingItemTooOld", "deriver_wedged"),
    ("HonchoBacklogLagging", "deriver_wedged"),
    // A dead deriver also leaves stalled units unflushed past the batch max age.
    ("HonchoWorkUnitsOverdue", "deriver_down"),
    ("HonchoWorkUnitsOverdue", "deriver_wedged"),
    // Ready items of the stranded workspace may be old too.
    ("HonchoOldestPendingItemTooOld", "stall_then_overdue"),
];

/// (alert, scenario, receiver): the notifications Alertmanager must send, routed by severity
/// (critical → `honcho-pager`, warning and info → `honcho-tickets`). Any other firing
/// notification fails the test: everything else that fires is inhibited.
const NOTIFIED: &[(&str, &str, &str)] = &[
    ("HonchoExporterDown", "exporter_down", "honcho-pager"),
    ("HonchoUnauthorized", "unauthorized", "honcho-pager"),
    ("HonchoUnreachable", "honcho_stopped", "honcho-pager"),
    ("HonchoDeriverNotProcessing", "deriver_down", "honcho-pager"),
    (
        "HonchoDeriverNotProcessing",
        "deriver_wedged",
        "honcho-pager",
    ),
    (
        "HonchoDeriverSilentFailure",
        "silent_failure",
        "honcho-pager",
    ),
    (
        "HonchoWorkUnitsFeatureLost",
        "feature_lost",
        "honcho-tickets",
    ),
    (
        "HonchoWorkUnitsOverdue",
        "stall_then_overdue",
        "honcho-tickets",
    ),
    (
        "HonchoWorkUnitInProgressTooLong",
        "hung_in_progress",
        "honcho-tickets",
    ),
    (
        "HonchoExporterWalkTruncated",
        "walk_truncated",
        "honcho-tickets",
    ),
    (
        "HonchoExporterSeriesCapped",
        "series_capped",
        "honcho-tickets",
    ),
];

/// (alert, scenario): fires in Prometheus (in [`EXPECTED`]) and must NOT be notified, because
/// an `inhibit_rules` entry of the shipped Alertmanager config covers it.
const INHIBITED: &[(&str, &str)] = &[
    // HonchoUnreachable silences data-stale.
    ("HonchoExporterDataStale", "honcho_stopped"),
    // HonchoDeriverNotProcessing silences the all-generation twin, backlog and age alerts.
    ("HonchoDeriverIdle", "deriver_down"),
    ("HonchoBacklogLagging", "deriver_down"),
    ("HonchoOldestPendingItemTooOld", "deriver_down"),
];

/// A dashboard panel meant for a scenario other than `healthy` (the default).
struct PanelUse {
    /// The dashboard's `uid`.
    dashboard: &'static str,
    /// The panel's title.
    title: &'static str,
    /// The scenario whose exporter the panel is queried for.
    scenario: &'static str,
    /// A label value the first query's result must contain, showing what the panel is for.
    shows: Option<(&'static str, &'static str)>,
}

/// Panels meant for a specific scenario; every other panel is queried for `healthy`.
const PANEL_SCENARIOS: &[PanelUse] = &[
    PanelUse {
        dashboard: "honcho-queue-overview",
        title: "Oldest ready item age",
        scenario: "deriver_down",
        shows: None,
    },
    PanelUse {
        dashboard: "honcho-queue-overview",
        title: "Max ready age",
        scenario: "deriver_down",
        shows: None,
    },
    PanelUse {
        dashboard: "honcho-queue-overview",
        title: "Oldest stalled item age",
        scenario: "stall_then_overdue",
        shows: None,
    },
    PanelUse {
        dashboard: "honcho-queue-overview",
        title: "Stalled vs overdue work units",
        scenario: "stall_then_overdue",
        shows: Some(("state", "overdue")),
    },
    PanelUse {
        dashboard: "honcho-queue-overview",
        title: "Work units in progress",
        scenario: "hung_in_progress",
        shows: None,
    },
    PanelUse {
        dashboard: "honcho-workspace",
        title: "Stuck work units",
        scenario: "stall_then_overdue",
        shows: Some(("state", "overdue")),
    },
    PanelUse {
        dashboard: "honcho-workspace",
        title: "Scope items by state",
        scenario: "healthy",
        shows: Some(("scope", "first-session")),
    },
    PanelUse {
        dashboard: "honcho-exporter",
        title: "Poll errors by reason",
        scenario: "unauthorized",
        shows: Some(("reason", "http_401")),
    },
    PanelUse {
        dashboard: "honcho-exporter",
        title: "Series dropped by caps",
        scenario: "series_capped",
        shows: Some(("family", "session_items")),
    },
    PanelUse {
        dashboard: "honcho-exporter",
        title: "Truncated work-units walks",
        scenario: "walk_truncated",
        shows: None,
    },
];

/// One instant query; the `data.result` array (empty when the query failed).
async fn instant(prometheus: &PrometheusProcess, query: &str) -> Vec<Value> {
    query_until(prometheus, query, Duration::ZERO, |_| true)
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Which scenario an alert series belongs to: its `cluster` target label. Every alert must
/// keep the target labels (operators route on `cluster`, `env`, … the same way), so a series
/// without it is reported as such and fails the test.
fn scenario_of(series: &Value) -> String {
    series["metric"]["cluster"].as_str().map_or_else(
        || format!("<no cluster target label: {}>", series["metric"]),
        str::to_owned,
    )
}

/// Every panel of a dashboard, rows' nested panels included.
fn panels_of(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack: Vec<Value> = dashboard["panels"].as_array().cloned().unwrap_or_default();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested.iter().cloned());
        }
        out.push(panel);
    }
    out
}

/// A panel query with the Grafana variables replaced for one scenario's exporter.
fn substitute(expr: &str, instance: &str, workspaces: &str) -> String {
    let instance_regex = regex::escape(instance).replace('\\', "\\\\");
    let query = expr
        .replace("$__rate_interval", "1m")
        .replace("$job", ".*")
        .replace("$instance", &instance_regex)
        .replace("$workspace", workspaces);
    let leftover = regex::Regex::new(r"\$\{?[A-Za-z_]").expect("valid regex");
    assert!(
        !leftover.is_match(&query),
        "a Grafana variable is left unsubstituted in: {query}"
    );
    query
}

#[test]
fn every_e2e_override_marks_a_line_of_the_shipped_rules() {
    let rules = std::fs::read_to_string(repo_path("deploy/prometheus/honcho-exporter.rules.yml"))
        .expect("read the rules");
    let overrides: Vec<(&str, &str)> = E2E_OVERRIDES.iter().map(|o| (o.key, o.value)).collect();
    let rewritten = crate::dashboards::apply_overrides(&rules, &overrides)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_ne!(rewritten, rules);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_fires_for_its_scenario_and_every_panel_has_data() {
    if !crate::util::require_tool("prometheus", "Debian package `prometheus`")
        || !crate::util::require_tool(
            "prometheus-alertmanager",
            "Debian package `prometheus-alertmanager`",
        )
    {
        return;
    }
    let run_start = Instant::now();
    let mut timeline: Vec<(f64, String)> = Vec::new();
    let mark = |timeline: &mut Vec<(f64, String)>, what: String| {
        timeline.push((run_start.elapsed().as_secs_f64(), what));
    };

    // Simulated Honchos, one per scenario.
    let healthy = RunningHoncho::start(Scenario::Healthy, None).await;
    let down = RunningHoncho::start(Scenario::DeriverDown, None).await;
    let wedged = RunningHoncho::start(Scenario::DeriverWedged, None).await;
    let overdue = RunningHoncho::start(Scenario::StallThenOverdue, None).await;
    let hung = RunningHoncho::start(Scenario::HungInProgress, None).await;
    let auth = SimAuth {
        admin_tokens: BTreeSet::from([RIGHT_TOKEN.to_owned()]),
        ..SimAuth::default()
    };
    let auth_on = RunningHoncho::start(Scenario::Healthy, Some(auth)).await;
    let doomed = RunningHoncho::start(Scenario::Healthy, None).await;
    // Generation C until Prometheus has seen its work-units feature, then downgraded to B.
    let downgraded = RunningHoncho::start(Scenario::Healthy, None).await;
    // Honcho's deriver /metrics (port 9090 in production) while every LLM call fails.
    let failing_deriver = FailingDeriverMetrics::start().await;

    // One exporter per scenario (three of them on the healthy Honcho, with other settings).
    let mut healthy_settings = live_settings(&healthy.url);
    healthy_settings.scopes = vec![Scope {
        name: "first-session".into(),
        workspaces: Vec::new(),
        observer_id: None,
        sender_id: None,
        session_id: Some("session-0001".into()),
    }];
    let mut truncating = live_settings(&healthy.url);
    truncating.work_units.page_size = 1;
    truncating.work_units.max_pages = 1;
    let mut capping = live_settings(&healthy.url);
    capping.sessions.max_per_workspace = 1;
    let mut unauthorized = live_settings(&auth_on.url);
    unauthorized.honcho.token = Some(TokenSource::Env(Secret::new("not-the-admin-token".into())));
    let exporter_settings: Vec<(&'static str, Settings)> = vec![
        ("healthy", healthy_settings),
        ("deriver_down", live_settings(&down.url)),
        ("deriver_wedged", live_settings(&wedged.url)),
        ("stall_then_overdue", live_settings(&overdue.url)),
        ("hung_in_progress", live_settings(&hung.url)),
        ("unauthorized", unauthorized),
        ("honcho_stopped", live_settings(&doomed.url)),
        ("feature_lost", live_settings(&downgraded.url)),
        ("walk_truncated", truncating),
        ("series_capped", capping),
    ];
    let mut exporters: Vec<Exporter> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for (scenario, settings) in exporter_settings {
        let (exporter, base) = start_ready(settings).await;
        targets.push(Target {
            scenario,
            address: base.trim_start_matches("http://").to_owned(),
        });
        exporters.push(exporter);
    }
    // Nobody listens there: HonchoExporterDown.
    targets.push(Target {
        scenario: "exporter_down",
        address: format!("127.0.0.1:{}", free_port()),
    });
    let by_instance: BTreeMap<String, &'static str> = targets
        .iter()
        .map(|target| (target.address.clone(), target.scenario))
        .collect();
    mark(
        &mut timeline,
        format!("{} exporters ready", exporters.len()),
    );

    // The shipped rules, rewritten with the e2e overrides, and one Prometheus for everything.
    let rules_dir = tempfile::tempdir().expect("temp dir");
    let rules_path = rules_dir.path().join("honcho-exporter.rules.yml");
    let shipped = std::fs::read_to_string(repo_path("deploy/prometheus/honcho-exporter.rules.yml"))
        .expect("read the rules");
    let overrides: Vec<(&str, &str)> = E2E_OVERRIDES.iter().map(|o| (o.key, o.value)).collect();
    let rewritten = crate::dashboards::apply_overrides(&shipped, &overrides)
        .unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(&rules_path, rewritten).expect("write the rewritten rules");
    // The test's webhook receiver and a real Alertmanager running the shipped config.
    let receiver = WebhookReceiver::start().await;
    let shipped_alertmanager =
        std::fs::read_to_string(repo_path("deploy/alertmanager/alertmanager.yml"))
            .expect("read the Alertmanager config");
    let alertmanager_config = alertmanager_config_for_test(&shipped_alertmanager, &receiver.url)
        .unwrap_or_else(|error| panic!("{error}"));
    let alertmanager = start_alertmanager(&alertmanager_config).await;
    mark(&mut timeline, "Alertmanager ready".into());
    let mut config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - '{}'\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n\
         scrape_configs:\n  - job_name: honcho-deriver\n    static_configs:\n\
         \x20     - targets: ['{}']\n        labels: {{cluster: silent_failure}}\n\
         \x20 - job_name: honcho_exporter\n    static_configs:\n",
        rules_path.display(),
        alertmanager.address,
        failing_deriver.address,
    );
    for target in &targets {
        config.push_str(&format!(
            "      - targets: ['{}']\n        labels: {{cluster: {}}}\n",
            target.address, target.scenario
        ));
    }
    let prometheus = start_prometheus(&config);
    let prometheus_start = Instant::now();
    mark(&mut timeline, "Prometheus started".into());

    // Watch the alerts; stop the doomed Honcho once Prometheus has seen its exporter healthy.
    let mut first_firing: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut doomed = Some(doomed);
    let mut downgrade_done = false;
    let mut notification_seen: BTreeSet<Notification> = BTreeSet::new();
    let mut last_new_firing: Option<Instant> = None;
    let deadline = prometheus_start + FIRING_DEADLINE;
    loop {
        for series in instant(&prometheus, "ALERTS{alertstate=\"firing\"}").await {
            let alert = series["metric"]["alertname"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let scenario = scenario_of(&series);
            if let std::collections::btree_map::Entry::Vacant(entry) =
                first_firing.entry((alert.clone(), scenario.clone()))
            {
                entry.insert(run_start.elapsed().as_secs_f64());
                mark(&mut timeline, format!("{alert} firing for {scenario}"));
            }
        }
        if doomed.is_some() {
            let seen_up = instant(
                &prometheus,
                "min(honcho_exporter_up{cluster=\"honcho_stopped\"}) == 1",
            )
            .await;
            if !seen_up.is_empty() {
                if let Some(honcho) = doomed.take() {
                    honcho.stop().await;
                }
                mark(&mut timeline, "honcho_stopped's Honcho stopped".into());
            }
        }
        if !downgrade_done {
            let seen_feature = instant(
                &prometheus,
                "honcho_exporter_feature_available{cluster=\"feature_lost\", feature=\"work_units\"} == 1",
            )
            .await;
            if !seen_feature.is_empty() {
                downgraded.simulator.set_generation(Generation::B);
                downgrade_done = true;
                mark(
                    &mut timeline,
                    "feature_lost's Honcho downgraded to B".into(),
                );
            }
        }
        let notified = receiver.firing();
        for notification in &notified {
            if notification_seen.insert(notification.clone()) {
                mark(
                    &mut timeline,
                    format!(
                        "notification: {} for {} to {}",
                        notification.alert, notification.scenario, notification.receiver
                    ),
                );
            }
        }
        let all_fired = EXPECTED.iter().all(|(alert, scenario)| {
            first_firing.contains_key(&((*alert).to_owned(), (*scenario).to_owned()))
        });
        let all_notified = NOTIFIED
            .iter()
            .all(|expected| notification_seen.iter().any(|seen| seen.matches(expected)));
        if all_fired && all_notified && last_new_firing.is_none() {
            last_new_firing = Some(Instant::now());
        }
        // After the last expected alert fired, a few group_wait periods for the notifications
        // an inhibition failed to stop to show up.
        let settled = last_new_firing.is_some_and(|at| at.elapsed() >= NOTIFICATION_SETTLE);
        if (settled && prometheus_start.elapsed() >= MIN_OBSERVATION) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing: Vec<String> = EXPECTED
        .iter()
        .filter(|(alert, scenario)| {
            !first_firing.contains_key(&((*alert).to_owned(), (*scenario).to_owned()))
        })
        .map(|(alert, scenario)| format!("{alert} for {scenario}"))
        .collect();

    // Everything that fired at any time of the run: only what is true in each scenario.
    let watched = prometheus_start.elapsed().as_secs() + 5;
    let ever = instant(
        &prometheus,
        &format!("max_over_time(ALERTS{{alertstate=\"firing\"}}[{watched}s])"),
    )
    .await;
    let ever_fired: BTreeSet<(String, String)> = ever
        .iter()
        .map(|series| {
            let alert = series["metric"]["alertname"].as_str().unwrap_or("");
            (scenario_of(series), alert.to_owned())
        })
        .collect();
    let allowed: BTreeSet<(&str, &str)> = EXPECTED.iter().chain(ALSO_TRUE).copied().collect();
    let unexpected: BTreeSet<String> = ever
        .iter()
        .filter_map(|series| {
            let alert = series["metric"]["alertname"].as_str().unwrap_or("");
            let scenario = scenario_of(series);
            (!allowed.contains(&(alert, scenario.as_str())))
                .then(|| format!("{alert} for {scenario}: {}", series["metric"]))
        })
        .collect();
    let healthy_now = instant(&prometheus, "ALERTS{cluster=\"healthy\"}").await;

    // Alertmanager: every expected notification arrived, at the receiver its severity routes
    // to; nothing else did (what fired and was not expected to notify was inhibited); and the
    // inhibited alerts really fired in Prometheus (else their absence proves nothing).
    let notifications = receiver.firing();
    let missing_notifications: Vec<String> = NOTIFIED
        .iter()
        .filter(|expected| !notifications.iter().any(|seen| seen.matches(expected)))
        .map(|(alert, scenario, to)| format!("{alert} for {scenario} to {to}"))
        .collect();
    let unexpected_notifications: BTreeSet<String> = notifications
        .iter()
        .filter(|seen| !NOTIFIED.iter().any(|expected| seen.matches(expected)))
        .map(|seen| format!("{} for {} to {}", seen.alert, seen.scenario, seen.receiver))
        .collect();
    let inhibited_not_fired: Vec<String> = INHIBITED
        .iter()
        .filter(|(alert, scenario)| {
            !ever_fired.contains(&((*scenario).to_owned(), (*alert).to_owned()))
        })
        .map(|(alert, scenario)| format!("{alert} for {scenario}"))
        .collect();
    let am_alerts = alertmanager.alerts().await;
    // ... and Alertmanager itself holds them as suppressed by an inhibition (it received them:
    // their silence at the receiver is the inhibition's doing, not a lost alert).
    let not_suppressed: Vec<String> = INHIBITED
        .iter()
        .filter(|(alert, scenario)| {
            !am_alerts
                .iter()
                .any(|(name, cluster, state, inhibited_by)| {
                    name == alert
                        && cluster == scenario
                        && state == "suppressed"
                        && *inhibited_by > 0
                })
        })
        .map(|(alert, scenario)| format!("{alert} for {scenario}"))
        .collect();

    // Dashboards: every panel query has data for its scenario (Honcho's own /metrics panels
    // must be empty: no Honcho /metrics is scraped here).
    let workspaces_of = |honcho: &RunningHoncho| -> Vec<String> {
        honcho
            .simulator
            .truth()
            .workspaces
            .keys()
            .cloned()
            .collect()
    };
    let scenario_workspaces: BTreeMap<&str, Vec<String>> = [
        ("healthy", workspaces_of(&healthy)),
        ("deriver_down", workspaces_of(&down)),
        ("stall_then_overdue", workspaces_of(&overdue)),
        ("hung_in_progress", workspaces_of(&hung)),
        ("unauthorized", Vec::new()),
        ("series_capped", workspaces_of(&healthy)),
        ("walk_truncated", workspaces_of(&healthy)),
    ]
    .into_iter()
    .collect();
    let by_scenario = targets_by_scenario(&by_instance);
    let mut panel_problems = Vec::new();
    let mut panels_checked = 0;
    let mut honcho_metrics_panels = Vec::new();
    let mut database_source_panels = Vec::new();
    let mut dashboard_files: Vec<PathBuf> = std::fs::read_dir(repo_path("dashboards"))
        .expect("read dashboards/")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    dashboard_files.sort();
    for file in &dashboard_files {
        let dashboard: Value = serde_json::from_slice(&std::fs::read(file).expect("read"))
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let uid = dashboard["uid"].as_str().unwrap_or("").to_owned();
        let single_workspace = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|variable| variable["name"] == "workspace" && variable["multi"] == false);
        for panel in panels_of(&dashboard) {
            let Some(targets) = panel["targets"].as_array() else {
                continue;
            };
            let title = panel["title"].as_str().unwrap_or("").to_owned();
            let needs_honcho_metrics = panel["description"]
                .as_str()
                .is_some_and(|d| d.contains("Needs Honcho's own /metrics"));
            // The live run's exporters use the API source; the database source's queries are
            // allowed to be empty here (tests/integration/postgres.rs covers that source).
            let database_source_only = panel["description"]
                .as_str()
                .is_some_and(|d| d.to_lowercase().contains("only with --source postgres"));
            let meant_for = PANEL_SCENARIOS
                .iter()
                .find(|panel_use| panel_use.dashboard == uid && panel_use.title == title);
            let scenario = meant_for.map_or("healthy", |panel_use| panel_use.scenario);
            let shows = meant_for.and_then(|panel_use| panel_use.shows);
            let instance = targets_address(&by_scenario, scenario);
            let names = scenario_workspaces
                .get(scenario)
                .cloned()
                .unwrap_or_default();
            let workspaces = if single_workspace {
                names.first().cloned().unwrap_or_default()
            } else {
                names.join("|")
            };
            for (index, target) in targets.iter().enumerate() {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                let query = substitute(expr, &instance, &workspaces);
                let result = instant(&prometheus, &query).await;
                panels_checked += 1;
                let name = format!("{uid} / {title} / {}", target["refId"]);
                if needs_honcho_metrics {
                    honcho_metrics_panels.push(name.clone());
                    if !result.is_empty() {
                        panel_problems.push(format!(
                            "{name}: needs Honcho's own /metrics, which is not scraped, yet returned {result:?}"
                        ));
                    }
                    continue;
                }
                if result.is_empty() && database_source_only {
                    database_source_panels.push(name.clone());
                    continue;
                }
                if result.is_empty() {
                    panel_problems.push(format!("{name} ({scenario}): no data for {query}"));
                    continue;
                }
                if let (0, Some((label, value))) = (index, shows)
                    && !result.iter().any(|series| series["metric"][label] == value)
                {
                    panel_problems.push(format!(
                        "{name} ({scenario}): no series with {label}=\"{value}\" in {result:?}"
                    ));
                }
            }
        }
    }

    // Timeline and the run time, then stop everything.
    println!("live alerts e2e timeline (seconds since the test started):");
    for (at, what) in &timeline {
        println!("  {at:7.1}  {what}");
    }
    println!("time to firing, per expected alert (seconds since the test started):");
    for (alert, scenario) in EXPECTED {
        match first_firing.get(&((*alert).to_owned(), (*scenario).to_owned())) {
            Some(at) => println!("  {at:7.1}  {alert} ({scenario})"),
            None => println!("    never  {alert} ({scenario})"),
        }
    }
    println!(
        "dashboards: {panels_checked} panel queries run; empty as expected (need Honcho's own /metrics): {honcho_metrics_panels:?}; (database source only): {database_source_panels:?}"
    );
    println!("fired during the run, per scenario:");
    for (scenario, alert) in &ever_fired {
        println!("  {scenario}: {alert}");
    }
    drop(prometheus);
    for exporter in exporters {
        exporter.stop().await;
    }
    for honcho in [healthy, down, wedged, overdue, hung, auth_on, downgraded] {
        honcho.stop().await;
    }
    if let Some(honcho) = doomed {
        honcho.stop().await;
    }
    println!("notifications received (firing):");
    for notification in &notifications {
        println!(
            "  {} for {} to {}",
            notification.alert, notification.scenario, notification.receiver
        );
    }
    let am_view: BTreeSet<&(String, String, String, usize)> = am_alerts.iter().collect();
    println!("Alertmanager's view at the end (alert, scenario: state, inhibitors):");
    for (alert, scenario, state, inhibitors) in am_view {
        println!("  {alert}, {scenario}: {state}, {inhibitors}");
    }
    drop(alertmanager);
    println!("total run time: {:.1} s", run_start.elapsed().as_secs_f64());

    assert!(missing.is_empty(), "alerts that never fired: {missing:?}");
    // The look-back query sees what the loop saw (else the silence check below proves nothing).
    for (alert, scenario) in EXPECTED {
        assert!(
            ever_fired.contains(&((*scenario).to_owned(), (*alert).to_owned())),
            "{alert} for {scenario} missing from the run's look-back: {ever_fired:?}"
        );
    }
    assert!(
        unexpected.is_empty(),
        "alerts fired where they are not true: {unexpected:?}"
    );
    assert!(
        missing_notifications.is_empty(),
        "Alertmanager never sent: {missing_notifications:?} (received: {notifications:?})"
    );
    assert!(
        unexpected_notifications.is_empty(),
        "Alertmanager sent notifications its inhibit rules should have stopped: {unexpected_notifications:?}"
    );
    assert!(
        not_suppressed.is_empty(),
        "Alertmanager does not hold these as inhibited: {not_suppressed:?} (its view: {am_alerts:?})"
    );
    assert!(
        inhibited_not_fired.is_empty(),
        "alerts meant to show an inhibition never fired in Prometheus: {inhibited_not_fired:?}"
    );
    assert!(
        healthy_now.is_empty(),
        "the healthy scenario has active alerts at the end: {healthy_now:?}"
    );
    assert!(
        honcho_metrics_panels.len() >= 2,
        "the deriver throughput panels were not found: {honcho_metrics_panels:?}"
    );
    assert!(
        panel_problems.is_empty(),
        "panel problems:\n{}",
        panel_problems.join("\n")
    );
}

/// scenario → its target's address.
fn targets_by_scenario(
    by_instance: &BTreeMap<String, &'static str>,
) -> BTreeMap<&'static str, String> {
    by_instance
        .iter()
        .map(|(address, scenario)| (*scenario, address.clone()))
        .collect()
}

/// The address of `scenario`'s exporter (panics on a scenario without one: a table typo).
fn targets_address(by_scenario: &BTreeMap<&'static str, String>, scenario: &str) -> String {
    by_scenario
        .get(scenario)
        .cloned()
        .unwrap_or_else(|| panic!("no exporter for scenario {scenario}"))
}

/// The shipped Alertmanager config with only what the test must change: every receiver's URL
/// points at the test's webhook receiver (the path is kept: it names the receiver), and the
/// group timings are seconds instead of minutes. Fails naming what it could not find: the
/// shipped config changed and the test would silently run with production values.
fn alertmanager_config_for_test(shipped: &str, receiver_url: &str) -> Result<String, String> {
    const REPLACEMENTS: [(&str, &str); 3] = [
        ("http://alert-receiver.example.com", ""),
        ("group_wait: 30s", "group_wait: 2s"),
        ("group_interval: 5m", "group_interval: 2s"),
    ];
    let mut config = shipped.to_owned();
    for (from, to) in REPLACEMENTS {
        if !config.contains(from) {
            return Err(format!(
                "deploy/alertmanager/alertmanager.yml no longer contains `{from}`: update the e2e rewrite"
            ));
        }
        let to = if to.is_empty() { receiver_url } else { to };
        config = config.replace(from, to);
    }
    Ok(config)
}

#[test]
fn the_alertmanager_rewrite_changes_only_urls_and_timings() {
    let shipped = std::fs::read_to_string(repo_path("deploy/alertmanager/alertmanager.yml"))
        .expect("read the Alertmanager config");
    let rewritten = alertmanager_config_for_test(&shipped, "http://127.0.0.1:9")
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(rewritten.contains("url: http://127.0.0.1:9/honcho/pager"));
    assert!(rewritten.contains("url: http://127.0.0.1:9/honcho/tickets"));
    let changed: Vec<(&str, &str)> = shipped
        .lines()
        .zip(rewritten.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        changed.iter().all(|(a, _)| a.contains("url:")
            || a.contains("group_wait:")
            || a.contains("group_interval:")),
        "{changed:?}"
    );
    assert!(alertmanager_config_for_test("route: {}", "http://x").is_err());
}

/// A loopback HTTP server answering every request with `answer(path, body)`.
struct LoopbackServer {
    /// `127.0.0.1:PORT`.
    address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LoopbackServer {
    async fn start<F>(answer: F) -> LoopbackServer
    where
        F: Fn(&str, &[u8]) -> String + Send + Sync + 'static,
    {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address").to_string();
        let answer = std::sync::Arc::new(answer);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let answer = std::sync::Arc::clone(&answer);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let answer = std::sync::Arc::clone(&answer);
                            async move {
                                let path = request.uri().path().to_owned();
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|collected| collected.to_bytes())
                                    .unwrap_or_default();
                                let text = answer(&path, &body);
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from(text)),
                                ))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        LoopbackServer {
            address,
            stop: Some(stop),
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Stands in for Honcho's deriver `/metrics` (port 9090, `METRICS_ENABLED=true`) while every LLM
/// call fails: Honcho's metric names and labels (`src/telemetry/prometheus/metrics.py`), input
/// tokens counted before each call and growing, output tokens zero-initialised and flat, and no
/// `deriver_queue_items_processed_total` at all (Honcho creates it on the first success).
struct FailingDeriverMetrics {
    /// `127.0.0.1:PORT`.
    address: String,
    _server: LoopbackServer,
}

impl FailingDeriverMetrics {
    async fn start() -> FailingDeriverMetrics {
        let started = Instant::now();
        let server = LoopbackServer::start(move |_, _| {
            let input = (started.elapsed().as_secs_f64() * 800.0).floor();
            format!(
                "# HELP deriver_tokens_processed_total Total tokens processed by the deriver\n\
                 # TYPE deriver_tokens_processed_total counter\n\
                 deriver_tokens_processed_total{{namespace=\"honcho\",task_type=\"ingestion\",token_type=\"input\",component=\"prompt\"}} {input}\n\
                 deriver_tokens_processed_total{{namespace=\"honcho\",task_type=\"ingestion\",token_type=\"output\",component=\"output_total\"}} 0.0\n"
            )
        })
        .await;
        FailingDeriverMetrics {
            address: server.address.clone(),
            _server: server,
        }
    }
}

/// One alert of a firing notification Alertmanager sent to the webhook receiver.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Notification {
    /// The receiver, from the URL path (`/honcho/pager` → `honcho-pager`).
    receiver: String,
    /// `alertname`.
    alert: String,
    /// The `cluster` label: the scenario.
    scenario: String,
}

impl Notification {
    fn matches(&self, (alert, scenario, receiver): &(&str, &str, &str)) -> bool {
        self.alert == *alert && self.scenario == *scenario && self.receiver == *receiver
    }
}

/// Records Alertmanager's webhook notifications (the alerts with status `firing`).
struct WebhookReceiver {
    /// `http://127.0.0.1:PORT`, the base the receivers' paths are appended to.
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Notification>>>,
    _server: LoopbackServer,
}

impl WebhookReceiver {
    async fn start() -> WebhookReceiver {
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&received);
        let server = LoopbackServer::start(move |path, body| {
            let receiver = path.trim_start_matches('/').replace('/', "-");
            let payload: Value = serde_json::from_slice(body).unwrap_or_default();
            let mut sink = sink.lock().expect("receiver lock");
            for alert in payload["alerts"].as_array().into_iter().flatten() {
                if alert["status"] != "firing" {
                    continue;
                }
                sink.push(Notification {
                    receiver: receiver.clone(),
                    alert: alert["labels"]["alertname"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    scenario: alert["labels"]["cluster"]
                        .as_str()
                        .unwrap_or("<no cluster>")
                        .to_owned(),
                });
            }
            String::new()
        })
        .await;
        WebhookReceiver {
            url: format!("http://{}", server.address),
            received,
            _server: server,
        }
    }

    /// Every firing alert notified so far, de-duplicated.
    fn firing(&self) -> BTreeSet<Notification> {
        self.received
            .lock()
            .expect("receiver lock")
            .iter()
            .cloned()
            .collect()
    }
}

/// A real Alertmanager on loopback (clustering off), stopped on drop.
struct AlertmanagerProcess {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    address: String,
    _data: tempfile::TempDir,
}

impl AlertmanagerProcess {
    /// (alertname, cluster, state, inhibited by) of every alert Alertmanager holds.
    async fn alerts(&self) -> Vec<(String, String, String, usize)> {
        honcho_exporter::install_crypto_provider();
        let Ok(response) = reqwest::get(format!("http://{}/api/v2/alerts", self.address)).await
        else {
            return Vec::new();
        };
        let body: Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => Value::Null,
        };
        body.as_array()
            .into_iter()
            .flatten()
            .map(|alert| {
                (
                    alert["labels"]["alertname"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    alert["labels"]["cluster"].as_str().unwrap_or("").to_owned(),
                    alert["status"]["state"].as_str().unwrap_or("").to_owned(),
                    alert["status"]["inhibitedBy"]
                        .as_array()
                        .map_or(0, Vec::len),
                )
            })
            .collect()
    }
}

impl Drop for AlertmanagerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Debian's `prometheus-alertmanager` with `config` on a free loopback port and waits
/// until it is ready.
async fn start_alertmanager(config: &str) -> AlertmanagerProcess {
    let data = tempfile::tempdir().expect("temp dir");
    let config_path = data.path().join("alertmanager.yml");
    std::fs::write(&config_path, config).expect("write the Alertmanager config");
    let address = format!("127.0.0.1:{}", free_port());
    let child = std::process::Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            data.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        // No gossip cluster: a single instance, nothing listening beyond the loopback API.
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot start prometheus-alertmanager ({error}); ./scripts/test.sh installs it")
        });
    let process = AlertmanagerProcess {
        child,
        address,
        _data: data,
    };
    honcho_exporter::install_crypto_provider();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("http://{}/-/ready", process.address))
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return process;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not become ready within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

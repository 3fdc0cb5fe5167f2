//! The alerts' live proof: every alert of `deploy/prometheus/honcho-exporter.rules.yml` reaches
//! `firing` in the scenario it is written for, none fires for a healthy Honcho, and every panel
//! query of `dashboards/*.json` returns data for the scenario it is meant for, all on ONE real
//! Prometheus (Debian's `prometheus`) scraping in-process exporters that poll in-process
//! simulated Honchos over loopback.
//!
//! How it fits in a minute or two without lowering the alert *thresholds*: each evolving
//! simulator starts its model [`SCENARIO_HISTORY`] in the past (`Simulator::new_at`), so when
//! Prometheus starts watching, the deriver has already been down for an hour, the hung unit has
//! been in progress for 80 minutes and the stranded units are long overdue. Ages are wall-clock
//! in the simulator, so the default 3600 s age thresholds and the exporter's default
//! `--classify.overdue-after` (1800 s + one poll interval) are used as shipped. Only the `for:`
//! durations and the windows of `HonchoBacklogGrowing` are lowered, through the `# param:`
//! rewrite of `deploy/prometheus/e2e-overrides.md` ([`E2E_OVERRIDES`] says why for each).
//!
//! Owns: the scenario ↔ alert and panel ↔ scenario tables of the live test, and the Rust side
//! of the `# param:` rewrite. Must not edit the shipped rules or dashboards (it reads them).

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
    ParamOverride {
        key: "HonchoExporterDataStale.for",
        value: "5s",
    },
    // Several polls with ready work and nothing in progress.
    ParamOverride {
        key: "HonchoDeriverNotProcessing.for",
        value: "10s",
    },
    ParamOverride {
        key: "HonchoWorkUnitsOverdue.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoOldestPendingItemTooOld.for",
        value: "5s",
    },
    ParamOverride {
        key: "HonchoWorkUnitInProgressTooLong.for",
        value: "5s",
    },
    // The trend of the last minute instead of 30 (the run is shorter than 30 min), over a
    // 1000 s horizon instead of 3600 s: with growth_items kept at 1000 the alert needs more
    // than 1 pending item/s of sustained growth. The deriver_down scenario grows ~3 items/s per
    // workspace; the healthy one's sawtooth (representation units filling up to the token
    // threshold, then drained) stays far below 1 item/s over 15 s (measured over seeds 1-8).
    ParamOverride {
        key: "HonchoBacklogGrowing.window",
        value: "1m",
    },
    ParamOverride {
        key: "HonchoBacklogGrowing.horizon_seconds",
        value: "1000",
    },
    // 15 s so that the first few samples' noisy regression cannot fire it in the healthy run.
    ParamOverride {
        key: "HonchoBacklogGrowing.for",
        value: "15s",
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
            // Seed 7 and this scale: the healthy backlog's noise and the deriver_down growth
            // rate are far apart (see HonchoBacklogGrowing in E2E_OVERRIDES).
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
    /// The `scenario` target label.
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
    ("HonchoOldestPendingItemTooOld", "deriver_down"),
    ("HonchoBacklogGrowing", "deriver_down"),
    ("HonchoWorkUnitsOverdue", "stall_then_overdue"),
    ("HonchoWorkUnitInProgressTooLong", "hung_in_progress"),
    ("HonchoExporterWalkTruncated", "walk_truncated"),
    ("HonchoExporterSeriesCapped", "series_capped"),
];

/// Alerts that may also fire in a scenario because they are true there, too. Anything else
/// firing at any time of the run fails the test (so `healthy` must stay silent).
const ALSO_TRUE: &[(&str, &str)] = &[
    // A wedged deriver is seen exactly like a down one: nothing is claimed for an hour.
    ("HonchoOldestPendingItemTooOld", "deriver_wedged"),
    ("HonchoBacklogGrowing", "deriver_wedged"),
    // The stranded units have waited 1800 s + an hour: overdue AND older than 3600 s.
    ("HonchoOldestPendingItemTooOld", "stall_then_overdue"),
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
        title: "Oldest pending item age",
        scenario: "deriver_down",
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

/// Which scenario an alert series belongs to: its `scenario` target label. Every alert must
/// keep the target labels (operators route on `cluster`, `env`, … the same way), so a series
/// without it is reported as such and fails the test.
fn scenario_of(series: &Value) -> String {
    series["metric"]["scenario"].as_str().map_or_else(
        || format!("<no scenario target label: {}>", series["metric"]),
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
    if !crate::util::require_tool("prometheus", "Debian package `prometheus`") {
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
    let mut config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - '{}'\n\
         scrape_configs:\n  - job_name: honcho_exporter\n    static_configs:\n",
        rules_path.display()
    );
    for target in &targets {
        config.push_str(&format!(
            "      - targets: ['{}']\n        labels: {{scenario: {}}}\n",
            target.address, target.scenario
        ));
    }
    let prometheus = start_prometheus(&config);
    let prometheus_start = Instant::now();
    mark(&mut timeline, "Prometheus started".into());

    // Watch the alerts; stop the doomed Honcho once Prometheus has seen its exporter healthy.
    let mut first_firing: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut doomed = Some(doomed);
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
                "min(honcho_exporter_up{scenario=\"honcho_stopped\"}) == 1",
            )
            .await;
            if !seen_up.is_empty() {
                if let Some(honcho) = doomed.take() {
                    honcho.stop().await;
                }
                mark(&mut timeline, "honcho_stopped's Honcho stopped".into());
            }
        }
        let all_fired = EXPECTED.iter().all(|(alert, scenario)| {
            first_firing.contains_key(&((*alert).to_owned(), (*scenario).to_owned()))
        });
        if (all_fired && prometheus_start.elapsed() >= MIN_OBSERVATION) || Instant::now() > deadline
        {
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
    let healthy_now = instant(&prometheus, "ALERTS{scenario=\"healthy\"}").await;

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
        "dashboards: {panels_checked} panel queries run; empty as expected (need Honcho's own /metrics): {honcho_metrics_panels:?}"
    );
    println!("fired during the run, per scenario:");
    for (scenario, alert) in &ever_fired {
        println!("  {scenario}: {alert}");
    }
    drop(prometheus);
    for exporter in exporters {
        exporter.stop().await;
    }
    for honcho in [healthy, down, wedged, overdue, hung, auth_on] {
        honcho.stop().await;
    }
    if let Some(honcho) = doomed {
        honcho.stop().await;
    }
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

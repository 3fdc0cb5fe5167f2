//! Verdicts end to end: each scenario the alerts' live test uses (deriver down, overdue, stuck
//! in progress, healthy flow) plus a queue stalled by design, served by the in-process
//! simulator, gives the verdict it should through the real poller and publication; `/status`
//! serves them as the documented JSON; and `honcho_exporter doctor` (the real binary) exits
//! 0/1/2 with its table or JSON for a healthy queue, a broken one and a bad configuration,
//! against the simulator and against the test PostgreSQL.
//!
//! Owns: the verdict ↔ scenario table and the doctor runs. Polls the publication until the
//! expected verdict appears (bounded), never sleeps then asserts.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use honcho_exporter::app::Exporter;
use honcho_exporter::config::Settings;
use honcho_exporter::publication;
use honcho_exporter::verdict::{Kind, Report};
use honcho_sim::{
    Generation, LoadedTask, LoadedUnit, LoadedWorkspace, QueueState, Scale, Scenario, Simulator,
    SimulatorConfig, SimulatorHandle,
};

use crate::end_to_end::{get, start_ready, test_settings};

const EXPORTER: &str = env!("CARGO_BIN_EXE_honcho_exporter");

/// How long the evolving scenarios have run before the exporter looks (as in `alerts_e2e`).
const SCENARIO_HISTORY: Duration = Duration::from_secs(3600);

/// An evolving simulator served on loopback; dropping it stops the server.
struct Evolving {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Evolving {
    fn url(&self) -> String {
        self.url.clone()
    }
}

/// Starts an evolving generation-C simulator of `scenario` with an hour of history.
async fn evolving(scenario: Scenario) -> Evolving {
    evolving_on(Generation::C, scenario).await
}

/// [`evolving`] serving API generation `generation`.
async fn evolving_on(generation: Generation, scenario: Scenario) -> Evolving {
    let config = SimulatorConfig {
        generation,
        scenario,
        seed: 7,
        scale: Scale {
            workspaces: 2,
            sessions_per_workspace: 3,
            work_units_per_workspace: 4,
        },
        speed: 60.0,
        batch_max_tokens: 200,
        flush_enabled: false,
        auth: None,
        sizes: Vec::new(),
    };
    let simulator = Simulator::new_at(config, SystemTime::now() - SCENARIO_HISTORY);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(simulator.serve(listener, async move {
        let _ = stopped.await;
    }));
    Evolving { url, _stop: stop }
}

/// 1 s polls, the defaults that follow from the interval.
pub fn fast_settings(url: &str) -> Settings {
    let mut settings = test_settings(url);
    settings.poll.interval = Duration::from_secs(1);
    settings.poll.max_staleness = Duration::from_secs(3);
    settings.poll.timeout = Duration::from_secs(5);
    settings.classify.overdue_after = Duration::from_secs(1801);
    settings
}

/// Waits (bounded) until the exporter's verdicts satisfy `wanted`; returns them.
pub async fn verdicts_until(
    exporter: &Exporter,
    what: &str,
    wanted: impl Fn(&Report) -> bool,
) -> Arc<Report> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = publication::current(&exporter.published).verdicts(publication::unix_now());
        if wanted(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never seen; last: {report:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn leads_with(report: &Report, kind: Kind) -> bool {
    report.workspaces.iter().any(|w| w.worst() == kind)
}

fn micros_ago(ago: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from((now - ago).as_micros()).expect("fits")
}

/// One workspace holding one representation unit: `pending_tokens` tokens in 2 items, its
/// oldest `age` old, claimed or not.
pub fn one_unit(
    workspace: &str,
    session: &str,
    pending_tokens: u32,
    age: Duration,
    in_progress: bool,
) -> QueueState {
    QueueState {
        workspaces: vec![LoadedWorkspace {
            name: workspace.to_string(),
            sessions: vec![("S1aaaaaaaaaaaaaaaaaaa".to_string(), session.to_string())],
            units: vec![LoadedUnit {
                task: LoadedTask::Representation,
                session: Some(0),
                observer: None,
                observed: Some("bob".to_string()),
                pending_items: 2,
                pending_tokens,
                in_progress,
                oldest_micros: micros_ago(age),
                newest_micros: micros_ago(age / 2),
                completed_items: 1,
            }],
        }],
    }
}

/// A frozen generation-C simulator serving `state` (batch threshold 200).
pub async fn frozen(state: &QueueState) -> SimulatorHandle {
    let config = SimulatorConfig {
        batch_max_tokens: 200,
        ..SimulatorConfig::recorded(Generation::C)
    };
    Simulator::start_with_state(config, state)
        .await
        .expect("simulator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alert_scenario_gives_its_verdict() {
    for (scenario, expected) in [
        (Scenario::DeriverDown, Kind::DeriverIdle),
        (Scenario::HungInProgress, Kind::StuckInProgress),
        (Scenario::StallThenOverdue, Kind::Overdue),
    ] {
        let honcho = evolving(scenario).await;
        let (exporter, _) = start_ready(fast_settings(&honcho.url())).await;
        let report = verdicts_until(&exporter, &format!("{scenario:?} → {expected:?}"), |r| {
            r.workspaces
                .iter()
                .any(|w| w.findings.iter().any(|f| f.kind == expected))
        })
        .await;
        let finding = report
            .workspaces
            .iter()
            .flat_map(|w| &w.findings)
            .find(|f| f.kind == expected)
            .expect("found above");
        assert!(!finding.reason.is_empty());
        exporter.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_flow_is_fine_in_every_workspace() {
    let honcho = evolving(Scenario::Healthy).await;
    let (exporter, _) = start_ready(fast_settings(&honcho.url())).await;
    let report = verdicts_until(&exporter, "both workspaces judged", |r| {
        r.workspaces.len() == 2 && r.workspaces.iter().all(|w| w.worst() != Kind::Unknown)
    })
    .await;
    assert!(report.is_fine(), "{report:#?}");
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_split_a_stopped_deriver_is_unknown_in_one_look_and_says_what_it_cannot_judge()
{
    let honcho = evolving_on(Generation::B, Scenario::DeriverDown).await;
    let (exporter, _) = start_ready(fast_settings(&honcho.url())).await;
    let report = verdicts_until(&exporter, "generation B judged", |r| {
        !r.workspaces.is_empty()
            && r.workspaces
                .iter()
                .all(|w| w.findings[0].numbers.contains_key("pending_items"))
    })
    .await;
    let workspace = &report.workspaces[0];
    assert_eq!(workspace.worst(), Kind::Unknown, "{report:#?}");
    assert!(
        workspace.findings[0].reason.contains("ready/stalled split"),
        "{}",
        workspace.findings[0].reason
    );
    let not_judged: Vec<Kind> = workspace.not_judged.iter().map(|item| item.kind).collect();
    assert!(
        not_judged.contains(&Kind::Overdue) && not_judged.contains(&Kind::WaitingForTokens),
        "{not_judged:?}"
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_stalled_by_design_is_waiting_for_tokens_and_status_serves_it() {
    let honcho = frozen(&one_unit(
        "acme",
        "chat",
        50,
        Duration::from_secs(300),
        false,
    ))
    .await;
    let (exporter, base) = start_ready(fast_settings(&honcho.url())).await;
    verdicts_until(&exporter, "waiting_for_tokens", |r| {
        leads_with(r, Kind::WaitingForTokens)
    })
    .await;
    let (status, content_type, body) = get(&format!("{base}/status"), None, false).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let document: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(document["schema"], "honcho_exporter.status/v1");
    assert_eq!(document["healthy"], true);
    let verdict = &document["workspaces"][0]["verdicts"][0];
    assert_eq!(verdict["verdict"], "waiting_for_tokens");
    assert_eq!(verdict["numbers"]["tokens_needed"], 150.0, "{verdict}");
    let (_, _, metrics) = get(&format!("{base}/metrics"), None, false).await;
    let metrics = String::from_utf8(metrics).expect("UTF-8");
    assert!(
        metrics
            .contains("honcho_queue_verdict{workspace=\"acme\",verdict=\"waiting_for_tokens\"} 1"),
        "{metrics}"
    );
    exporter.stop().await;
}

/// Runs `honcho_exporter` with `args` and only `env` in its environment.
pub fn run_exporter(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(EXPORTER);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the exporter runs")
}

/// `doctor` against the API at `url` (1 s polls), off the async runtime's threads.
async fn doctor_api(url: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["doctor", "--honcho.url", url, "--poll.interval", "1s"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|arg| arg.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_exporter(&args, &[])
    })
    .await
    .expect("doctor ran")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_exits_0_for_a_queue_waiting_for_tokens() {
    let honcho = frozen(&one_unit(
        "acme",
        "chat",
        50,
        Duration::from_secs(300),
        false,
    ))
    .await;
    let output = doctor_api(&honcho.url(), &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("acme "))
        .unwrap_or_else(|| panic!("no row for acme: {stdout}"));
    assert!(row.contains("waiting_for_tokens"), "{row}");
    assert!(stdout.contains("overall: ok"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_exits_1_for_a_stopped_deriver_and_says_it_judged_in_one_look() {
    // Ready (at the threshold) for two hours, nothing in progress.
    let honcho = frozen(&one_unit(
        "acme",
        "chat",
        250,
        Duration::from_secs(7200),
        false,
    ))
    .await;
    let output = doctor_api(&honcho.url(), &["--output", "json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["schema"], "honcho_exporter.status/v1");
    assert_eq!(document["worst"], "deriver_idle");
    let verdict = &document["workspaces"][0]["verdicts"][0];
    assert_eq!(verdict["verdict"], "deriver_idle");
    assert_eq!(verdict["basis"], "instant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_with_a_window_judges_over_that_much_history() {
    let honcho = frozen(&one_unit(
        "acme",
        "chat",
        50,
        Duration::from_secs(300),
        false,
    ))
    .await;
    let output = doctor_api(&honcho.url(), &["--window", "2s", "--output", "json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let history = document["history_seconds"].as_f64().expect("a number");
    assert!(history >= 1.0, "history of {history} s after a 2 s window");
}

#[test]
fn doctor_rejects_a_bad_configuration_with_the_daemons_message_and_exit_2() {
    let daemon = run_exporter(&["--poll.interval", "soon"], &[]);
    let doctor = run_exporter(&["doctor", "--poll.interval", "soon"], &[]);
    assert_eq!(daemon.status.code(), Some(2));
    assert_eq!(doctor.status.code(), Some(2));
    assert!(doctor.stdout.is_empty());
    assert_eq!(text(&doctor.stderr), text(&daemon.stderr));
    assert!(
        text(&doctor.stderr).contains("--poll.interval"),
        "{}",
        text(&doctor.stderr)
    );
}

mod database {
    use super::*;
    use crate::postgres::{EXPORTER_PASSWORD, cluster, ready};

    /// `doctor --source postgres` against `database`.
    async fn doctor_postgres(database: &str) -> Output {
        let url = cluster().url(database);
        tokio::task::spawn_blocking(move || {
            run_exporter(
                &[
                    "doctor",
                    "--source",
                    "postgres",
                    "--postgres.url",
                    &url,
                    "--poll.interval",
                    "1s",
                    "--postgres.statement-timeout",
                    "500ms",
                    "--honcho.deriver-representation-batch-max-tokens",
                    "100",
                ],
                &[("HONCHO_EXPORTER_POSTGRES_PASSWORD", EXPORTER_PASSWORD)],
            )
        })
        .await
        .expect("doctor ran")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn doctor_on_the_database_exits_0_for_an_idle_queue_and_1_for_a_hung_unit() {
        if !ready() {
            return;
        }
        let healthy = cluster().database("honcho3");
        cluster().psql(
            &healthy,
            "INSERT INTO workspaces (id, name) VALUES ('w1', 'acme');",
        );
        let output = doctor_postgres(&healthy).await;
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}{}",
            text(&output.stderr)
        );
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with("acme ") && line.contains(" ok ")),
            "{stdout}"
        );

        let broken = cluster().database("honcho3");
        cluster().psql(
            &broken,
            "INSERT INTO workspaces (id, name) VALUES ('w1', 'acme');
             INSERT INTO sessions (id, name, workspace_name) VALUES
               ('S1aaaaaaaaaaaaaaaaaaa', 'chat-one', 'acme');
             INSERT INTO messages (id, workspace_name, content, token_count) VALUES
               (1, 'acme', 'secret text', 30);
             INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name, message_id) VALUES
               ('S1aaaaaaaaaaaaaaaaaaa', '{}', false, 'summary', 'summary:acme:chat-one:None:None', now() - interval '2 hours', 'acme', 1);
             INSERT INTO active_queue_sessions (id, work_unit_key) VALUES ('a1', 'summary:acme:chat-one:None:None');",
        );
        let output = doctor_postgres(&broken).await;
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{stdout}{}",
            text(&output.stderr)
        );
        let row = stdout
            .lines()
            .find(|line| line.starts_with("acme "))
            .unwrap_or_else(|| panic!("no row for acme: {stdout}"));
        assert!(
            row.contains("stuck_in_progress") && row.contains("instant"),
            "{row}"
        );
    }
}

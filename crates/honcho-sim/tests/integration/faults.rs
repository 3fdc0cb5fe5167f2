//! The simulator's fault knobs, cursor walk and evolving scenarios, observed from outside:
//! each fault over real loopback HTTP (status, headers, body shape; timings only as loose
//! lower bounds), the work-units walk on a frozen model, and the scenarios through `truth_at`
//! (simulated time moves without sleeping, so these tests never wait on the clock).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use honcho_sim::{
    BATCH_MAX_AGE_SECONDS, EndpointKind, FaultAction, FaultRule, Faults, Generation, Scale,
    Scenario, Simulator, SimulatorConfig, SimulatorHandle, Truth,
};
use serde_json::Value;

use super::contract::http_client;

const GLOBEX_STATUS: &str = "/v3/workspaces/globex-research/queue/status";
const GLOBEX_WORK_UNITS: &str = "/v3/workspaces/globex-research/queue/work-units";

async fn recorded() -> SimulatorHandle {
    Simulator::start(SimulatorConfig::recorded(Generation::C))
        .await
        .expect("simulator binds loopback")
}

async fn get(handle: &SimulatorHandle, path: &str) -> reqwest::Response {
    http_client()
        .get(format!("{}{path}", handle.url()))
        .send()
        .await
        .expect("request answered")
}

/// The body as JSON (reqwest's `json` feature is not enabled in this crate).
async fn json_of(response: reqwest::Response) -> Value {
    let body = response.bytes().await.expect("body readable");
    serde_json::from_slice(&body).expect("JSON body")
}

async fn get_json(handle: &SimulatorHandle, path: &str) -> Value {
    json_of(get(handle, path).await).await
}

fn evolving(scenario: Scenario, units: u32, speed: f64) -> SimulatorConfig {
    SimulatorConfig {
        scenario,
        seed: 7,
        scale: Scale {
            workspaces: 2,
            sessions_per_workspace: 5,
            work_units_per_workspace: units,
        },
        speed,
        ..SimulatorConfig::demo()
    }
}

fn seconds_after(start: SystemTime, seconds: u64) -> SystemTime {
    start + Duration::from_secs(seconds)
}

#[tokio::test]
async fn server_error_fault_answers_500_with_honchos_body_for_n_requests_only() {
    let handle = recorded().await;
    handle.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::ServerError { status: 500 })
            .for_endpoint(EndpointKind::Status)
            .times(1),
    ));
    let first = get(&handle, GLOBEX_STATUS).await;
    assert_eq!(first.status(), 500);
    assert_eq!(
        json_of(first).await,
        serde_json::json!({"detail": "An unexpected error occurred"})
    );
    assert_eq!(get(&handle, GLOBEX_STATUS).await.status(), 200);
    for status in [502u16, 503] {
        handle
            .simulator
            .set_faults(Faults::one(FaultRule::new(FaultAction::ServerError {
                status,
            })));
        assert_eq!(get(&handle, GLOBEX_STATUS).await.status(), status);
    }
    let counts = handle.simulator.request_counts();
    assert_eq!(counts.count(EndpointKind::Status, 500), 1);
    assert_eq!(counts.count(EndpointKind::Status, 200), 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn too_many_requests_fault_sends_retry_after() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::TooManyRequests {
            retry_after_seconds: 7,
        })));
    let response = get(&handle, GLOBEX_STATUS).await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(b"7".as_slice())
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn invalid_jwt_fault_answers_401_without_www_authenticate() {
    let handle = recorded().await;
    handle.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::InvalidJwt).for_workspace("globex-research"),
    ));
    let response = get(&handle, GLOBEX_STATUS).await;
    assert_eq!(response.status(), 401);
    assert!(!response.headers().contains_key("www-authenticate"));
    assert_eq!(
        json_of(response).await,
        serde_json::json!({"detail": "Invalid JWT"})
    );
    let other = get(&handle, "/v3/workspaces/acme-support/queue/status").await;
    assert_eq!(other.status(), 200, "the fault is restricted to globex");
    handle.shutdown().await;
}

#[tokio::test]
async fn malformed_and_truncated_json_faults_break_the_body_not_the_status() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::MalformedJson)));
    let malformed = get(&handle, GLOBEX_STATUS).await;
    assert_eq!(malformed.status(), 200);
    let body = malformed.bytes().await.expect("body");
    assert!(serde_json::from_slice::<Value>(&body).is_err());

    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::TruncatedJson {
            chunked: false,
        })));
    let truncated = get(&handle, GLOBEX_STATUS).await;
    let declared: usize = truncated.headers()["content-length"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let body = truncated.bytes().await.expect("honest length is readable");
    assert_eq!(declared, body.len());
    assert!(body.len() < 833 && serde_json::from_slice::<Value>(&body).is_err());

    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::TruncatedJson {
            chunked: true,
        })));
    let cut = http_client()
        .get(format!("{}{GLOBEX_STATUS}", handle.url()))
        .send()
        .await;
    let complete = match cut {
        Ok(response) => response.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(
        !complete,
        "a chunked body cut mid-way is a transport error (at the headers or in the body)"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn huge_body_fault_pads_a_still_valid_answer() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::HugeBody {
            mebibytes: 3,
        })));
    let body = get(&handle, GLOBEX_STATUS)
        .await
        .bytes()
        .await
        .expect("body");
    assert!(body.len() > 3 * 1024 * 1024);
    let value: Value = serde_json::from_slice(&body).expect("still valid JSON");
    assert_eq!(value["total_work_units"], 25);
    handle.shutdown().await;
}

#[tokio::test]
async fn slowloris_fault_trickles_the_whole_body() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::Slowloris {
            bytes_per_second: 400,
        })));
    let started = Instant::now();
    let response = get(&handle, GLOBEX_STATUS).await;
    assert_eq!(response.status(), 200);
    let value = json_of(response).await;
    assert_eq!(value["total_work_units"], 25);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "833 bytes at 400 B/s take at least two pauses"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn hang_and_drop_faults_leave_the_client_without_an_answer() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::Hang).times(1)));
    let hung = http_client()
        .get(format!("{}{GLOBEX_STATUS}", handle.url()))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.expect_err("no answer").is_timeout());

    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::DropConnection)));
    let dropped = http_client()
        .get(format!("{}{GLOBEX_STATUS}", handle.url()))
        .send()
        .await;
    assert!(dropped.is_err(), "the connection closes unanswered");
    assert_eq!(
        handle
            .simulator
            .request_counts()
            .count(EndpointKind::Status, 0),
        2
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn latency_fault_delays_the_answer() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::latency(400)));
    let started = Instant::now();
    assert_eq!(get(&handle, GLOBEX_STATUS).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    handle.shutdown().await;
}

#[tokio::test]
async fn cursor_loop_fault_repeats_the_cursor_received() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::CursorLoop)));
    let first = get_json(&handle, &format!("{GLOBEX_WORK_UNITS}?size=2")).await;
    let cursor = first["next_page"].as_str().expect("a next page").to_owned();
    let second = get_json(
        &handle,
        &format!("{GLOBEX_WORK_UNITS}?size=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["next_page"].as_str(), Some(cursor.as_str()));
    handle.shutdown().await;
}

#[tokio::test]
async fn endless_walk_fault_always_offers_a_fresh_cursor() {
    let handle = recorded().await;
    handle
        .simulator
        .set_faults(Faults::one(FaultRule::new(FaultAction::EndlessWalk)));
    let mut seen = BTreeSet::new();
    let mut path = format!("{GLOBEX_WORK_UNITS}?size=2");
    for _ in 0..5 {
        let page = get_json(&handle, &path).await;
        assert_eq!(page["items"], serde_json::json!([]));
        let next = page["next_page"].as_str().expect("never null").to_owned();
        assert!(seen.insert(next.clone()), "each cursor is new");
        path = format!("{GLOBEX_WORK_UNITS}?size=2&cursor={next}");
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn vanish_mid_walk_fault_deletes_the_workspace_after_the_first_page() {
    let handle = recorded().await;
    handle.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::VanishMidWalk).for_workspace("globex-research"),
    ));
    let first = get_json(&handle, &format!("{GLOBEX_WORK_UNITS}?size=2")).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let cursor = first["next_page"].as_str().expect("a next page");
    let second = get_json(
        &handle,
        &format!("{GLOBEX_WORK_UNITS}?size=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["items"], serde_json::json!([]));
    assert_eq!(second["total"], 0);
    assert_eq!(second["next_page"], Value::Null);
    let status = get_json(&handle, GLOBEX_STATUS).await;
    assert_eq!(status["total_work_units"], 0);
    assert_eq!(status["sessions"], Value::Null);
    let listed = http_client()
        .post(format!("{}/v3/workspaces/list", handle.url()))
        .send()
        .await
        .expect("answered");
    let listed = json_of(listed).await;
    assert_eq!(listed["total"], 3, "globex is gone from the list");
    assert!(
        !handle
            .simulator
            .truth()
            .workspaces
            .contains_key("globex-research")
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn generation_switches_change_the_routes_like_an_upgrade() {
    let handle = recorded().await;
    handle.simulator.set_generation(Generation::B);
    assert_eq!(get(&handle, GLOBEX_WORK_UNITS).await.status(), 404);
    let status = get_json(&handle, GLOBEX_STATUS).await;
    assert!(
        status.get("pending_stalled_work_units").is_none(),
        "B has no split keys"
    );
    handle.simulator.set_generation(Generation::A);
    assert_eq!(get(&handle, GLOBEX_STATUS).await.status(), 404);
    assert_eq!(get(&handle, "/health").await.status(), 404);
    let v2 = get(&handle, "/v2/workspaces/globex-research/deriver/status").await;
    assert_eq!(v2.status(), 200);
    let response = http_client()
        .post(format!("{}/_sim/generation", handle.url()))
        .body(r#"{"generation":"c"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(get(&handle, GLOBEX_WORK_UNITS).await.status(), 200);
    handle.shutdown().await;
}

async fn walk(handle: &SimulatorHandle, workspace: &str, size: usize) -> Vec<Value> {
    let base = format!("/v3/workspaces/{workspace}/queue/work-units?size={size}");
    let mut rows = Vec::new();
    let mut path = base.clone();
    for _ in 0..10_000 {
        let page = get_json(handle, &path).await;
        rows.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_page"].as_str() {
            Some(next) => path = format!("{base}&cursor={next}"),
            None => return rows,
        }
    }
    panic!("walk of size {size} did not terminate");
}

#[tokio::test]
async fn cursor_walk_visits_every_unit_exactly_once_in_keyset_order() {
    let handle = Simulator::start(evolving(Scenario::Healthy, 230, 0.0))
        .await
        .expect("simulator binds loopback");
    let truth = handle.simulator.truth();
    let (name, expected) = truth.workspaces.iter().next().expect("a workspace");
    let expected: Vec<Value> = expected
        .work_units
        .iter()
        .map(|row| serde_json::to_value(row).expect("row serializes"))
        .collect();
    assert!(expected.len() >= 230);
    for size in [1, 7, 100] {
        let rows = walk(&handle, name, size).await;
        assert_eq!(rows, expected, "walk with size={size}");
    }
    handle.shutdown().await;
}

fn pending(truth: &Truth) -> u64 {
    truth.workspaces.values().map(|ws| ws.status.pending).sum()
}

fn in_progress(truth: &Truth) -> u64 {
    truth
        .workspaces
        .values()
        .map(|ws| ws.status.in_progress)
        .sum()
}

#[test]
fn deriver_down_claims_nothing_while_pending_grows() {
    let start = SystemTime::now();
    let simulator = Simulator::new_at(evolving(Scenario::DeriverDown, 40, 60.0), start);
    let early = simulator.truth_at(seconds_after(start, 10));
    let later = simulator.truth_at(seconds_after(start, 120));
    assert_eq!(in_progress(&early), 0);
    assert_eq!(in_progress(&later), 0);
    assert!(pending(&later) > pending(&early), "arrivals pile up");
}

#[test]
fn deriver_wedged_leaves_ready_units_unclaimed() {
    let start = SystemTime::now();
    let simulator = Simulator::new_at(evolving(Scenario::DeriverWedged, 40, 60.0), start);
    let truth = simulator.truth_at(seconds_after(start, 60));
    assert_eq!(in_progress(&truth), 0);
    let ready: u64 = truth
        .workspaces
        .values()
        .map(|ws| ws.status.pending_ready)
        .sum();
    assert!(ready > 0);
}

#[test]
fn healthy_deriver_completes_work() {
    let start = SystemTime::now();
    let simulator = Simulator::new_at(evolving(Scenario::Healthy, 40, 60.0), start);
    let at_start = simulator.truth_at(start);
    let later = simulator.truth_at(seconds_after(start, 30));
    let completed =
        |t: &Truth| -> u64 { t.workspaces.values().map(|ws| ws.status.completed).sum() };
    assert!(in_progress(&at_start) > 0, "the deriver claims at once");
    assert!(
        completed(&later) > completed(&at_start),
        "claimed units complete"
    );
}

#[test]
fn stall_then_overdue_produces_stalled_units_older_than_the_max_age() {
    let start = SystemTime::now();
    let simulator = Simulator::new_at(evolving(Scenario::StallThenOverdue, 40, 60.0), start);
    let truth = simulator.truth_at(seconds_after(start, 30));
    let max_age_micros = BATCH_MAX_AGE_SECONDS * 1_000_000;
    let overdue = truth
        .workspaces
        .values()
        .flat_map(|ws| &ws.work_units)
        .filter(|row| !row.hit_threshold && !row.in_progress)
        .filter(|row| {
            let oldest = chrono::DateTime::parse_from_rfc3339(&row.oldest_item_at)
                .expect("ISO timestamp")
                .timestamp_micros();
            truth.at_micros - oldest > max_age_micros
        })
        .count();
    assert!(overdue >= 3, "the stranded stalled units are overdue");
}

#[test]
fn hung_in_progress_keeps_an_old_unit_claimed() {
    let start = SystemTime::now();
    let simulator = Simulator::new_at(evolving(Scenario::HungInProgress, 40, 60.0), start);
    let truth = simulator.truth_at(seconds_after(start, 300));
    let hung = truth
        .workspaces
        .values()
        .flat_map(|ws| &ws.work_units)
        .filter(|row| row.in_progress && row.session_name.as_deref() == Some("hung-0001"))
        .count();
    assert_eq!(hung, 2, "one hung unit per workspace, still in progress");
}

#[test]
fn the_same_seed_gives_the_same_truth_at_the_same_time_however_it_was_reached() {
    let start = SystemTime::now();
    let config = evolving(Scenario::Healthy, 60, 60.0);
    let stepped = Simulator::new_at(config.clone(), start);
    for seconds in [5, 17, 40] {
        stepped.truth_at(seconds_after(start, seconds));
    }
    let direct = Simulator::new_at(config.clone(), start);
    let end = seconds_after(start, 90);
    assert_eq!(stepped.truth_at(end), direct.truth_at(end));
    let other_seed = Simulator::new_at(SimulatorConfig { seed: 8, ..config }, start);
    assert_ne!(other_seed.truth_at(end), direct.truth_at(end));
}

//! Rounds and the per-job schedule of the API source (issue 18, bugs 2, 3 and 8a), over
//! loopback against the simulator: rounds that outlast the interval still complete and are
//! counted, a one-page workspace fetches its one page once per status poll, and the second
//! status poll comes one interval after the first.
//!
//! Every check is a count or an order, awaited with a bounded wait; none times the exporter.

use std::time::{Duration, Instant};

use honcho_exporter::config::Settings;
use honcho_sim::{
    EndpointKind, FaultRule, Faults, Generation, Scale, Scenario, Simulator, SimulatorConfig,
    SimulatorHandle,
};

use crate::end_to_end::{get, start_unready, test_settings};
use crate::util::{ParsedSample, parse_samples, select, sum};

async fn metrics(base: &str) -> Vec<ParsedSample> {
    let (status, _, body) = get(&format!("{base}/metrics"), None, false).await;
    assert_eq!(status, 200);
    parse_samples(&String::from_utf8(body).expect("UTF-8"))
}

fn settings(url: &str, interval: Duration) -> Settings {
    let mut settings = test_settings(url);
    settings.poll.interval = interval;
    settings.poll.timeout = interval * 4 / 5;
    settings.poll.max_staleness = interval * 3;
    settings
}

async fn small_workspaces(workspaces: u32) -> SimulatorHandle {
    Simulator::start(SimulatorConfig {
        generation: Generation::C,
        scenario: Scenario::Healthy,
        seed: 18,
        scale: Scale {
            workspaces,
            sessions_per_workspace: 2,
            work_units_per_workspace: 5,
        },
        speed: 0.0,
        ..SimulatorConfig::demo()
    })
    .await
    .expect("simulator binds loopback")
}

/// Bug 2: 100 workspaces at 50 requests per second take about four seconds a round (a status
/// poll and a one-page walk each), twice the interval. Every tick used to replace the open
/// round, so none ever completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_longer_than_the_interval_still_complete_and_are_counted() {
    let honcho = small_workspaces(100).await;
    let mut settings = settings(&honcho.url(), Duration::from_secs(2));
    settings.honcho.max_requests_per_second = 50.0;
    let (exporter, base) = start_unready(settings).await;
    // Three rounds' worth of status polls: well past the first round's end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let samples = metrics(&base).await;
        let polls = honcho
            .simulator
            .request_counts()
            .total(EndpointKind::Status);
        let cycles = sum(&samples, "honcho_exporter_poll_cycles_total", &[]);
        if cycles >= 2.0 {
            break samples;
        }
        assert!(
            Instant::now() < deadline && polls < 600,
            "{polls} status polls answered, yet honcho_exporter_poll_cycles_total is {cycles}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let duration = select(&samples, "honcho_exporter_poll_duration_seconds", &[]);
    assert_eq!(
        duration.len(),
        1,
        "a completed round has a duration: {duration:?}"
    );
    eprintln!(
        "{} rounds completed, the last in {:.2} s, after {} status polls",
        sum(&samples, "honcho_exporter_poll_cycles_total", &[]),
        duration[0].value,
        honcho
            .simulator
            .request_counts()
            .total(EndpointKind::Status)
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

/// Bug 3: a workspace whose work units fit in one page: its walk is its head, so it fetches
/// that page once per status poll, not a second time as a separate head job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_page_workspace_fetches_its_page_once_per_status_poll() {
    const WORKSPACES: u64 = 10;
    const ROUNDS: u64 = 6;
    let honcho = small_workspaces(WORKSPACES as u32).await;
    let (exporter, _base) = start_unready(settings(&honcho.url(), Duration::from_secs(1))).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, pages) = loop {
        let counts = honcho.simulator.request_counts();
        let status = counts.total(EndpointKind::Status);
        if status >= ROUNDS * WORKSPACES {
            break (status, counts.total(EndpointKind::WorkUnits));
        }
        assert!(Instant::now() < deadline, "only {status} status polls");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    exporter.stop().await;
    eprintln!("{pages} work-units requests for {status} status polls");
    // A walk starts after its workspace's status answer, so at the moment of counting at most
    // one walk per workspace can be ahead of its status poll.
    assert!(
        pages <= status + WORKSPACES,
        "{pages} work-units requests for {status} status polls of one-page workspaces"
    );
    honcho.shutdown().await;
}

/// Bug 8a: the first discovery is slow (a new connection), so the first status polls start
/// between ticks. They count as started at their tick, so the next tick starts the second
/// status poll of every workspace — it used to wait one more interval. Status answers after the
/// first of each workspace take 500 ms and discovery answers at once, so the order of the
/// simulator's counts tells the ticks apart: the second status answers must all be in before
/// the third discovery (the third tick) is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_status_poll_comes_at_the_next_tick_after_a_slow_first_discovery() {
    let honcho = Simulator::start(SimulatorConfig::recorded(Generation::C))
        .await
        .expect("simulator binds loopback");
    let workspaces = honcho.simulator.truth().workspaces.len() as u64;
    honcho.simulator.set_faults(Faults {
        rules: vec![
            FaultRule::latency(400)
                .for_endpoint(EndpointKind::List)
                .times(1),
            FaultRule::latency(0)
                .for_endpoint(EndpointKind::Status)
                .times(workspaces),
            FaultRule::latency(500).for_endpoint(EndpointKind::Status),
        ],
    });
    let (exporter, _base) = start_unready(settings(&honcho.url(), Duration::from_secs(2))).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, discoveries) = loop {
        let counts = honcho.simulator.request_counts();
        let status = counts.count(EndpointKind::Status, 200);
        let discoveries = counts.total(EndpointKind::List);
        if status >= 2 * workspaces || discoveries >= 3 {
            break (status, discoveries);
        }
        assert!(
            Instant::now() < deadline,
            "{status} status answers, {discoveries} discoveries"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    exporter.stop().await;
    assert!(
        discoveries < 3,
        "the third tick's discovery came before the second tick's status polls were answered: {status} status answers for {workspaces} workspaces, {discoveries} discoveries"
    );
    honcho.shutdown().await;
}

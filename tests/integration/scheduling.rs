//! Scheduling and load (issue 9), over loopback with the simulator's Honcho cost model on: no
//! head-of-line blocking, the in-flight cap, the duty rule, and staleness checked at scrape
//! time.
//!
//! The workspaces have real sizes: one of 50 k work units (150 k queue rows), one of 10 k
//! (30 k rows) and 48 small ones, so the big walk really pages 500 times while the small ones
//! are polled.
//!
//! Bounds here are logical (orderings of the exporter's own timestamps, request counts against
//! the duty rule, the cost model's request-seconds against the documented bound), never speed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use honcho_exporter::config::Settings;
use honcho_exporter::publication::unix_now;
use honcho_sim::{
    EndpointKind, FaultAction, FaultRule, Faults, Generation, Scale, Scenario, Simulator,
    SimulatorConfig, SizeGroup, sizes,
};

use crate::end_to_end::{start_unready, test_settings};
use crate::faults::last_success;
use crate::util::{ParsedSample, scrape, select};

/// The poll interval: 15 s of the measured Honcho, time-scaled by [`SPEED`] (2 s: a loaded
/// 2-core machine running the debug simulator and exporter in one process still keeps up).
const INTERVAL: Duration = Duration::from_secs(2);
/// Modelled seconds per real second.
const SPEED: f64 = 7.5;
const CAP: usize = 4;
const DUTY: f64 = 4.0;
const BIG_UNITS: u32 = 50_000;
const BIG_ROWS: u64 = 150_000;
const MID_UNITS: u32 = 10_000;
const MID_ROWS: u64 = 30_000;
const SMALL_ROWS: u64 = 300;
const UNITS: u32 = 20;
/// Honcho's largest page.
const PAGE_SIZE: u32 = 100;

fn published(samples: &[ParsedSample]) -> BTreeSet<String> {
    select(samples, "honcho_queue_items", &[])
        .iter()
        .filter_map(|sample| sample.labels.get("workspace").cloned())
        .collect()
}

fn settings(url: &str) -> Settings {
    let mut settings = test_settings(url);
    settings.poll.interval = INTERVAL;
    settings.poll.timeout = INTERVAL * 4 / 5;
    settings.poll.max_staleness = INTERVAL * 3;
    settings.poll.concurrency = CAP;
    settings.poll.duty_factor = DUTY;
    settings.work_units.page_size = PAGE_SIZE;
    settings.honcho.max_requests_per_second = 10_000.0;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_never_keeps_the_others_dark_and_the_load_on_honcho_stays_bounded() {
    let honcho = Simulator::start(SimulatorConfig {
        generation: Generation::C,
        scenario: Scenario::Healthy,
        seed: 9,
        scale: Scale {
            workspaces: 50,
            sessions_per_workspace: 2,
            work_units_per_workspace: UNITS,
        },
        speed: 0.0,
        sizes: vec![
            SizeGroup::new(1, BIG_UNITS, BIG_ROWS),
            SizeGroup::new(1, MID_UNITS, MID_ROWS),
        ],
        ..SimulatorConfig::demo()
    })
    .await
    .expect("simulator binds loopback");
    let names: Vec<String> = honcho
        .simulator
        .truth()
        .workspaces
        .keys()
        .cloned()
        .collect();
    let truth = honcho.simulator.truth();
    let units_of = |workspace: &str| truth.workspaces[workspace].work_units.len();
    let big = names[0].clone();
    assert_eq!(
        units_of(&big),
        BIG_UNITS as usize,
        "the big workspace's size"
    );
    assert_eq!(
        units_of(&names[1]),
        MID_UNITS as usize,
        "the mid workspace's size"
    );
    assert_eq!(
        units_of(&names[2]),
        UNITS as usize,
        "a small workspace's size"
    );
    let model = sizes::cost_model(
        &[
            SizeGroup::new(1, BIG_UNITS, BIG_ROWS),
            SizeGroup::new(1, MID_UNITS, MID_ROWS),
        ],
        SPEED,
        SMALL_ROWS,
    );
    honcho.simulator.set_cost_model(Some(model.clone()));
    let started = Instant::now();
    let (exporter, base) = start_unready(settings(&honcho.url())).await;

    // Scrape every 250 ms for 8 intervals.
    let mut first_seen: BTreeMap<String, Vec<ParsedSample>> = BTreeMap::new();
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut big_first_status: Option<f64> = None;
    while started.elapsed() < INTERVAL * 8 {
        let samples = scrape(&base).await;
        let now_published = published(&samples);
        for workspace in &present {
            let healthy = select(
                &samples,
                "honcho_exporter_up",
                &[("workspace", workspace), ("upstream", "status")],
            )
            .first()
            .is_some_and(|sample| sample.value == 1.0);
            // A status poll that timed out on an overloaded machine is not healthy: its series
            // may expire then, by design.
            assert!(
                !healthy || now_published.contains(workspace),
                "{workspace}'s queue series disappeared while Honcho is healthy (status up {:?}, last success {:?}, now {})",
                select(
                    &samples,
                    "honcho_exporter_up",
                    &[("workspace", workspace), ("upstream", "status")]
                )
                .first()
                .map(|sample| sample.value),
                last_success(&samples, workspace, "status"),
                unix_now()
            );
        }
        for workspace in &now_published {
            first_seen
                .entry(workspace.clone())
                .or_insert_with(|| samples.clone());
        }
        present = now_published;
        if big_first_status.is_none() {
            big_first_status = last_success(&samples, &big, "status");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let meter = honcho.simulator.cost_meter();
    let elapsed = started.elapsed().as_secs_f64();
    exporter.stop().await;

    assert_eq!(present.len(), names.len(), "every workspace is published");
    // No head-of-line blocking: every small workspace was published with a status that
    // arrived before the big workspace's first (slow) status did; a poller that publishes a
    // whole cycle at once stamps them all with the cycle's end.
    let big_polled = big_first_status.expect("the big workspace is polled");
    for workspace in names.iter().skip(2) {
        let first = &first_seen[workspace];
        let status_at = last_success(first, workspace, "status").expect("status success");
        assert!(
            status_at < big_polled,
            "{workspace} was first published at {status_at}, not before the big status at {big_polled}"
        );
    }
    // The in-flight cap.
    assert!(
        meter.peak_in_flight <= CAP as u64,
        "{} requests in flight at once, cap {CAP}",
        meter.peak_in_flight
    );
    // Honcho busy time under the duty rule's bound. Per workspace and job (status; the walk;
    // the head page, sent on its own while a walk of several pages runs), a run of cost C
    // starts at most every max(interval, k × C) and is busy C, so in the window W the job is
    // busy at most min(W, C × the runs that can start in W). Averaged over whole periods that
    // is min(C / interval, 1/k) of the time (the documented long-run share); a walk whose one
    // run outlasts the window is busy throughout it (its pages follow each other: the rule
    // spaces runs, not the pages of a run).
    let window = elapsed;
    let interval = INTERVAL.as_secs_f64();
    let job_bound = |cost: f64| {
        let period = interval.max(DUTY * cost);
        window.min(cost * (window / period).ceil())
    };
    let (mut bound, mut long_run) = (0.0, 0.0);
    for workspace in &names {
        let pages = units_of(workspace).div_ceil(PAGE_SIZE as usize) as f64;
        let status = model.status_latency(Some(workspace)).as_secs_f64();
        let page = model.page_latency(Some(workspace)).as_secs_f64();
        let mut jobs = vec![status, pages * page];
        if pages > 1.0 {
            jobs.push(page);
        }
        for cost in jobs {
            bound += job_bound(cost) / window;
            long_run += (cost / interval).min(1.0 / DUTY);
        }
    }
    let busy = meter.busy_seconds / elapsed;
    eprintln!(
        "Honcho busy {busy:.3} request-seconds per second over {window:.1} s (bound {bound:.3}, long-run share {long_run:.3}), peak in flight {} of {CAP}, {} costed requests",
        meter.peak_in_flight, meter.requests
    );
    assert!(
        busy <= bound * 1.1,
        "Honcho busy {busy:.3} request-seconds per second, bound {bound:.3}"
    );
    honcho.shutdown().await;
}

#[tokio::test]
async fn a_failing_workspace_loses_its_queue_series_exactly_when_its_bound_passes() {
    let honcho = Simulator::start(SimulatorConfig::recorded(Generation::C))
        .await
        .expect("simulator binds loopback");
    const TARGET: &str = "globex-research";
    let mut settings = test_settings(&honcho.url());
    // A bound that passes between two polls (mid-cycle): interval 3 s, bound 3.5 s.
    settings.poll.interval = Duration::from_secs(3);
    settings.poll.timeout = Duration::from_secs(1);
    settings.poll.max_staleness = Duration::from_millis(3500);
    let (exporter, base) = start_unready(settings).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let succeeded_at = loop {
        let samples = scrape(&base).await;
        if let Some(at) = last_success(&samples, TARGET, "status") {
            break at;
        }
        assert!(Instant::now() < deadline, "no status success");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::ServerError { status: 503 })
            .for_workspace(TARGET)
            .for_endpoint(EndpointKind::Status),
    ));
    let bound = succeeded_at + 3.5;
    let has_items = |samples: &[ParsedSample]| {
        !select(samples, "honcho_queue_items", &[("workspace", TARGET)]).is_empty()
    };
    let (mut before, mut after) = (0, 0);
    while unix_now() < bound + 1.0 {
        let asked = unix_now();
        let samples = scrape(&base).await;
        let answered = unix_now();
        let current = last_success(&samples, TARGET, "status");
        if current != Some(succeeded_at) {
            // A poll succeeded before the fault took hold: start over is not needed, the
            // bound only moved later; skip this scrape.
            continue;
        }
        if answered < bound {
            assert!(
                has_items(&samples),
                "served before its bound ({asked} < {bound})"
            );
            before += 1;
        } else if asked >= bound {
            assert!(
                !has_items(&samples),
                "served at {asked}, past its bound {bound} (mid-cycle: the next poll is later)"
            );
            after += 1;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(
        before > 0 && after > 0,
        "scrapes on both sides of the bound"
    );
    exporter.stop().await;
    honcho.shutdown().await;
}

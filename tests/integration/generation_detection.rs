//! Generation detection under partial upgrades (issue 13, bug 1), over loopback: the recorded
//! generation C simulator with a fault knob that makes queue/work-units answer Honcho's route
//! 404 (`{"detail":"Not Found"}`) for one workspace, then for all of them.
//!
//! A feature is a property of the server: one workspace's 404 marks only that workspace's walk
//! down; when most workspaces answer 404 the endpoint is gone for all of them, and no
//! `up{endpoint="work_units"}` stays behind.

use std::time::{Duration, Instant};

use honcho_exporter::config::Settings;
use honcho_sim::{
    EndpointKind, FaultAction, FaultRule, Faults, Generation, Simulator, SimulatorConfig,
};

use crate::end_to_end::{start_ready, test_settings};
use crate::util::{ParsedSample, scrape, scrape_until, select, sum};

/// The workspace that answers 404 alone first (slow, so its outcome arrives last).
const TARGET: &str = "globex-research";
const OTHERS: [&str; 3] = ["acme-support", "initech-empty", "umbrella-archive"];
const INTERVAL: Duration = Duration::from_millis(300);

fn settings(url: &str) -> Settings {
    let mut settings = test_settings(url);
    settings.poll.interval = INTERVAL;
    settings.poll.timeout = Duration::from_secs(1);
    settings.poll.max_staleness = Duration::from_millis(1500);
    settings
}

fn value(samples: &[ParsedSample], family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    select(samples, family, labels)
        .first()
        .map(|sample| sample.value)
}

fn up(samples: &[ParsedSample], workspace: &str) -> Option<f64> {
    value(
        samples,
        "honcho_exporter_up",
        &[("workspace", workspace), ("upstream", "work_units")],
    )
}

fn generation(samples: &[ParsedSample]) -> &'static str {
    ["a", "b", "c"]
        .into_iter()
        .find(|generation| {
            sum(
                samples,
                "honcho_exporter_api_generation",
                &[("generation", generation)],
            ) == 1.0
        })
        .unwrap_or("none")
}

fn work_units_feature(samples: &[ParsedSample]) -> Option<f64> {
    value(
        samples,
        "honcho_exporter_feature_available",
        &[("feature", "work_units")],
    )
}

#[tokio::test]
async fn one_workspaces_404_on_work_units_marks_only_its_walk_down_and_a_rollback_takes_all() {
    let honcho = Simulator::start(SimulatorConfig::recorded(Generation::C))
        .await
        .expect("simulator binds loopback");
    let (exporter, base) = start_ready(settings(&honcho.url())).await;
    scrape_until(&base, "every workspace walked on generation c", |samples| {
        generation(samples) == "c"
            && OTHERS
                .iter()
                .chain([&TARGET])
                .all(|workspace| up(samples, workspace) == Some(1.0))
    })
    .await;

    // A rolling deploy: one (slow) workspace's work-units route answers 404.
    let mut one = FaultRule::new(FaultAction::RouteNotFound)
        .for_workspace(TARGET)
        .for_endpoint(EndpointKind::WorkUnits);
    one.latency_ms = 100;
    honcho.simulator.set_faults(Faults::one(one));
    scrape_until(&base, "the target's walk is down", |samples| {
        up(samples, TARGET) == Some(0.0)
    })
    .await;
    let started = Instant::now();
    while started.elapsed() < INTERVAL * 8 {
        let samples = scrape(&base).await;
        assert_eq!(generation(&samples), "c", "the generation never flips");
        assert_eq!(work_units_feature(&samples), Some(1.0));
        assert_eq!(
            up(&samples, TARGET),
            Some(0.0),
            "the target's own walk is down"
        );
        assert!(
            sum(
                &samples,
                "honcho_exporter_poll_errors_total",
                &[("upstream", "work_units"), ("reason", "http_4xx")]
            ) > 0.0
        );
        for workspace in OTHERS {
            assert_eq!(up(&samples, workspace), Some(1.0), "{workspace} stays up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A rollback to generation B: every workspace's route answers 404.
    honcho.simulator.set_faults(Faults::one(
        FaultRule::new(FaultAction::RouteNotFound).for_endpoint(EndpointKind::WorkUnits),
    ));
    scrape_until(&base, "the endpoint is judged gone", |samples| {
        generation(samples) == "b" && work_units_feature(samples) == Some(0.0)
    })
    .await;
    let started = Instant::now();
    while started.elapsed() < INTERVAL * 6 {
        let samples = scrape(&base).await;
        assert_eq!(generation(&samples), "b");
        for workspace in OTHERS.iter().chain([&TARGET]) {
            assert_eq!(
                up(&samples, workspace),
                None,
                "{workspace}: no work_units health once the endpoint is gone (never stuck at 1)"
            );
        }
        assert!(select(&samples, "honcho_queue_work_units", &[]).is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    exporter.stop().await;
    honcho.shutdown().await;
}

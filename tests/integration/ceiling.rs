//! The ceiling on cardinality end to end: the simulator with more workspaces than
//! `workspaces.max_exported`, the real exporter polling it, `/metrics` scraped over HTTP. The
//! top N workspaces are exported in full, the rest are one `workspace="__other__"`, and the
//! sums per state are still the simulator's totals; the detail switches remove their families.

use std::collections::BTreeSet;

use honcho_sim::{Generation, Scale, Scenario, Simulator, SimulatorConfig, SimulatorHandle};

use crate::end_to_end::{start_ready, test_settings};
use crate::util::{ParsedSample, scrape_until, select, sum};

const WORKSPACES: u32 = 12;
const MAX_EXPORTED: usize = 5;

/// A frozen (speed 0) healthy queue of [`WORKSPACES`] workspaces.
async fn simulator() -> SimulatorHandle {
    Simulator::start(SimulatorConfig {
        scenario: Scenario::Healthy,
        scale: Scale {
            workspaces: WORKSPACES,
            sessions_per_workspace: 3,
            work_units_per_workspace: 20,
        },
        speed: 0.0,
        ..SimulatorConfig::recorded(Generation::C)
    })
    .await
    .expect("simulator starts")
}

/// The `workspace` label values of `family`.
fn workspaces_of(samples: &[ParsedSample], family: &str) -> BTreeSet<String> {
    select(samples, family, &[])
        .iter()
        .filter_map(|sample| sample.labels.get("workspace").cloned())
        .collect()
}

#[tokio::test]
async fn beyond_the_ceiling_the_rest_is_one_other_workspace_and_sums_per_state_stay_exact() {
    let simulator = simulator().await;
    let truth = simulator.simulator.truth();
    assert_eq!(truth.workspaces.len(), WORKSPACES as usize);
    let mut settings = test_settings(&simulator.url());
    settings.export.max_exported_workspaces = MAX_EXPORTED;
    let (exporter, base) = start_ready(settings).await;
    let expected = |state: &str| -> f64 {
        truth
            .workspaces
            .values()
            .map(|workspace| {
                let status = &workspace.status;
                match state {
                    "completed" => status.completed,
                    "in_progress" => status.in_progress,
                    "pending_ready" => status.pending_ready,
                    _ => status.pending_stalled,
                }
            })
            .sum::<u64>() as f64
    };
    let states = [
        "completed",
        "in_progress",
        "pending_ready",
        "pending_stalled",
    ];
    // Every workspace's status is in once the totals match (the queue is frozen).
    let samples = scrape_until(&base, "the simulator's totals per state", |samples| {
        states
            .iter()
            .all(|state| sum(samples, "honcho_queue_items", &[("state", state)]) == expected(state))
    })
    .await;
    for state in states {
        assert_eq!(
            sum(&samples, "honcho_queue_items", &[("state", state)]),
            expected(state),
            "sum by (state) of honcho_queue_items for {state}"
        );
    }
    let exported = workspaces_of(&samples, "honcho_queue_items");
    assert_eq!(exported.len(), MAX_EXPORTED + 1, "{exported:?}");
    assert!(exported.contains("__other__"));
    for family in ["honcho_queue_work_units", "honcho_queue_pending_tokens"] {
        assert_eq!(workspaces_of(&samples, family), exported, "{family}");
    }
    // The exported ones are the largest backlogs.
    let pending = |name: &str| truth.workspaces[name].status.pending;
    let smallest_exported = exported
        .iter()
        .filter(|name| *name != "__other__")
        .map(|name| pending(name))
        .min()
        .expect("exported workspaces");
    let largest_folded = truth
        .workspaces
        .keys()
        .filter(|name| !exported.contains(*name))
        .map(|name| pending(name))
        .max()
        .expect("folded workspaces");
    assert!(smallest_exported >= largest_folded);
    // Detail only for the exported ones; the ceiling's own numbers.
    assert!(!workspaces_of(&samples, "honcho_queue_session_items").contains("__other__"));
    let folded = (WORKSPACES as usize - MAX_EXPORTED) as f64;
    assert_eq!(
        sum(&samples, "honcho_exporter_workspaces", &[]),
        f64::from(WORKSPACES)
    );
    assert_eq!(
        sum(&samples, "honcho_exporter_workspaces_rolled_up", &[]),
        folded
    );
    assert!(
        sum(
            &samples,
            "honcho_exporter_series_capped_total",
            &[("family", "workspaces")]
        ) >= folded
    );
    assert_eq!(
        sum(
            &samples,
            "honcho_exporter_up",
            &[("workspace", "__other__"), ("upstream", "status")]
        ),
        1.0
    );
    exporter.stop().await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn switched_off_detail_families_have_no_samples_and_the_totals_are_unchanged() {
    let simulator = simulator().await;
    let mut settings = test_settings(&simulator.url());
    settings.export.session_items = false;
    settings.export.session_info = false;
    settings.export.work_unit_detail = false;
    let (exporter, base) = start_ready(settings).await;
    let samples = scrape_until(&base, "every workspace's work units", |samples| {
        workspaces_of(samples, "honcho_queue_work_units").len() == WORKSPACES as usize
    })
    .await;
    for family in [
        "honcho_queue_session_items",
        "honcho_queue_session_info",
        "honcho_queue_work_unit_age_seconds",
        "honcho_queue_work_unit_pending_tokens",
        "honcho_queue_work_unit_tokens_until_threshold",
    ] {
        assert!(
            select(&samples, family, &[]).is_empty(),
            "{family} exported"
        );
    }
    assert_eq!(
        workspaces_of(&samples, "honcho_queue_items").len(),
        WORKSPACES as usize,
        "under the ceiling every workspace is exported, no __other__"
    );
    assert!(select(&samples, "honcho_exporter_workspaces_rolled_up", &[]).is_empty());
    exporter.stop().await;
    simulator.shutdown().await;
}

//! The Honcho cost model (off by default): answers to queue/status and to each work-units page
//! take as long as a real Honcho's database takes for the workspace's backlog, time-scaled, and
//! the requests in flight and Honcho's busy time are counted.
//!
//! Measured on 2 cores, PostgreSQL 15, one Honcho API worker (`shared/honcho-schema.md`,
//! "Measured cost"): queue/status ≈ 36 µs × the workspace's queue rows; one work-units page ≈
//! 50 ms + 4.3 µs × its unprocessed rows (every page re-aggregates the whole workspace). The
//! rows of a workspace are given per workspace (a backlog larger than the data served can be
//! modelled: what matters for the load is the latency, not the bytes), else a default.
//!
//! Owns only timing and counting; it never changes an answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// queue/status cost per queue row.
const STATUS_PER_ROW: Duration = Duration::from_nanos(36_000);
/// Fixed cost of one work-units page.
const PAGE_BASE: Duration = Duration::from_millis(50);
/// Work-units page cost per unprocessed row.
const PAGE_PER_ROW: Duration = Duration::from_nanos(4_300);

/// The cost model's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostModel {
    /// Time-scaling: modelled seconds per real second (20 → a 5.46 s status answers in 0.273 s).
    pub speed: f64,
    /// Queue rows per workspace name.
    #[serde(default)]
    pub rows: BTreeMap<String, u64>,
    /// Rows of a workspace not in `rows`.
    #[serde(default)]
    pub default_rows: u64,
}

impl CostModel {
    /// A model at `speed` where every workspace has `default_rows` rows.
    pub fn new(speed: f64, default_rows: u64) -> Self {
        CostModel {
            speed,
            rows: BTreeMap::new(),
            default_rows,
        }
    }

    /// Gives `workspace` a backlog of `rows` queue rows.
    pub fn with_rows(mut self, workspace: impl Into<String>, rows: u64) -> Self {
        self.rows.insert(workspace.into(), rows);
        self
    }

    fn rows_of(&self, workspace: Option<&str>) -> u64 {
        workspace
            .and_then(|name| self.rows.get(name))
            .copied()
            .unwrap_or(self.default_rows)
    }

    /// How long Honcho takes for queue/status of `workspace`, time-scaled.
    pub fn status_latency(&self, workspace: Option<&str>) -> Duration {
        self.scaled(STATUS_PER_ROW * saturating_u32(self.rows_of(workspace)))
    }

    /// How long Honcho takes for one work-units page of `workspace`, time-scaled.
    pub fn page_latency(&self, workspace: Option<&str>) -> Duration {
        self.scaled(PAGE_BASE + PAGE_PER_ROW * saturating_u32(self.rows_of(workspace)))
    }

    fn scaled(&self, modelled: Duration) -> Duration {
        if self.speed > 0.0 && self.speed.is_finite() {
            modelled.div_f64(self.speed)
        } else {
            modelled
        }
    }
}

fn saturating_u32(rows: u64) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX)
}

/// What the cost model saw: requests in flight now and at most, and the time Honcho was busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostMeter {
    /// Costed requests being answered now.
    pub in_flight: u64,
    /// The most costed requests answered at once.
    pub peak_in_flight: u64,
    /// Sum of the costed requests' modelled latencies, in real seconds (request-seconds: 2
    /// requests of 1 s at once count 2 s).
    pub busy_seconds: f64,
    /// Costed requests answered.
    pub requests: u64,
}

/// The cost model in force and its meter.
#[derive(Debug, Default)]
pub(crate) struct Costing {
    model: Mutex<Option<CostModel>>,
    meter: Mutex<CostMeter>,
}

impl Costing {
    pub(crate) fn set(&self, model: Option<CostModel>) {
        *self.model.lock().expect("cost lock not poisoned") = model;
        *self.meter.lock().expect("meter lock not poisoned") = CostMeter::default();
    }

    pub(crate) fn meter(&self) -> CostMeter {
        *self.meter.lock().expect("meter lock not poisoned")
    }

    /// Starts the meter afresh, keeping the model: requests answered now stay in flight (and
    /// are the new peak), the counts and the busy time restart from zero.
    pub(crate) fn reset_meter(&self) {
        let mut meter = self.meter.lock().expect("meter lock not poisoned");
        *meter = CostMeter {
            in_flight: meter.in_flight,
            peak_in_flight: meter.in_flight,
            ..CostMeter::default()
        };
    }

    /// Waits as long as Honcho would for this request (`page`: a work-units page, else
    /// queue/status), counting it in flight meanwhile. No model: returns at once.
    pub(crate) async fn spend(&self, workspace: Option<&str>, page: bool) {
        let latency = {
            let model = self.model.lock().expect("cost lock not poisoned");
            match model.as_ref() {
                None => return,
                Some(model) if page => model.page_latency(workspace),
                Some(model) => model.status_latency(workspace),
            }
        };
        {
            let mut meter = self.meter.lock().expect("meter lock not poisoned");
            meter.in_flight += 1;
            meter.peak_in_flight = meter.peak_in_flight.max(meter.in_flight);
        }
        tokio::time::sleep(latency).await;
        let mut meter = self.meter.lock().expect("meter lock not poisoned");
        meter.in_flight -= 1;
        meter.requests += 1;
        meter.busy_seconds += latency.as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_follow_the_measured_cost_time_scaled() {
        let model = CostModel::new(1.0, 3_000).with_rows("big", 150_000);
        // 150 k rows: status 5.4 s, a page 0.695 s (measured 5.46 s and 0.70 s).
        assert_eq!(
            model.status_latency(Some("big")),
            Duration::from_millis(5_400)
        );
        assert_eq!(model.page_latency(Some("big")), Duration::from_millis(695));
        assert_eq!(
            model.page_latency(Some("small")),
            Duration::from_micros(62_900)
        );
        let fast = CostModel::new(20.0, 0).with_rows("big", 150_000);
        assert_eq!(fast.status_latency(Some("big")), Duration::from_millis(270));
    }

    #[tokio::test]
    async fn the_meter_counts_requests_in_flight_and_busy_time() {
        let costing = Costing::default();
        costing.spend(Some("w"), true).await;
        assert_eq!(costing.meter(), CostMeter::default(), "off by default");
        costing.set(Some(CostModel::new(1000.0, 0)));
        futures_util::future::join(
            costing.spend(Some("w"), true),
            costing.spend(Some("w"), false),
        )
        .await;
        let meter = costing.meter();
        assert_eq!(meter.requests, 2);
        assert_eq!(meter.peak_in_flight, 2);
        assert_eq!(meter.in_flight, 0);
        costing.reset_meter();
        assert_eq!(costing.meter(), CostMeter::default());
        assert!(meter.busy_seconds > 0.0);
    }
}

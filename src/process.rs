//! TODO (process metrics helper)
use crate::metric::MetricFamily;

/// Placeholder until the process module lands.
pub fn process_families() -> Vec<MetricFamily> {
    Vec::new()
}

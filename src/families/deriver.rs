//! The deriver settings Honcho reports in the work-units envelope. Pure; exporter-wide samples
//! only.

use crate::metric::{MetricFamily, MetricType};

use super::{Part, global_only};

/// The deriver families, in output order.
pub(super) fn deriver_families(part: &Part<'_>, families: &mut Vec<MetricFamily>) {
    let snapshot = part.snapshot;
    let mut max_tokens = MetricFamily::new(
        "honcho_deriver_representation_batch_max_tokens",
        "Honcho's DERIVER_REPRESENTATION_BATCH_MAX_TOKENS, from the work-units envelope",
        MetricType::Gauge,
    );
    if let Some(value) = snapshot.batch_max_tokens {
        max_tokens.push(Vec::new(), value as f64);
    }
    let mut flush = MetricFamily::new(
        "honcho_deriver_flush_enabled",
        "1 if Honcho's DERIVER_FLUSH_ENABLED is on (nothing is ever stalled), from the work-units envelope",
        MetricType::Gauge,
    );
    if let Some(value) = snapshot.flush_enabled {
        flush.push(Vec::new(), f64::from(u8::from(value)));
    }
    global_only(part, [&mut max_tokens, &mut flush]);
    families.extend([max_tokens, flush]);
}

//! The families of the source in use, and the database source's own numbers (query and mapping
//! time, schema revision). Pure: reads the snapshot it is given, nothing else.

use crate::metric::{MetricFamily, MetricType};
use crate::snapshot::Snapshot;

use super::labels;

/// The source in use, and the database source's own numbers.
pub(super) fn postgres_families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    let postgres = snapshot.exporter.postgres.as_ref();
    let mut source = MetricFamily::new(
        "honcho_exporter_source",
        "Where the queue numbers come from: api (Honcho's HTTP API) or postgres (Honcho's database)",
        MetricType::Gauge,
    );
    for name in ["api", "postgres"] {
        let in_use = (name == "postgres") == postgres.is_some();
        source.push(labels(&[("source", name)]), f64::from(u8::from(in_use)));
    }
    let mut database_time = MetricFamily::new(
        "honcho_exporter_postgres_query_duration_seconds",
        "Time the last successful database cycle spent waiting on Honcho's database (one read-only transaction over all workspaces)",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut mapping_time = MetricFamily::new(
        "honcho_exporter_postgres_mapping_duration_seconds",
        "Time the last successful database cycle spent in the exporter mapping rows onto metrics",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    let mut revision = MetricFamily::new(
        "honcho_exporter_postgres_schema",
        "Honcho's schema revision (alembic_version) as last checked, and the Honcho it belongs to (unknown: columns checked, revision not known)",
        MetricType::Info,
    );
    if let Some(stats) = postgres {
        if let Some(value) = stats.database_time {
            database_time.push(Vec::new(), value.as_secs_f64());
        }
        if let Some(value) = stats.mapping_time {
            mapping_time.push(Vec::new(), value.as_secs_f64());
        }
        if let Some(value) = &stats.schema_revision {
            let honcho = stats.honcho_version.unwrap_or("unknown");
            revision.push(labels(&[("revision", value), ("honcho", honcho)]), 1.0);
        }
    }
    let mut families = vec![source, database_time, mapping_time, revision];
    if let Some(rejected) = postgres.and_then(|stats| stats.password_reload_errors.as_ref()) {
        let mut password = MetricFamily::new(
            "honcho_exporter_postgres_password_reload_errors",
            "Changes of the database password file that were not used, by reason (unreadable, empty): the previous password stays in use. Each version of the file counts once",
            MetricType::Counter,
        );
        for (reason, count) in rejected {
            password.push(labels(&[("reason", reason)]), *count as f64);
        }
        families.push(password);
    }
    families
}

//! The connection to Honcho's database: the URL's options (libpq's `sslmode` values, the
//! password from its file or variable), TLS through rustls with the `ring` provider (no
//! OpenSSL), the schema check, and the cycle's read-only transaction that streams the cycle
//! query's aggregate rows into a [`CycleAccumulator`]. Holds no queue data between cycles.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, pin_mut};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, NoTls, Row};

use super::accumulator::CycleAccumulator;
use super::error::PostgresError;
use super::mapping::{CycleRow, StateItems, state_of_code};
use super::queries::{
    self, ColumnCheck, CycleParameters, NEEDED_COLUMNS, SchemaProblem, evaluate_schema, row_kind,
};
use crate::classify::UnitState;
use crate::config::Secret;
use crate::config::postgres_url::{ConnectOptions, TlsMode};

/// `work_mem` of the cycle's transaction: the hash aggregate of ~400 k work units (1 M queue
/// rows) fits without spilling (PostgreSQL may use up to `hash_mem_multiplier` × this).
pub const WORK_MEM: &str = "64MB";

/// Builds the rustls configuration: the CA file's certificates, or the system's roots.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, PostgresError> {
    crate::install_crypto_provider();
    // `postgres.ca_file` replaces the system roots (it names the CA that signs the server).
    let roots = crate::tls_roots::root_store(
        "postgres.ca_file",
        ca_file,
        crate::tls_roots::CaRule::ReplaceSystemRoots,
    )
    .map_err(|error| PostgresError::Connect(error.to_string()))?;
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Opens a connection with `password` (if any) and spawns its driver task on the current
/// runtime. The connect timeout bounds the TCP, TLS and login steps.
pub async fn connect(
    options: &ConnectOptions,
    tls: &Arc<rustls::ClientConfig>,
    password: Option<&Secret>,
    timeout: Duration,
) -> Result<Client, PostgresError> {
    let mut config = options.config.clone();
    config.connect_timeout(timeout);
    if let Some(password) = password {
        config.password(password.expose());
    }
    let connecting = async {
        match options.tls {
            TlsMode::Disable => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(drive(connection));
                Ok::<Client, tokio_postgres::Error>(client)
            }
            TlsMode::Prefer | TlsMode::Require => {
                let make_tls = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = config.connect(make_tls).await?;
                tokio::spawn(drive(connection));
                Ok(client)
            }
        }
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(result) => result.map_err(|error| PostgresError::from(error).at_login()),
        Err(_) => Err(PostgresError::Connect(format!(
            "no connection within {timeout:?}"
        ))),
    }
}

async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(error) = connection.await {
        tracing::debug!(%error, "the database connection ended");
    }
}

/// The schema as the check found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// `alembic_version.version_num`, or `unknown` when the table is absent or empty.
    pub revision: String,
}

/// Reads the revision and checks every needed column exists and is readable.
pub async fn check_schema(client: &Client) -> Result<SchemaInfo, PostgresError> {
    let tables: Vec<&str> = NEEDED_COLUMNS.iter().map(|(table, _)| *table).collect();
    let columns: Vec<&str> = NEEDED_COLUMNS.iter().map(|(_, column)| *column).collect();
    let rows = client
        .query(queries::SCHEMA_CHECK, &[&tables, &columns])
        .await?;
    let checks: Vec<ColumnCheck> = rows
        .iter()
        .map(|row| ColumnCheck {
            table: row.get(0),
            column: row.get(1),
            table_present: row.get(2),
            column_present: row.get(3),
            readable: row.get(4),
        })
        .collect();
    match evaluate_schema(&checks) {
        Some(SchemaProblem::Missing(missing)) => {
            return Err(PostgresError::Schema(format!(
                "missing {}",
                missing.join(", ")
            )));
        }
        Some(SchemaProblem::Unreadable(columns)) => {
            return Err(PostgresError::Permission(format!(
                "cannot SELECT {}",
                columns.join(", ")
            )));
        }
        None => {}
    }
    let has_revision: bool = client
        .query_one(queries::REVISION_TABLE_PRESENT, &[])
        .await?
        .get(0);
    let revision = if has_revision {
        client
            .query_opt(queries::REVISION, &[])
            .await?
            .map(|row| row.get::<_, String>(0))
            .unwrap_or_else(|| "unknown".to_string())
    } else {
        "unknown".to_string()
    };
    Ok(SchemaInfo { revision })
}

/// What one cycle's transaction measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CycleCost {
    /// Wall time from BEGIN to COMMIT.
    pub transaction: Duration,
    /// Of it, time spent in the exporter's own mapping of the rows.
    pub mapping: Duration,
    /// Aggregate rows read (they grow with workspaces and sessions, not with work units).
    pub rows: u64,
}

/// Runs one cycle: in one read-only repeatable-read transaction (a consistent snapshot of all
/// workspaces), the workspace list, then the cycle query — with the accumulator and the
/// parameters (the selected workspaces among them) that `plan` builds from the list — streamed
/// into the accumulator.
pub async fn read_cycle(
    client: &mut Client,
    statement_timeout: Duration,
    plan: impl FnOnce(Vec<String>) -> (CycleAccumulator, CycleParameters),
) -> Result<(CycleAccumulator, CycleCost), PostgresError> {
    let started = Instant::now();
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let milliseconds = statement_timeout.as_millis().max(1);
    transaction
        // JIT compiling the cycle query costs more than it saves (1.5 s at 100 k rows), and
        // its hash aggregate spills to disk at the default 4 MB work_mem from ~100 k work units
        // (twice the time at 1 M rows): this one transaction may use WORK_MEM.
        .batch_execute(&format!(
            "SET LOCAL statement_timeout = {milliseconds}; SET LOCAL jit = off; \
             SET LOCAL work_mem = '{WORK_MEM}'"
        ))
        .await?;
    let names: Vec<String> = transaction
        .query(queries::WORKSPACES, &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut mapping = Duration::ZERO;
    let (mut accumulator, parameters) = plan(names);
    let mut count = 0u64;
    let bound: [&(dyn ToSql + Sync); 9] = [
        &parameters.workspaces,
        &parameters.batch_max_tokens,
        &parameters.flush_enabled,
        &parameters.overdue_boundary_micros,
        &parameters.detail_limit,
        &parameters.scope_sessions,
        &parameters.scope_observers,
        &parameters.scope_senders,
        &parameters.full_workspaces,
    ];
    let rows = transaction.query_raw(queries::CYCLE, bound).await?;
    pin_mut!(rows);
    while let Some(row) = rows.next().await {
        let row = row?;
        let mapping_started = Instant::now();
        accumulator.add(&cycle_row(&row)?);
        mapping += mapping_started.elapsed();
        count += 1;
    }
    transaction.commit().await?;
    Ok((
        accumulator,
        CycleCost {
            transaction: started.elapsed(),
            mapping,
            rows: count,
        },
    ))
}

/// Column `index` of `row` as a count: a negative number (a corrupt row) counts as 0 rather
/// than failing the cycle.
fn number(row: &Row, index: usize) -> Result<u64, PostgresError> {
    let value: Option<i64> = row.try_get(index)?;
    Ok(value.unwrap_or(0).max(0) as u64)
}

/// Column `index` of `row` as text that must be there.
fn text<'a>(row: &'a Row, index: usize, what: &str) -> Result<&'a str, PostgresError> {
    row.try_get::<_, Option<&str>>(index)?
        .ok_or_else(|| PostgresError::Query(format!("cycle row without {what}")))
}

/// The unit state of column 5.
fn state(row: &Row) -> Result<UnitState, PostgresError> {
    let code: Option<i32> = row.try_get(5)?;
    code.and_then(state_of_code)
        .ok_or_else(|| PostgresError::Query(format!("unknown unit state {code:?}")))
}

/// Column `index` as microseconds since the epoch.
fn micros(row: &Row, index: usize) -> Result<i64, PostgresError> {
    Ok(row.try_get::<_, Option<i64>>(index)?.unwrap_or(0))
}

/// Columns 6–9 as item counts by state.
fn items(row: &Row) -> Result<StateItems, PostgresError> {
    Ok(StateItems {
        completed: number(row, 6)?,
        in_progress: number(row, 7)?,
        stalled: number(row, 8)?,
        ready: number(row, 9)?,
    })
}

/// Reads one row of [`queries::CYCLE`].
fn cycle_row(row: &Row) -> Result<CycleRow<'_>, PostgresError> {
    let kind: i16 = row.try_get(0)?;
    if kind == row_kind::CELL {
        // A cell without a workspace is the sum over the folded workspaces.
        return Ok(CycleRow::Cell {
            workspace: row.try_get(1)?,
            task_type: text(row, 3, "a task type")?,
            state: state(row)?,
            units: number(row, 6)?,
            items: number(row, 7)?,
            tokens: number(row, 8)?,
            oldest_micros: micros(row, 9)?,
            largest_gated_tokens: row
                .try_get::<_, Option<i64>>(10)?
                .map(|value| value.max(0) as u64),
        });
    }
    let workspace = text(row, 1, "a workspace")?;
    Ok(match kind {
        row_kind::SESSION => CycleRow::Session {
            workspace,
            session_id: row.try_get(2)?,
            session_name: row.try_get(4)?,
            items: items(row)?,
        },
        row_kind::SCOPE => {
            let place: Option<i32> = row.try_get(5)?;
            let index = place
                .and_then(|place| usize::try_from(place).ok())
                .and_then(|place| place.checked_sub(1))
                .ok_or_else(|| PostgresError::Query(format!("scope place {place:?}")))?;
            CycleRow::Scope {
                workspace,
                index,
                items: items(row)?,
                folded: number(row, 10)? == 1,
            }
        }
        row_kind::FOLDED => CycleRow::Folded {
            workspace,
            items: items(row)?,
            sessions: number(row, 10)?,
            problems: number(row, 11)?,
        },
        row_kind::DETAIL => CycleRow::Detail {
            workspace,
            place: number(row, 6)?,
            work_unit_key: text(row, 2, "a work unit key")?,
            task_type: text(row, 3, "a task type")?,
            session_name: row.try_get(4)?,
            state: state(row)?,
            tokens: number(row, 8)?,
            oldest_micros: micros(row, 9)?,
        },
        other => {
            return Err(PostgresError::Query(format!(
                "unknown cycle row kind {other}"
            )));
        }
    })
}

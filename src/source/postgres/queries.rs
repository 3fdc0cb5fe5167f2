//! The SQL the database source runs, and the pure evaluation of the schema check's answer.
//!
//! Every statement names the columns it reads; none reads `queue.payload` or
//! `messages.content` (users' messages), so the role of `deploy/postgres/grant.sql`, which can
//! read nothing else, is enough. No I/O here.

/// Known schema revisions (`alembic_version.version_num`) and the Honcho they belong to.
pub const KNOWN_REVISIONS: &[(&str, &str)] = &[("110bdf470272", "2.x"), ("e4eba9cfaa6f", "3.x")];

/// Every (table, column) the source reads; the schema check verifies each exists and is
/// readable by the role.
pub const NEEDED_COLUMNS: &[(&str, &str)] = &[
    ("queue", "work_unit_key"),
    ("queue", "task_type"),
    ("queue", "session_id"),
    ("queue", "processed"),
    ("queue", "created_at"),
    ("queue", "workspace_name"),
    ("queue", "message_id"),
    ("messages", "id"),
    ("messages", "token_count"),
    ("active_queue_sessions", "work_unit_key"),
    ("sessions", "id"),
    ("sessions", "name"),
    ("workspaces", "name"),
];

/// For each needed column: whether its table exists, whether the column exists, and whether
/// the current role may SELECT it. Reads the catalog (which shows every column, unlike
/// `information_schema.columns`, which hides the ones the role cannot read). `$1`, `$2`: the
/// tables and columns as parallel text arrays.
pub const SCHEMA_CHECK: &str = "\
SELECT needed.table_name, needed.column_name,
       to_regclass(needed.table_name) IS NOT NULL AS table_present,
       attribute.attnum IS NOT NULL AS column_present,
       attribute.attnum IS NOT NULL
         AND has_column_privilege(to_regclass(needed.table_name), needed.column_name, 'SELECT') AS readable
FROM unnest($1::text[], $2::text[]) AS needed(table_name, column_name)
LEFT JOIN pg_catalog.pg_attribute AS attribute
       ON attribute.attrelid = to_regclass(needed.table_name)
      AND attribute.attname = needed.column_name
      AND NOT attribute.attisdropped";

/// Whether `alembic_version` exists (a Honcho database always has it).
pub const REVISION_TABLE_PRESENT: &str = "SELECT to_regclass('alembic_version') IS NOT NULL";

/// The schema revision.
pub const REVISION: &str = "SELECT version_num FROM alembic_version LIMIT 1";

/// The workspaces (the API's workspace "id" is the name).
pub const WORKSPACES: &str = "SELECT name FROM workspaces";

/// What each row of [`CYCLE`] is: the query returns four kinds of rows in one shape.
pub mod row_kind {
    /// Per workspace × task type × unit state: units, items, tokens, oldest, and (stalled and
    /// overdue) the largest token sum.
    pub const CELL: i16 = 0;
    /// Per workspace × session (NULL: the items of no session): the item counts and the name.
    pub const SESSION: i16 = 1;
    /// Per workspace × configured scope: the item counts of the matching units.
    pub const SCOPE: i16 = 2;
    /// One of a workspace's top-K problem units, with its place.
    pub const DETAIL: i16 = 3;
    /// Per workspace folded into the rest (beyond the query's `$9` full workspaces): its item
    /// counts, its sessions and its problem units (for the caps' counters), nothing else.
    pub const FOLDED: i16 = 4;
}

/// Unit states as the query codes them: the problem rank first (the detail order), ready last.
pub mod unit_state {
    /// Stalled for longer than `classify.overdue_after`.
    pub const OVERDUE: i32 = 0;
    /// Below the batch threshold, flush off.
    pub const STALLED: i32 = 1;
    /// Claimed by a deriver worker.
    pub const IN_PROGRESS: i32 = 2;
    /// Nothing holds it back.
    pub const READY: i32 = 3;
}

/// The one pass of a cycle: the database groups the tracked rows of the selected workspaces
/// into work units, classifies each unit and returns only aggregates, so the rows returned grow
/// with workspaces and sessions, never with work units or queue rows — and, with `$9`, the
/// rows of every workspace beyond the first `$9` come back folded, so what the exporter holds
/// is bounded by what it can export, not by how many workspaces exist.
///
/// Parameters: `$1 text[]` the selected workspaces (NULL: every workspace; the index on
/// `queue.workspace_name` serves a short list), `$2 int8` Honcho's
/// `DERIVER_REPRESENTATION_BATCH_MAX_TOKENS`, `$3 bool` `DERIVER_FLUSH_ENABLED`, `$4 int8` the
/// overdue boundary in microseconds since the epoch (a stalled unit whose oldest unprocessed row
/// is older is overdue: `ceil((now − overdue_after) × 10⁶)`), `$5 int8` detail units kept per
/// workspace, `$6`, `$7`, `$8 text[]` the scopes' session name, observer and sender filters
/// (parallel arrays, NULL for absent; a scope's place is its 1-based index), `$9 int8` how many
/// workspaces are returned in full (NULL: all of them).
///
/// The workspaces returned in full are the first `$9` of those with rows in the ceiling's export
/// order (`snapshot::rollup`: larger pending backlog first, then the older oldest ready item,
/// none last, then the name byte-wise); when every workspace is selected, only those of the
/// `workspaces` table count (the exporter ignores the rows of any other). The exporter asks
/// for `max_exported` + the hysteresis margin, the most the ceiling can choose from among
/// workspaces with rows (`CycleAccumulator`), so folding here never changes what is exported.
/// A folded workspace returns no session and no detail rows: its cells are summed into rows
/// whose `workspace_name` is NULL, and it has one [`row_kind::FOLDED`] row.
///
/// The rules are those of `classify.rs` and the API (shared/honcho-schema.md): a work unit is
/// the rows of one (`work_unit_key`, `session_id`) — the key already names the task type and the
/// workspace, and hashing two columns instead of four made the aggregate ~25% faster, so those
/// two are taken with a byte-wise `min`; its tokens are the sum of `messages.token_count` over its
/// unprocessed rows (one primary-key lookup per unprocessed row with a message, evaluated only
/// for those rows, never a join over every message ever stored); it is in progress when its key
/// is claimed in `active_queue_sessions` (then all its unprocessed rows are in progress, so a
/// pending unit's tokens are over pending rows only), else ready when not gated (not a
/// representation, or flush on) or at/over the threshold, else overdue past the boundary, else
/// stalled. Status items: completed = processed, in progress = unprocessed of a claimed unit,
/// stalled = unprocessed of a stalled or overdue unit, ready = the other unprocessed.
///
/// Rows (`kind`, `workspace_name`, `key`, `task_type`, `name`, `state`, `n1` … `n6`):
/// - [`row_kind::CELL`]: `task_type`, `state`; `n1` units, `n2` items, `n3` tokens, `n4` oldest
///   (µs), `n5` the largest tokens of a stalled or overdue unit (NULL otherwise);
///   `workspace_name` NULL: the sum over every folded workspace.
/// - [`row_kind::SESSION`]: `key` the session id (NULL for no session), `name` its name;
///   `n1` completed, `n2` in progress, `n3` stalled, `n4` ready.
/// - [`row_kind::SCOPE`]: `state` the scope's place; `n1` … `n4` as for sessions; `n5` 1 when
///   the workspace is folded (NULL otherwise).
/// - [`row_kind::FOLDED`]: `n1` … `n4` as for sessions, `n5` its sessions (not counting the
///   items of no session), `n6` its problem units (overdue, stalled, in progress).
/// - [`row_kind::DETAIL`]: `key`, `task_type`, `state`, `name` the session name; `n1` its
///   place (1 = most problematic: overdue, then stalled, then in progress; oldest first; then
///   the key byte-wise — the aggregator's order), `n3` tokens, `n4` oldest (µs).
///
/// Observer and observed peers come from the work unit key (`mapping::key_peers`, the same
/// parsing), never from `queue.payload`.
pub const CYCLE: &str = "\
WITH unit AS MATERIALIZED (
  SELECT grouped.workspace_name, grouped.work_unit_key, grouped.task_type, grouped.session_id,
         grouped.completed, grouped.unprocessed, grouped.tokens, grouped.oldest_micros,
         CASE WHEN grouped.unprocessed = 0 THEN NULL
              WHEN claimed.work_unit_key IS NOT NULL THEN 2
              WHEN grouped.task_type <> 'representation' OR $3::bool
                   OR grouped.tokens >= $2::int8 THEN 3
              WHEN grouped.oldest_micros < $4::int8 THEN 0
              ELSE 1 END AS state
  FROM (
    SELECT min(queue.workspace_name COLLATE \"C\") AS workspace_name, queue.work_unit_key,
           min(queue.task_type COLLATE \"C\") AS task_type, queue.session_id,
           count(*) FILTER (WHERE queue.processed) AS completed,
           count(*) FILTER (WHERE NOT queue.processed) AS unprocessed,
           coalesce(sum((SELECT message.token_count FROM messages AS message
                         WHERE message.id = queue.message_id))
                    FILTER (WHERE NOT queue.processed AND queue.message_id IS NOT NULL), 0)::int8
             AS tokens,
           (extract(epoch FROM min(queue.created_at) FILTER (WHERE NOT queue.processed))
             * 1000000)::int8 AS oldest_micros
    FROM queue
    WHERE queue.task_type IN ('representation', 'summary', 'dream')
      AND queue.workspace_name IS NOT NULL
      AND ($1::text[] IS NULL OR queue.workspace_name = ANY ($1::text[]))
    GROUP BY queue.work_unit_key, queue.session_id
  ) AS grouped
  LEFT JOIN active_queue_sessions AS claimed ON claimed.work_unit_key = grouped.work_unit_key
),
workspace AS MATERIALIZED (
  SELECT ranking.workspace_name, $9::int8 IS NULL OR ranking.place <= $9::int8 AS in_full
  FROM (
    SELECT unit.workspace_name,
           row_number() OVER (
             ORDER BY coalesce(sum(unit.unprocessed) FILTER (WHERE unit.state IN (0, 1, 3)), 0) DESC,
                      min(unit.oldest_micros) FILTER (WHERE unit.state = 3) ASC NULLS LAST,
                      unit.workspace_name COLLATE \"C\") AS place
    FROM unit
    WHERE $1::text[] IS NOT NULL
       OR EXISTS (SELECT FROM workspaces AS known
                  WHERE known.name = unit.workspace_name COLLATE \"C\")
    GROUP BY unit.workspace_name
  ) AS ranking
),
scope AS (
  SELECT filter.session_name, filter.observer, filter.sender, filter.place
  FROM unnest($6::text[], $7::text[], $8::text[]) WITH ORDINALITY
       AS filter(session_name, observer, sender, place)
),
counted AS (
  SELECT unit.workspace_name, unit.session_id, workspace.in_full,
         sum(unit.completed)::int8 AS completed,
         coalesce(sum(unit.unprocessed) FILTER (WHERE unit.state = 2), 0)::int8 AS in_progress,
         coalesce(sum(unit.unprocessed) FILTER (WHERE unit.state IN (0, 1)), 0)::int8 AS stalled,
         coalesce(sum(unit.unprocessed) FILTER (WHERE unit.state = 3), 0)::int8 AS ready,
         count(*) FILTER (WHERE unit.state IN (0, 1, 2))::int8 AS problems
  FROM unit
  JOIN workspace ON workspace.workspace_name = unit.workspace_name
  GROUP BY unit.workspace_name, unit.session_id, workspace.in_full
),
ranked AS (
  SELECT unit.workspace_name, unit.work_unit_key, unit.task_type, unit.session_id, unit.state,
         unit.tokens, unit.oldest_micros,
         row_number() OVER (PARTITION BY unit.workspace_name
                            ORDER BY unit.state, unit.oldest_micros,
                                     unit.work_unit_key COLLATE \"C\") AS place
  FROM unit
  JOIN workspace ON workspace.workspace_name = unit.workspace_name
  WHERE unit.state IN (0, 1, 2) AND workspace.in_full
)
SELECT 0::int2 AS kind,
       CASE WHEN workspace.in_full THEN unit.workspace_name END AS workspace_name,
       NULL::text AS key, unit.task_type, NULL::text AS name, unit.state,
       count(*)::int8 AS n1, sum(unit.unprocessed)::int8 AS n2, sum(unit.tokens)::int8 AS n3,
       min(unit.oldest_micros) AS n4,
       max(unit.tokens) FILTER (WHERE unit.state IN (0, 1)) AS n5, NULL::int8 AS n6
FROM unit
JOIN workspace ON workspace.workspace_name = unit.workspace_name
WHERE unit.state IS NOT NULL
GROUP BY 2, unit.task_type, unit.state
UNION ALL
SELECT 1::int2, counted.workspace_name, counted.session_id, NULL,
       (SELECT session.name FROM sessions AS session WHERE session.id = counted.session_id),
       NULL, counted.completed, counted.in_progress, counted.stalled, counted.ready, NULL, NULL
FROM counted
WHERE counted.in_full
UNION ALL
SELECT 4::int2, counted.workspace_name, NULL, NULL, NULL, NULL,
       sum(counted.completed)::int8, sum(counted.in_progress)::int8,
       sum(counted.stalled)::int8, sum(counted.ready)::int8,
       count(counted.session_id)::int8, sum(counted.problems)::int8
FROM counted
WHERE NOT counted.in_full
GROUP BY counted.workspace_name
UNION ALL
SELECT 2::int2, unit.workspace_name, NULL, NULL, NULL, scope.place::int4,
       sum(unit.completed)::int8,
       coalesce(sum(unit.unprocessed) FILTER (WHERE unit.state = 2), 0)::int8,
       coalesce(sum(unit.unprocessed) FILTER (WHERE unit.state IN (0, 1)), 0)::int8,
       coalesce(sum(unit.unprocessed) FILTER (WHERE unit.state = 3), 0)::int8,
       CASE WHEN workspace.in_full THEN NULL ELSE 1 END::int8, NULL
FROM unit
JOIN workspace ON workspace.workspace_name = unit.workspace_name
CROSS JOIN LATERAL (SELECT string_to_array(unit.work_unit_key, ':') AS parts) AS split
CROSS JOIN LATERAL (
  SELECT CASE WHEN cardinality(split.parts) = 5
                   AND split.parts[1] IN ('representation', 'dream') THEN split.parts[4] END
           AS observer,
         CASE WHEN cardinality(split.parts) = 4 AND split.parts[1] = 'representation'
                THEN split.parts[4]
              WHEN cardinality(split.parts) = 5
                   AND split.parts[1] IN ('representation', 'dream') THEN split.parts[5] END
           AS observed
) AS peers
JOIN scope
  ON (scope.session_name IS NULL
      OR scope.session_name = (SELECT session.name FROM sessions AS session
                               WHERE session.id = unit.session_id))
 AND ((scope.observer IS NULL AND scope.sender IS NULL)
      OR scope.observer = peers.observer OR scope.sender = peers.observed)
GROUP BY unit.workspace_name, scope.place, workspace.in_full
UNION ALL
SELECT 3::int2, ranked.workspace_name, ranked.work_unit_key, ranked.task_type,
       (SELECT session.name FROM sessions AS session WHERE session.id = ranked.session_id),
       ranked.state, ranked.place, NULL, ranked.tokens, ranked.oldest_micros, NULL, NULL
FROM ranked
WHERE ranked.place <= $5::int8";

/// The bind parameters of [`CYCLE`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleParameters {
    /// `$1`: the selected workspaces; `None` when every workspace is selected (no filter).
    pub workspaces: Option<Vec<String>>,
    /// `$2`: the batch threshold.
    pub batch_max_tokens: i64,
    /// `$3`: flush on.
    pub flush_enabled: bool,
    /// `$4`: the overdue boundary, microseconds since the epoch.
    pub overdue_boundary_micros: i64,
    /// `$5`: detail units per workspace.
    pub detail_limit: i64,
    /// `$6`: each scope's session name filter.
    pub scope_sessions: Vec<Option<String>>,
    /// `$7`: each scope's observer filter.
    pub scope_observers: Vec<Option<String>>,
    /// `$8`: each scope's sender filter.
    pub scope_senders: Vec<Option<String>>,
    /// `$9`: workspaces returned in full; `None`: all of them.
    pub full_workspaces: Option<i64>,
}

impl CycleParameters {
    /// The parameters for `scopes` (empty filters are absent, the API's rule), saturating the
    /// numbers into `int8`.
    pub fn new(
        workspaces: Option<Vec<String>>,
        batch_max_tokens: u64,
        flush_enabled: bool,
        overdue_boundary_micros: i64,
        detail_limit: usize,
        scopes: &[crate::config::Scope],
    ) -> Self {
        let given = |value: &Option<String>| value.clone().filter(|text| !text.is_empty());
        CycleParameters {
            workspaces,
            batch_max_tokens: i64::try_from(batch_max_tokens).unwrap_or(i64::MAX),
            flush_enabled,
            overdue_boundary_micros,
            detail_limit: i64::try_from(detail_limit).unwrap_or(i64::MAX),
            scope_sessions: scopes
                .iter()
                .map(|scope| given(&scope.session_id))
                .collect(),
            scope_observers: scopes
                .iter()
                .map(|scope| given(&scope.observer_id))
                .collect(),
            scope_senders: scopes.iter().map(|scope| given(&scope.sender_id)).collect(),
            full_workspaces: None,
        }
    }

    /// The same with `$9`: `full` workspaces returned in full (`None`: all).
    pub fn with_full_workspaces(self, full: Option<usize>) -> Self {
        CycleParameters {
            full_workspaces: full.map(|full| i64::try_from(full).unwrap_or(i64::MAX)),
            ..self
        }
    }
}

/// One needed column as the schema check reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnCheck {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// The table exists.
    pub table_present: bool,
    /// The column exists.
    pub column_present: bool,
    /// The role may read it.
    pub readable: bool,
}

/// What is wrong with the schema, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaProblem {
    /// Tables or columns missing (named, e.g. `table queue`, `column queue.task_type`).
    Missing(Vec<String>),
    /// Columns the role may not read (named `table.column`).
    Unreadable(Vec<String>),
}

/// Evaluates the schema check: missing tables or columns first (not a Honcho schema the source
/// can read), then unreadable columns (the grant is incomplete).
pub fn evaluate_schema(checks: &[ColumnCheck]) -> Option<SchemaProblem> {
    let mut missing: Vec<String> = Vec::new();
    for check in checks {
        let name = if !check.table_present {
            format!("table {}", check.table)
        } else if !check.column_present {
            format!("column {}.{}", check.table, check.column)
        } else {
            continue;
        };
        if !missing.contains(&name) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Some(SchemaProblem::Missing(missing));
    }
    let unreadable: Vec<String> = checks
        .iter()
        .filter(|check| !check.readable)
        .map(|check| format!("{}.{}", check.table, check.column))
        .collect();
    (!unreadable.is_empty()).then_some(SchemaProblem::Unreadable(unreadable))
}

/// The Honcho a revision belongs to, if known.
pub fn honcho_of_revision(revision: &str) -> Option<&'static str> {
    KNOWN_REVISIONS
        .iter()
        .find(|(known, _)| *known == revision)
        .map(|(_, honcho)| *honcho)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        table: &str,
        column: &str,
        table_present: bool,
        column_present: bool,
        readable: bool,
    ) -> ColumnCheck {
        ColumnCheck {
            table: table.into(),
            column: column.into(),
            table_present,
            column_present,
            readable,
        }
    }

    #[test]
    fn a_complete_readable_schema_has_no_problem() {
        assert_eq!(
            evaluate_schema(&[check("queue", "task_type", true, true, true)]),
            None
        );
    }

    #[test]
    fn a_missing_table_is_named_once_and_wins_over_privileges() {
        let problem = evaluate_schema(&[
            check("queue", "task_type", false, false, false),
            check("queue", "processed", false, false, false),
            check("messages", "token_count", true, true, false),
        ]);
        assert_eq!(
            problem,
            Some(SchemaProblem::Missing(vec!["table queue".into()]))
        );
    }

    #[test]
    fn a_dropped_column_is_named_with_its_table() {
        let problem = evaluate_schema(&[check("messages", "token_count", true, false, false)]);
        assert_eq!(
            problem,
            Some(SchemaProblem::Missing(vec![
                "column messages.token_count".into()
            ]))
        );
    }

    #[test]
    fn an_unreadable_column_is_a_privilege_problem() {
        let problem = evaluate_schema(&[check("sessions", "name", true, true, false)]);
        assert_eq!(
            problem,
            Some(SchemaProblem::Unreadable(vec!["sessions.name".into()]))
        );
    }

    #[test]
    fn no_statement_reads_message_content_or_the_payload() {
        for statement in [CYCLE, WORKSPACES, REVISION, SCHEMA_CHECK] {
            assert!(!statement.contains("payload"), "{statement}");
            assert!(!statement.contains("content"), "{statement}");
            assert!(
                !statement.contains('*') || statement.contains("count(*)"),
                "{statement}"
            );
        }
    }

    #[test]
    fn known_revisions_name_their_honcho() {
        assert_eq!(honcho_of_revision("110bdf470272"), Some("2.x"));
        assert_eq!(honcho_of_revision("e4eba9cfaa6f"), Some("3.x"));
        assert_eq!(honcho_of_revision("ffffffffffff"), None);
    }
}

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

/// The one pass: every tracked row of the queue grouped into work units, with the unit's
/// completed and unprocessed rows, the unprocessed rows' tokens and oldest time, whether the
/// unit is claimed, and its session's name.
///
/// Cost: one sequential scan of `queue` (its rows are the unprocessed ones plus up to ~12 h of
/// processed ones: Honcho's reconciler deletes the rest), a hash aggregate, and one primary-key
/// lookup in `messages` per *unprocessed* row with a message (the `FILTER` is evaluated before
/// the aggregate's argument, so processed rows cost no lookup; a correlated lookup rather than
/// a join keeps the planner from hashing the whole `messages` table, which holds every message
/// ever stored). `active_queue_sessions` (one row per claimed unit) and `sessions` are joined to
/// the groups, not to the rows. The groups are keyed by (`work_unit_key`, `session_id`) only:
/// the key already names the task type and the workspace (`{task_type}:{workspace}:…`), and
/// hashing two columns instead of four made the pass ~25% faster at 1 M rows; workspace and
/// task type are then taken with a byte-wise `min`.
pub const UNITS: &str = "\
WITH unit AS (
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
  GROUP BY queue.work_unit_key, queue.session_id
)
SELECT unit.workspace_name, unit.work_unit_key, unit.task_type, unit.session_id,
       session.name AS session_name, unit.completed, unit.unprocessed, unit.tokens,
       unit.oldest_micros, claimed.work_unit_key IS NOT NULL AS in_progress
FROM unit
LEFT JOIN active_queue_sessions AS claimed ON claimed.work_unit_key = unit.work_unit_key
LEFT JOIN sessions AS session ON session.id = unit.session_id";

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
        for statement in [UNITS, WORKSPACES, REVISION, SCHEMA_CHECK] {
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

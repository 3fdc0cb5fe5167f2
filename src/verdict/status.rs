//! The `/status` JSON (and `doctor --output json`): the [`Report`] in a documented, versioned
//! schema. The `schema` field names the version; a change that removes or renames a field, or
//! changes its meaning, bumps it (new fields may appear within a version). README's "/status"
//! section documents every field. Pure: serialization only.

use serde::Serialize;

use super::{Kind, Report, WorkspaceVerdicts};

/// The schema name and version of the document.
pub const SCHEMA: &str = "honcho_exporter.status/v1";

/// The document.
#[derive(Debug, Serialize)]
struct Document<'a> {
    schema: &'static str,
    /// RFC 3339, UTC.
    evaluated_at: String,
    evaluated_at_unix: f64,
    /// `ok` when every workspace is fine, else the worst verdict.
    worst: Kind,
    /// Every workspace's verdicts are `ok` or `waiting_for_tokens` and the exporter can see.
    healthy: bool,
    ready: bool,
    /// Why the exporter as a whole cannot see, or null.
    blind: Option<&'a str>,
    /// `a`, `b`, `c`, or null (database source, not detected yet).
    api_generation: Option<&'static str>,
    /// Seconds of history behind the windowed rules.
    history_seconds: f64,
    workspaces: &'a [WorkspaceVerdicts],
}

/// The report as the `/status` JSON document (pretty-printed, a final newline).
pub fn to_json(report: &Report) -> String {
    let document = Document {
        schema: SCHEMA,
        evaluated_at: rfc3339(report.evaluated_at),
        evaluated_at_unix: report.evaluated_at,
        worst: report.worst(),
        healthy: report.is_fine(),
        ready: report.ready,
        blind: report.blind.as_deref(),
        api_generation: report.generation.map(|generation| generation.as_str()),
        history_seconds: report.history_seconds,
        workspaces: &report.workspaces,
    };
    let mut text = serde_json::to_string_pretty(&document)
        .expect("the status document has only string keys and finite numbers");
    text.push('\n');
    text
}

fn rfc3339(unix: f64) -> String {
    let seconds = unix.floor();
    let nanos = ((unix - seconds) * 1e9) as u32;
    chrono::DateTime::from_timestamp(seconds as i64, nanos)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Basis, Finding};

    #[test]
    fn the_document_names_its_schema_and_every_verdict() {
        let report = Report {
            evaluated_at: 1_795_318_000.0,
            ready: true,
            workspaces: vec![WorkspaceVerdicts {
                workspace: "<w>".to_string(),
                findings: vec![Finding {
                    kind: Kind::DeriverIdle,
                    reason: "why".to_string(),
                    basis: Basis::Window,
                    numbers: [("pending_items", 3.0)].into_iter().collect(),
                }],
                not_judged: Vec::new(),
            }],
            ..Report::default()
        };
        let value: serde_json::Value = serde_json::from_str(&to_json(&report)).expect("valid JSON");
        assert_eq!(value["schema"], SCHEMA);
        assert_eq!(value["evaluated_at"], "2026-11-22T03:26:40Z");
        assert_eq!(value["worst"], "deriver_idle");
        assert_eq!(value["healthy"], false);
        let workspace = &value["workspaces"][0];
        assert_eq!(workspace["workspace"], "<w>");
        assert_eq!(workspace["verdicts"][0]["verdict"], "deriver_idle");
        assert_eq!(workspace["verdicts"][0]["basis"], "window");
        assert_eq!(workspace["verdicts"][0]["numbers"]["pending_items"], 3.0);
    }
}

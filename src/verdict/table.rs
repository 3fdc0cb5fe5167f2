//! The `doctor` text table: one line per verdict (worst first), then what could not be judged
//! and a note on one-look rules. Pure: report → text.

use std::fmt::Write as _;

use super::{Basis, Report};

/// The report as a plain-text table for a terminal.
pub fn to_text(report: &Report) -> String {
    let mut rows: Vec<[String; 4]> = vec![[
        "WORKSPACE".to_string(),
        "VERDICT".to_string(),
        "JUDGED".to_string(),
        "WHY".to_string(),
    ]];
    for workspace in &report.workspaces {
        for finding in &workspace.findings {
            rows.push([
                workspace.workspace.escape_debug().to_string(),
                finding.kind.as_str().to_string(),
                finding.basis.as_str().to_string(),
                finding.reason.clone(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..3)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    if let Some(blind) = &report.blind {
        let _ = writeln!(text, "exporter: unknown: {blind}");
    }
    if report.workspaces.is_empty() {
        text.push_str("no workspaces\n");
    } else {
        for row in &rows {
            let _ = writeln!(
                text,
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
        }
    }
    let not_judged: Vec<String> = report
        .workspaces
        .iter()
        .flat_map(|workspace| {
            workspace.not_judged.iter().map(|item| {
                format!(
                    "  {} {}: {}",
                    workspace.workspace.escape_debug(),
                    item.kind.as_str(),
                    item.reason
                )
            })
        })
        .collect();
    if !not_judged.is_empty() {
        text.push_str("\nnot judged:\n");
        for line in not_judged {
            text.push_str(&line);
            text.push('\n');
        }
    }
    let one_look = report
        .workspaces
        .iter()
        .flat_map(|workspace| &workspace.findings)
        .any(|finding| finding.basis == Basis::Instant);
    let _ = writeln!(
        text,
        "\njudged over {} of history; \"instant\" rows are one-look stand-ins for windowed rules{}",
        super::in_words(report.history_seconds),
        if one_look { " (see --window)" } else { "" }
    );
    let _ = writeln!(
        text,
        "overall: {}",
        if report.is_fine() {
            "ok".to_string()
        } else {
            format!("{} (needs attention)", report.worst().as_str())
        }
    );
    text
}

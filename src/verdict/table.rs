//! The `doctor` text table: one line per verdict (worst first), then what could not be judged
//! and a note on one-look rules. Pure: report → text; judges nothing (the report is given).

use std::fmt::Write as _;

use super::{Basis, Report};

/// The report as a plain-text table for a terminal: the exporter's blindness, if any, the rows,
/// what was not judged, and the footer.
pub fn to_text(report: &Report) -> String {
    let mut text = String::new();
    if let Some(blind) = &report.blind {
        let _ = writeln!(text, "exporter: unknown: {blind}");
    }
    write_rows(report, &mut text);
    write_not_judged(report, &mut text);
    write_footer(report, &mut text);
    text
}

/// The heading and one row per finding, columns padded to their widest cell (the reason last,
/// unpadded); `no workspaces` without any.
fn write_rows(report: &Report, text: &mut String) {
    if report.workspaces.is_empty() {
        text.push_str("no workspaces\n");
        return;
    }
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

/// The rules each workspace could not judge, and why (nothing when every rule was judged).
fn write_not_judged(report: &Report, text: &mut String) {
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
}

/// How much history the verdicts were judged over, and the overall verdict.
fn write_footer(report: &Report, text: &mut String) {
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
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::verdict::{Finding, Kind, NotJudged, WorkspaceVerdicts};

    fn finding(kind: Kind, basis: Basis, reason: &str) -> Finding {
        Finding {
            kind,
            reason: reason.to_string(),
            basis,
            numbers: BTreeMap::new(),
        }
    }

    #[test]
    fn the_table_pads_its_columns_and_ends_with_what_was_not_judged_and_the_overall_verdict() {
        let report = Report {
            history_seconds: 90.0,
            blind: Some("workspace discovery fails".to_string()),
            workspaces: vec![
                WorkspaceVerdicts {
                    workspace: "chat\t1".to_string(),
                    findings: vec![finding(Kind::DeriverIdle, Basis::Instant, "down")],
                    not_judged: vec![NotJudged {
                        kind: Kind::Overdue,
                        reason: "needs generation C".to_string(),
                    }],
                },
                WorkspaceVerdicts {
                    workspace: "w".to_string(),
                    findings: vec![finding(Kind::Ok, Basis::State, "nothing pending")],
                    not_judged: Vec::new(),
                },
            ],
            ..Report::default()
        };
        assert_eq!(
            to_text(&report),
            "exporter: unknown: workspace discovery fails\n\
             WORKSPACE  VERDICT       JUDGED   WHY\n\
             chat\\t1    deriver_idle  instant  down\n\
             w          ok            state    nothing pending\n\
             \n\
             not judged:\n  \
             chat\\t1 overdue: needs generation C\n\
             \n\
             judged over 1 min of history; \"instant\" rows are one-look stand-ins for windowed \
             rules (see --window)\n\
             overall: deriver_idle (needs attention)\n"
        );
    }

    #[test]
    fn an_empty_report_says_there_are_no_workspaces_and_is_ok() {
        assert_eq!(
            to_text(&Report::default()),
            "no workspaces\n\njudged over 0 s of history; \"instant\" rows are one-look \
             stand-ins for windowed rules\noverall: ok\n"
        );
    }
}

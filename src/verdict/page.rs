//! The landing page's verdict section: a server-rendered HTML table (no JavaScript), worst
//! verdict first, each reason in words, every name HTML-escaped. Pure: report → HTML text; the
//! server wraps it in the page.

use std::fmt::Write as _;

use super::Report;

/// CSS for the verdict table (the server puts it in the page's `<style>`).
pub const STYLE: &str = ".verdict-deriver_idle,.verdict-stuck_in_progress,.verdict-overdue{background:#fde2e1}\
.verdict-unknown{background:#eee}.verdict-backlog{background:#fff3cd}\
.verdict-waiting_for_tokens{background:#e7f0fd}.verdict-ok{background:#e6f4ea}\
td.verdict{font-weight:bold;white-space:nowrap}.note{color:#555}";

/// `text` with `<`, `>`, `&`, `"` and `'` escaped for HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Writes the verdict section of the landing page.
pub fn write_section(report: &Report, html: &mut String) {
    let worst = report.worst();
    let _ = writeln!(
        html,
        "<h2>Verdict: <span id=\"worst\" class=\"verdict-{0}\">{0}</span></h2>",
        worst.as_str()
    );
    if let Some(blind) = &report.blind {
        let _ = writeln!(
            html,
            "<p class=\"down\" id=\"blind\">The exporter cannot see: {}.</p>",
            escape_html(blind)
        );
    }
    if report.workspaces.is_empty() {
        html.push_str("<p>No workspace polled yet.</p>\n");
        return;
    }
    html.push_str(
        "<table id=\"verdicts\"><thead><tr><th>workspace</th><th>verdict</th><th>why</th>\
         <th>judged</th></tr></thead><tbody>\n",
    );
    for workspace in &report.workspaces {
        for (index, finding) in workspace.findings.iter().enumerate() {
            let _ = writeln!(
                html,
                "<tr class=\"verdict-{verdict}{lead}\" data-workspace=\"{name}\" \
                 data-verdict=\"{verdict}\"><td class=\"workspace\">{name}</td>\
                 <td class=\"verdict\">{verdict}</td><td class=\"reason\">{reason}</td>\
                 <td class=\"basis\">{basis}</td></tr>",
                verdict = finding.kind.as_str(),
                lead = if index == 0 { " lead" } else { "" },
                name = escape_html(&workspace.workspace),
                reason = escape_html(&finding.reason),
                basis = finding.basis.as_str(),
            );
        }
    }
    html.push_str("</tbody></table>\n");
    let not_judged: Vec<String> = report
        .workspaces
        .iter()
        .flat_map(|workspace| {
            workspace.not_judged.iter().map(|item| {
                format!(
                    "<li>{}: {}: {}</li>",
                    escape_html(&workspace.workspace),
                    item.kind.as_str(),
                    escape_html(&item.reason)
                )
            })
        })
        .collect();
    if !not_judged.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"note\">Not judged:</p><ul class=\"note\" id=\"not-judged\">{}</ul>",
            not_judged.concat()
        );
    }
    let _ = writeln!(
        html,
        "<p class=\"note\">Judged over {} of history; <i>instant</i> rows are one-look stand-ins \
         for windowed rules. What each verdict means and what to do: README's \
         \"Verdicts\" section and the runbook.</p>",
        super::in_words(report.history_seconds)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Basis, Finding, Kind, WorkspaceVerdicts};

    #[test]
    fn names_and_reasons_are_escaped() {
        assert_eq!(
            escape_html("<b>\"x\"&'"),
            "&lt;b&gt;&quot;x&quot;&amp;&#39;"
        );
        let report = Report {
            workspaces: vec![WorkspaceVerdicts {
                workspace: "<script>alert(1)</script>".to_string(),
                findings: vec![Finding {
                    kind: Kind::Ok,
                    reason: "session \"<img src=x>\"".to_string(),
                    basis: Basis::State,
                    numbers: Default::default(),
                }],
                not_judged: Vec::new(),
            }],
            ..Report::default()
        };
        let mut html = String::new();
        write_section(&report, &mut html);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }
}

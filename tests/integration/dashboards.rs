//! The rule parameters of the Prometheus rule files: every tunable value (a threshold, a window,
//! a `for:` duration, a job regex) sits on a line ending in `# param:<Alert>.<name>`, documented
//! in `deploy/prometheus/README.md`. This module is the one parser of that convention
//! ([`param_markers`], [`value_span`]): the lint below uses it, and so does the live alert test
//! (`alerts_e2e`), which rewrites the marked values.
//!
//! The rest of the dashboard and rule lint (Grafana conventions, metric names against
//! `dashboards/exported-metrics.txt`, every panel query parsed by promtool) is
//! `dashboard_lint`; `promtool test rules` is `scripts/checks/rules.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;

use yaml_rust2::YamlLoader;

/// One `# param:<Alert>.<name>` marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamMarker {
    /// 0-based line index in the file.
    pub line: usize,
    /// `<Alert>.<name>`.
    pub key: String,
    /// `<Alert>`.
    pub alert: String,
    /// Byte offset of the `#` in the line: the value is before it.
    pub start: usize,
}

fn marker_pattern() -> regex::Regex {
    regex::Regex::new(r"#\s*param:([A-Za-z][A-Za-z0-9_]*)\.([a-z_]+)\s*$").expect("valid regex")
}

/// Every marker of a rules file, in line order.
pub fn param_markers(text: &str) -> Vec<ParamMarker> {
    let pattern = marker_pattern();
    text.lines()
        .enumerate()
        .filter_map(|(line, content)| {
            let captures = pattern.captures(content)?;
            Some(ParamMarker {
                line,
                key: format!("{}.{}", &captures[1], &captures[2]),
                alert: captures[1].to_string(),
                start: captures.get(0).expect("whole match").start(),
            })
        })
        .collect()
}

/// Where the marked value is in `before_marker` (the line up to the `#`): for `*_regex` keys
/// the last double-quoted string (quotes included), otherwise the last number or Prometheus
/// duration.
pub fn value_span(key: &str, before_marker: &str) -> Option<Range<usize>> {
    let pattern = if key.ends_with("_regex") {
        regex::Regex::new(r#""(?:[^"\\]|\\.)*""#)
    } else {
        regex::Regex::new(r"\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y)?")
    }
    .expect("valid regex");
    pattern
        .find_iter(before_marker)
        .last()
        .map(|found| found.range())
}

/// Rewrites a copy of a rules file: on every line ending in `# param:<key>`, the last number or
/// duration before the `#` (for `*_regex` keys: the last double-quoted string) becomes the new
/// value (`deploy/prometheus/e2e-overrides.md`). Fails naming the key when a key marks no line:
/// the rules changed and the test would silently run with production values.
pub fn apply_overrides(rules: &str, overrides: &[(&str, &str)]) -> Result<String, String> {
    let markers = param_markers(rules);
    let mut lines: Vec<String> = rules.lines().map(str::to_owned).collect();
    for (key, value) in overrides {
        let mut changed = 0;
        for marker in markers.iter().filter(|marker| marker.key == *key) {
            let line = &mut lines[marker.line];
            let (before, marker_text) = line.split_at(marker.start);
            let span = value_span(key, before).ok_or_else(|| {
                format!("the line marked `# param:{key}` has no value to override: {line}")
            })?;
            let replacement = if key.ends_with("_regex") {
                format!("\"{value}\"")
            } else {
                (*value).to_owned()
            };
            *line = format!(
                "{}{replacement}{}{marker_text}",
                &before[..span.start],
                &before[span.end..]
            );
            changed += 1;
        }
        if changed == 0 {
            return Err(format!(
                "no line of the rules ends in `# param:{key}`: the rules changed, update the e2e overrides"
            ));
        }
    }
    let mut rewritten = lines.join("\n");
    rewritten.push('\n');
    Ok(rewritten)
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The parameter keys `deploy/prometheus/README.md` documents (`` `Alert.name` `` cells).
fn documented_params(readme: &str) -> BTreeSet<String> {
    regex::Regex::new(r"`([A-Za-z][A-Za-z0-9_]*\.[a-z_]+)`")
        .expect("valid regex")
        .captures_iter(readme)
        .map(|captures| captures[1].to_string())
        .collect()
}

/// The alert names of a rules file.
fn alerts_of(rules: &str) -> BTreeSet<String> {
    let documents = YamlLoader::load_from_str(rules).expect("the rules file is YAML");
    let mut alerts = BTreeSet::new();
    for document in &documents {
        for group in document["groups"].as_vec().into_iter().flatten() {
            for rule in group["rules"].as_vec().into_iter().flatten() {
                if let Some(alert) = rule["alert"].as_str() {
                    alerts.insert(alert.to_string());
                }
            }
        }
    }
    alerts
}

/// The problems of a rules file's markers: a marker that names no alert of the file, has no
/// value before it, or is not documented; an alert whose `for:` has no marker.
fn marker_problems(rules: &str, documented: &BTreeSet<String>) -> Vec<String> {
    let alerts = alerts_of(rules);
    let lines: Vec<&str> = rules.lines().collect();
    let mut problems = Vec::new();
    let mut marked = BTreeSet::new();
    for marker in param_markers(rules) {
        let where_ = format!("line {}", marker.line + 1);
        marked.insert(marker.key.clone());
        if !alerts.contains(&marker.alert) {
            problems.push(format!(
                "{where_}: param marker {} names no alert in this file",
                marker.key
            ));
        }
        if value_span(&marker.key, &lines[marker.line][..marker.start]).is_none() {
            problems.push(format!(
                "{where_}: param marker {} has no value (a number, duration or string) before it",
                marker.key
            ));
        }
        if !documented.contains(&marker.key) {
            problems.push(format!(
                "{where_}: param {} is not documented in deploy/prometheus/README.md",
                marker.key
            ));
        }
    }
    for alert in alerts {
        if !marked.contains(&format!("{alert}.for")) {
            problems.push(format!(
                "alert {alert}: its for: line needs a `# param:{alert}.for` marker"
            ));
        }
    }
    problems
}

fn read(relative: &str) -> String {
    let path = repository().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

#[test]
fn every_rule_parameter_is_marked_and_documented() {
    let documented = documented_params(&read("deploy/prometheus/README.md"));
    let rules = read("deploy/prometheus/honcho-exporter.rules.yml");
    assert!(
        param_markers(&rules).len() >= 10,
        "the rules file has fewer markers than alerts"
    );
    let problems = marker_problems(&rules, &documented);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_marker_lint_reports_the_planted_problems() {
    let documented = documented_params(&read("deploy/prometheus/README.md"));
    let problems = marker_problems(&read("scripts/testdata/bad.rules.yml"), &documented);
    for expected in [
        "line 16: param HonchoNoSuchSection.undocumented_threshold is not documented",
        "alert honcho_queue_depth_high: its for: line needs a `# param:honcho_queue_depth_high.for` marker",
    ] {
        assert!(
            problems.iter().any(|problem| problem.starts_with(expected)),
            "not reported: {expected}\nreported: {problems:#?}"
        );
    }
    let unmarked = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > y # param:A.threshold\n        for: 5m # param:B.for\n";
    let problems = marker_problems(unmarked, &BTreeSet::from(["A.threshold".to_string()]));
    assert_eq!(
        problems,
        [
            "line 5: param marker A.threshold has no value (a number, duration or string) before it",
            "line 6: param marker B.for names no alert in this file",
            "line 6: param B.for is not documented in deploy/prometheus/README.md",
            "alert A: its for: line needs a `# param:A.for` marker",
        ]
    );
}

#[test]
fn markers_and_their_values_are_found() {
    let text =
        "expr: x[5m] > 3600 # param:A.threshold\nplain: 1\nup{job=~\"a\"} #param:A.job_regex\n";
    let markers = param_markers(text);
    let keys: Vec<&str> = markers.iter().map(|marker| marker.key.as_str()).collect();
    assert_eq!(keys, ["A.threshold", "A.job_regex"]);
    let first = &markers[0];
    let line = text.lines().next().expect("a line");
    let span = value_span(&first.key, &line[..first.start]).expect("a value");
    assert_eq!(&line[span], "3600");
    let third = text.lines().nth(2).expect("a line");
    let span = value_span(&markers[1].key, &third[..markers[1].start]).expect("a value");
    assert_eq!(&third[span], "\"a\"");
}

#[test]
fn overrides_rewrite_the_last_value_before_the_marker() {
    let rules = "expr: x[5m] > 3600 # param:A.threshold\nfor: 10m # param:A.for\nup{job=~\"a\"} # param:A.job_regex\n";
    let out = apply_overrides(
        rules,
        &[
            ("A.threshold", "60"),
            ("A.for", "5s"),
            ("A.job_regex", "e2e"),
        ],
    )
    .expect("every key marks a line");
    assert_eq!(
        out,
        "expr: x[5m] > 60 # param:A.threshold\nfor: 5s # param:A.for\nup{job=~\"e2e\"} # param:A.job_regex\n"
    );
    let missing = apply_overrides(rules, &[("B.for", "5s")]).expect_err("B marks nothing");
    assert!(missing.contains("# param:B.for"), "{missing}");
}

/// Every marker overridden with a small value (what the live test does to some of them) still
/// gives a valid rules file, so the override mechanism keeps working as the rules change.
#[test]
fn overriding_every_marker_keeps_the_rules_valid() {
    if !crate::util::require_tool("promtool", "Debian package `prometheus`") {
        return;
    }
    let rules = read("deploy/prometheus/honcho-exporter.rules.yml");
    // Each key gets a small value of its current kind: a duration stays a duration.
    let lines: Vec<&str> = rules.lines().collect();
    let kinds: BTreeMap<String, &str> = param_markers(&rules)
        .into_iter()
        .map(|marker| {
            let before = &lines[marker.line][..marker.start];
            let current = value_span(&marker.key, before).map_or("", |span| &before[span]);
            let value = if marker.key.ends_with("_regex") {
                "e2e"
            } else if current.ends_with(|c: char| c.is_ascii_alphabetic()) {
                "10s"
            } else {
                "1"
            };
            (marker.key, value)
        })
        .collect();
    let overrides: Vec<(&str, &str)> = kinds
        .iter()
        .map(|(key, value)| (key.as_str(), *value))
        .collect();
    let rewritten = apply_overrides(&rules, &overrides).unwrap_or_else(|error| panic!("{error}"));
    assert_ne!(rewritten, rules);
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("overridden.rules.yml");
    std::fs::write(&path, rewritten).expect("write the rewritten rules");
    let output = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool check rules rejected the overridden rules:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

//! The lint of the Grafana dashboards (`dashboards/*.json`) and the Prometheus rule files
//! (`deploy/prometheus/*.rules.yml`), formerly `scripts/lint_dashboards.py`. Plain file checks:
//! JSON/YAML structure and conventions, no outside tool except promtool for the PromQL syntax.
//!
//! Dashboards (grafana/dashboard-linter's rules and the monitoring-mixins conventions):
//! - valid JSON, `schemaVersion` ≥ 39, `uid` equal to the file name (stable) and unique;
//! - exactly one `datasource` variable (type datasource, Prometheus) and `job`, `instance`,
//!   `workspace` query variables built with `label_values(...)`;
//! - no hard-coded datasource UID anywhere: panels and targets use `${datasource}`;
//! - every panel has a title, a description and a unit;
//! - every range selector of a panel query is `[$__rate_interval]`; counters (`*_total`) only
//!   appear directly inside `rate()`/`irate()`/`increase()`;
//! - every metric a query uses is one the exporter exports (`dashboards/exported-metrics.txt`,
//!   itself pinned to the families by `golden.rs`) or one of Honcho's own
//!   (`dashboards/honcho-own-metrics.txt`, selected with `namespace="honcho"`, and only in
//!   panels whose description says they need Honcho's `/metrics`);
//! - every exporter metric selector carries `job=~"$job"` and `instance=~"$instance"`;
//! - HA: queue metrics (`honcho_queue_*`, `honcho_deriver_*`) are only read through
//!   `max without (instance, pod)`, so two exporters on one Honcho never double count;
//! - a `topk`/`bottomk` in a time series (range) query ranks `@ end()` values;
//! - overview dashboards (tag `overview`): every time series grouped by workspace is limited
//!   with topk/bottomk and carries a data link to the workspace board.
//!
//! Rule files: every metric an expression uses is exported or recorded by a rule file;
//! recording rules are named `level:metric:operations`; alerts have `Honcho…` CamelCase names,
//! a `severity` label (critical|warning|info), a static summary, a description, a
//! `dashboard_url` on a shipped dashboard, a `runbook_url` at `docs/runbook.md#<lowercased
//! name>` whose section exists, and a `for:`. (The `# param:` markers: `dashboards.rs`.)
//!
//! The planted mistakes of `scripts/testdata/` must each be reported, so the lint cannot pass
//! vacuously. Metric names are parsed out of PromQL roughly (strings, matchers and label lists
//! removed first): enough for the queries of this repository, not a PromQL parser.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlLoader};

use crate::util::truthy;

const RUNBOOK_BASE: &str =
    "https://github.com/honcho-exporter/honcho_exporter/blob/main/docs/runbook.md";
const GRAFANA_BASE: &str = "https://grafana.example.com";
const CHECKED_PREFIXES: [&str; 3] = ["honcho_", "process_", "deriver_"];
const HA_DEDUP_PREFIXES: [&str; 2] = ["honcho_queue_", "honcho_deriver_"];
const SEVERITIES: [&str; 3] = ["critical", "info", "warning"];
const DATASOURCE_REFS: [&str; 2] = ["${datasource}", "$datasource"];
const LABEL_LIST_KEYWORDS: &str = "by|without|on|ignoring|group_left|group_right";
/// Grafana variables replaced by plain values so that promtool can parse the queries.
const GRAFANA_VARIABLE_VALUES: [(&str, &str); 3] = [
    ("$__rate_interval", "1m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
];

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

/// The files of `directory` whose names end in `suffix`, sorted.
fn files_ending(directory: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", directory.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with(suffix))
        })
        .collect();
    files.sort();
    files
}

fn shipped_dashboards() -> Vec<PathBuf> {
    files_ending(&repository().join("dashboards"), ".json")
}

fn shipped_rule_files() -> Vec<PathBuf> {
    files_ending(&repository().join("deploy/prometheus"), ".rules.yml")
}

/// Problems as `file: where: what` lines, the file relative to the repository.
#[derive(Default)]
pub struct Problems {
    pub lines: Vec<String>,
}

impl Problems {
    fn add(&mut self, file: &Path, place: &str, what: impl AsRef<str>) {
        let relative = file.strip_prefix(repository()).unwrap_or(file);
        self.lines.push(format!(
            "{}: {place}: {}",
            relative.display(),
            what.as_ref()
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// PromQL scanning

/// `expr` with the contents of string literals replaced by `x` and comments by spaces, byte for
/// byte, so that positions in the mask index into the original.
fn mask_strings_and_comments(expr: &str) -> String {
    let bytes = expr.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if matches!(byte, b'"' | b'\'' | b'`') {
            let quote = byte;
            out.push(byte);
            index += 1;
            while index < bytes.len() && bytes[index] != quote {
                if bytes[index] == b'\\' && quote != b'`' && index + 1 < bytes.len() {
                    out.extend_from_slice(b"xx");
                    index += 2;
                    continue;
                }
                out.push(b'x');
                index += 1;
            }
            if index < bytes.len() {
                out.push(quote);
                index += 1;
            }
        } else if byte == b'#' {
            while index < bytes.len() && bytes[index] != b'\n' {
                out.push(b' ');
                index += 1;
            }
        } else {
            out.push(byte);
            index += 1;
        }
    }
    // Every byte inside a string or comment became ASCII (an escape before a multi-byte
    // character masks its first byte, the loop the rest); the others are copied whole.
    String::from_utf8(out).expect("the mask is UTF-8")
}

/// Spans of `by (...)`, `on (...)`, … label lists, whose words are labels, not metrics.
fn label_list_spans(masked: &str) -> Vec<(usize, usize)> {
    regex(&format!(r"\b({LABEL_LIST_KEYWORDS})\s*\("))
        .find_iter(masked)
        .map(|found| {
            let end = masked[found.end()..]
                .find(')')
                .map_or(masked.len(), |offset| found.end() + offset);
            (found.end(), end)
        })
        .collect()
}

/// Spans of `{...}` label matcher blocks.
fn matcher_spans(masked: &str) -> Vec<(usize, usize)> {
    regex(r"\{[^{}]*\}")
        .find_iter(masked)
        .map(|found| (found.start(), found.end()))
        .collect()
}

/// One metric name occurrence in a query, with its `{...}` matchers (original text).
struct Selector {
    name: String,
    matchers: String,
    /// The masked query before the name, trailing whitespace removed.
    preceding: String,
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':'
}

/// Metric names a PromQL expression uses, roughly: identifiers outside strings, matchers and
/// label lists, not followed by `(` (functions) or a matcher operator (labels).
fn metric_selectors(expr: &str) -> Vec<Selector> {
    let masked = mask_strings_and_comments(expr);
    let bytes = masked.as_bytes();
    let mut excluded = label_list_spans(&masked);
    excluded.extend(matcher_spans(&masked));
    let mut selectors = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let starts = (bytes[index].is_ascii_alphabetic() || matches!(bytes[index], b'_' | b':'))
            && (index == 0 || !(is_identifier_byte(bytes[index - 1]) || bytes[index - 1] == b'$'));
        if !starts {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && is_identifier_byte(bytes[index]) {
            index += 1;
        }
        let name = &masked[start..index];
        if excluded
            .iter()
            .any(|(from, to)| (*from..*to).contains(&start))
        {
            continue;
        }
        let rest = masked[index..].trim_start();
        let is_label = rest.starts_with("=~")
            || rest.starts_with("!~")
            || rest.starts_with("!=")
            || (rest.starts_with('=') && !rest.starts_with("=="));
        if rest.starts_with('(') || is_label {
            continue;
        }
        if !(CHECKED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || name.contains(':'))
        {
            continue;
        }
        let mut matchers = String::new();
        if rest.starts_with('{') {
            let brace = index + masked[index..].find('{').expect("a brace");
            let close = masked[brace..]
                .find('}')
                .map_or(expr.len(), |offset| brace + offset + 1);
            matchers = expr[brace..close].to_string();
        }
        selectors.push(Selector {
            name: name.to_string(),
            matchers,
            preceding: masked[..start].trim_end().to_string(),
        });
    }
    selectors
}

/// Contents of every `[...]` range (or subquery) of the expression.
fn range_selectors(expr: &str) -> Vec<String> {
    regex(r"\[([^\]]*)\]")
        .captures_iter(&mask_strings_and_comments(expr))
        .map(|captures| captures[1].to_string())
        .collect()
}

fn groups_by_workspace(expr: &str) -> bool {
    regex(r"\bby\s*\([^)]*\bworkspace(_name)?\b[^)]*\)").is_match(&mask_strings_and_comments(expr))
}

fn ranks(masked: &str) -> bool {
    regex(r"\b(topk|bottomk)\s*\(").is_match(masked)
}

// ---------------------------------------------------------------------------------------------
// JSON helpers (Python truthiness, as the conventions were first written: `util::truthy`)

/// `value[key]`, `Null` when absent or when `value` is not an object.
fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

fn text_of(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// A value as Python's `repr` would show it in a message (`None`, `'text'`, `30`).
fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::String(text) => format!("'{text}'"),
        other => other.to_string(),
    }
}

/// All panels, rows' nested panels included.
fn walk_panels(panels: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        if text_of(field(panel, "type")) == "row" {
            out.extend(walk_panels(field(panel, "panels")));
        }
    }
    out
}

/// (path, value) of every `datasource` key anywhere in the dashboard.
fn datasource_refs<'a>(node: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match node {
        Value::Object(entries) => {
            for (key, value) in entries {
                if key == "datasource" {
                    out.push((format!("{path}.datasource"), value));
                }
                datasource_refs(value, format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                datasource_refs(value, format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

fn is_datasource_variable_ref(value: &Value) -> bool {
    match value {
        Value::String(text) => DATASOURCE_REFS.contains(&text.as_str()),
        Value::Object(_) => {
            DATASOURCE_REFS.contains(&text_of(field(value, "uid")))
                && field(value, "type").as_str().unwrap_or("prometheus") == "prometheus"
        }
        _ => false,
    }
}

fn variable_query_text(variable: &Value) -> String {
    let query = field(variable, "query");
    let query = if query.is_object() {
        field(query, "query")
    } else {
        query
    };
    if truthy(query) {
        text_of(query).to_string()
    } else {
        text_of(field(variable, "definition")).to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// The lint

/// The metric names queries may use.
pub struct Catalogue {
    exported: BTreeSet<String>,
    honcho_own: BTreeSet<String>,
    recorded: BTreeSet<String>,
}

impl Catalogue {
    /// The shipped lists, and the recording rules of `rule_files` plus the shipped rule files.
    pub fn for_rule_files(rule_files: &[PathBuf]) -> Catalogue {
        let names = |relative: &str| -> BTreeSet<String> {
            std::fs::read_to_string(repository().join(relative))
                .unwrap_or_else(|error| panic!("{relative}: {error}"))
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut recorded = BTreeSet::new();
        for path in rule_files.iter().chain(&shipped_rule_files()) {
            let Some(document) = load_yaml(path).ok() else {
                continue; // reported by lint_rules
            };
            for group in document["groups"].as_vec().into_iter().flatten() {
                for rule in group["rules"].as_vec().into_iter().flatten() {
                    if let Some(record) = rule["record"].as_str() {
                        recorded.insert(record.to_string());
                    }
                }
            }
        }
        Catalogue {
            exported: names("dashboards/exported-metrics.txt"),
            honcho_own: names("dashboards/honcho-own-metrics.txt"),
            recorded,
        }
    }

    fn problem_with(&self, name: &str) -> Option<String> {
        if name.contains(':') {
            return (!self.recorded.contains(name)).then(|| {
                format!(
                    "uses recording rule {name}, which no rule file in deploy/prometheus records"
                )
            });
        }
        if self.exported.contains(name) || self.honcho_own.contains(name) {
            return None;
        }
        Some(format!(
            "uses metric {name}, which honcho_exporter does not export (dashboards/exported-metrics.txt)"
        ))
    }
}

/// Checks shared by panel, variable and rule queries.
fn check_query(
    problems: &mut Problems,
    file: &Path,
    place: &str,
    expr: &str,
    catalogue: &Catalogue,
    description: &str,
    for_dashboard: bool,
) {
    let counter_reader = regex(r"\b(rate|irate|increase)\s*\($");
    let ha_dedup = regex(r"max\s+without\s*\(\s*instance\s*,\s*pod\s*\)");
    for selector in metric_selectors(expr) {
        let name = selector.name.as_str();
        if let Some(problem) = catalogue.problem_with(name) {
            problems.add(file, place, problem);
            continue;
        }
        if name.ends_with("_total") && !counter_reader.is_match(&selector.preceding) {
            problems.add(
                file,
                place,
                format!("counter {name} must be read through rate()/irate()/increase()"),
            );
        }
        if !for_dashboard {
            continue;
        }
        if catalogue.honcho_own.contains(name) {
            if !selector.matchers.contains(r#"namespace="honcho""#) {
                problems.add(
                    file,
                    place,
                    format!(r#"Honcho metric {name} must be selected with namespace="honcho""#),
                );
            }
            if !description.contains("/metrics") {
                problems.add(file, place, format!("panel reads Honcho's own {name}: its description must say it needs Honcho's /metrics scraped"));
            }
            continue;
        }
        if name.contains(':') {
            continue;
        }
        for variable in ["job", "instance"] {
            let matcher = regex(&format!(r#"{variable}\s*=~\s*"\$\{{?{variable}\}}?""#));
            if !matcher.is_match(&selector.matchers) {
                problems.add(
                    file,
                    place,
                    format!(r#"selector of {name} lacks {variable}=~"${variable}""#),
                );
            }
        }
        if HA_DEDUP_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
            && !ha_dedup.is_match(expr)
        {
            problems.add(file, place, format!("{name} must be read through `max without (instance, pod)` (HA: two exporters must not double count)"));
        }
    }
}

/// Lints one dashboard file; `seen_uids` carries the uids of the files linted before it.
pub fn lint_dashboard(
    path: &Path,
    catalogue: &Catalogue,
    seen_uids: &mut BTreeMap<String, String>,
    problems: &mut Problems,
) {
    let parsed = std::fs::read_to_string(path)
        .map_err(|error| error.to_string())
        .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|error| error.to_string()));
    let dashboard = match parsed {
        Ok(dashboard) => dashboard,
        Err(error) => {
            problems.add(path, "dashboard", format!("not valid JSON: {error}"));
            return;
        }
    };
    if !dashboard.is_object() {
        problems.add(path, "dashboard", "top level is not a JSON object");
        return;
    }
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let relative = path.strip_prefix(repository()).unwrap_or(path);
    match field(&dashboard, "uid") {
        uid if !truthy(uid) => problems.add(path, "dashboard", "no uid"),
        uid => {
            let uid = text_of(uid).to_string();
            if uid != stem {
                problems.add(
                    path,
                    "dashboard",
                    format!("uid '{uid}' must equal the file name '{stem}' (stable uids)"),
                );
            }
            if let Some(other) = seen_uids.get(&uid) {
                problems.add(
                    path,
                    "dashboard",
                    format!("uid '{uid}' already used by {other}"),
                );
            }
            seen_uids.insert(uid, relative.display().to_string());
        }
    }
    if !truthy(field(&dashboard, "title")) {
        problems.add(path, "dashboard", "no title");
    }
    let schema = field(&dashboard, "schemaVersion");
    if schema.as_i64().is_none_or(|version| version < 39) {
        problems.add(
            path,
            "dashboard",
            format!("schemaVersion {} is below 39", repr(schema)),
        );
    }

    lint_variables(path, &dashboard, catalogue, problems);

    let mut references = Vec::new();
    datasource_refs(&dashboard, "$".into(), &mut references);
    let builtin = json!({"type": "grafana", "uid": "-- Grafana --"});
    for (place, value) in references {
        if *value != builtin && !is_datasource_variable_ref(value) {
            problems.add(
                path,
                &place,
                format!("hard-coded datasource {value}: use ${{datasource}}"),
            );
        }
    }

    let overview = field(&dashboard, "tags")
        .as_array()
        .is_some_and(|tags| tags.iter().any(|tag| tag == "overview"));
    let panels = walk_panels(field(&dashboard, "panels"));
    if !panels
        .iter()
        .any(|panel| text_of(field(panel, "type")) != "row")
    {
        problems.add(path, "dashboard", "has no panels");
    }
    let mut panel_ids = BTreeSet::new();
    for panel in panels {
        lint_panel(path, panel, catalogue, overview, &mut panel_ids, problems);
    }
}

fn lint_variables(path: &Path, dashboard: &Value, catalogue: &Catalogue, problems: &mut Problems) {
    let variables: Vec<&Value> = field(field(dashboard, "templating"), "list")
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let by_name = |name: &str| {
        variables
            .iter()
            .rev()
            .find(|variable| text_of(field(variable, "name")) == name)
            .copied()
    };
    let datasource_variables = variables
        .iter()
        .filter(|variable| text_of(field(variable, "type")) == "datasource")
        .count();
    if datasource_variables != 1 {
        problems.add(
            path,
            "templating",
            format!("needs exactly one datasource variable, found {datasource_variables}"),
        );
    }
    let datasource = by_name("datasource");
    if !datasource.is_some_and(|variable| {
        text_of(field(variable, "type")) == "datasource" && field(variable, "query") == "prometheus"
    }) {
        problems.add(
            path,
            "templating",
            r#"needs a variable named "datasource" of type datasource with query "prometheus""#,
        );
    }
    for (name, needs) in [
        ("job", &[][..]),
        ("instance", &["$job"][..]),
        ("workspace", &["$job", "$instance"][..]),
    ] {
        let place = format!("variable {name}");
        let Some(variable) = by_name(name) else {
            problems.add(path, &place, "missing");
            continue;
        };
        let query = variable_query_text(variable);
        if text_of(field(variable, "type")) != "query" || !query.starts_with("label_values(") {
            problems.add(
                path,
                &place,
                "must be a query variable using label_values(...)",
            );
        }
        if !is_datasource_variable_ref(field(variable, "datasource")) {
            problems.add(path, &place, "must use the ${datasource} variable");
        }
        for need in needs {
            if !query.contains(need) {
                problems.add(path, &place, format!("query must filter on {need}"));
            }
        }
        if query.starts_with("label_values(") {
            check_query(problems, path, &place, &query, catalogue, "", false);
        }
    }
}

fn lint_panel(
    path: &Path,
    panel: &Value,
    catalogue: &Catalogue,
    overview: bool,
    panel_ids: &mut BTreeSet<String>,
    problems: &mut Problems,
) {
    let id = repr(field(panel, "id"));
    let title = match field(panel, "title") {
        title if truthy(title) => text_of(title).to_string(),
        _ => format!("<panel id {id}>"),
    };
    let place = format!("panel \"{title}\"");
    if !panel_ids.insert(id.clone()) {
        problems.add(path, &place, format!("duplicate panel id {id}"));
    }
    let kind = text_of(field(panel, "type"));
    if kind == "row" {
        return;
    }
    if !truthy(field(panel, "title")) {
        problems.add(path, &place, "no title");
    }
    let description = text_of(field(panel, "description"));
    if description.trim().is_empty() {
        problems.add(path, &place, "no description");
    }
    let defaults = field(field(panel, "fieldConfig"), "defaults");
    if !truthy(field(defaults, "unit")) {
        problems.add(path, &place, "no unit (fieldConfig.defaults.unit)");
    }
    if !is_datasource_variable_ref(field(panel, "datasource")) {
        problems.add(path, &place, "panel datasource must be ${datasource}");
    }
    let targets: Vec<&Value> = field(panel, "targets")
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if targets.is_empty() {
        problems.add(path, &place, "no queries");
    }
    let mut ref_ids = BTreeSet::new();
    for target in &targets {
        let reference = field(target, "refId").as_str().unwrap_or("?");
        let target_place = format!("{place} query {reference}");
        if !ref_ids.insert(reference) {
            problems.add(path, &target_place, "duplicate refId");
        }
        let expr = text_of(field(target, "expr"));
        if expr.trim().is_empty() {
            problems.add(path, &target_place, "empty expr");
            continue;
        }
        for window in range_selectors(expr) {
            if window.trim() != "$__rate_interval" {
                problems.add(
                    path,
                    &target_place,
                    format!("range [{window}] must be [$__rate_interval]"),
                );
            }
        }
        check_query(
            problems,
            path,
            &target_place,
            expr,
            catalogue,
            description,
            true,
        );
        // topk/bottomk in range queries rank `@ end()` values; overview series per workspace
        // are ranked.
        let masked = mask_strings_and_comments(expr);
        let range_query = kind == "timeseries" && field(target, "instant") != &Value::Bool(true);
        if range_query && ranks(&masked) && !masked.contains("@ end()") {
            problems.add(path, &target_place, "topk/bottomk in a range query picks k series per step (more than k in the graph): rank `@ end()` values and join them with `and on (...)`");
        }
        if overview && kind == "timeseries" && groups_by_workspace(expr) && !ranks(&masked) {
            problems.add(
                path,
                &target_place,
                "overview time series grouped by workspace must be limited with topk(10, …) (or bottomk)",
            );
        }
    }
    let per_workspace = targets
        .iter()
        .any(|target| groups_by_workspace(text_of(field(target, "expr"))));
    if overview && kind == "timeseries" && per_workspace {
        let links = field(defaults, "links")
            .as_array()
            .into_iter()
            .flatten()
            .chain(field(panel, "links").as_array().into_iter().flatten());
        let linked = links.into_iter().any(|link| {
            let url = text_of(field(link, "url"));
            url.contains("/d/honcho-workspace")
                && url.contains("var-workspace=${__field.labels.workspace")
                && url.contains("${__url_time_range}")
        });
        if !linked {
            problems.add(path, &place, "no data link to the workspace board (/d/honcho-workspace?…var-workspace=${__field.labels.workspace}&${__url_time_range})");
        }
    }
}

fn load_yaml(path: &Path) -> Result<Yaml, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    let documents = YamlLoader::load_from_str(&text).map_err(|error| error.to_string())?;
    Ok(documents.into_iter().next().unwrap_or(Yaml::Null))
}

/// A YAML scalar as text (`expr`, annotation values); empty when absent.
fn yaml_text(value: &Yaml) -> String {
    match value {
        Yaml::String(text) | Yaml::Real(text) => text.clone(),
        Yaml::Integer(number) => number.to_string(),
        Yaml::Boolean(flag) => flag.to_string(),
        _ => String::new(),
    }
}

/// Lints one rule file against the catalogue and the runbook's `## <Alert>` sections.
pub fn lint_rules(path: &Path, catalogue: &Catalogue, runbook: &Path, problems: &mut Problems) {
    let document = match load_yaml(path) {
        Ok(document) => document,
        Err(error) => {
            problems.add(path, "rules", format!("not valid YAML: {error}"));
            return;
        }
    };
    let runbook_text = std::fs::read_to_string(runbook).unwrap_or_else(|_| {
        let relative = runbook.strip_prefix(repository()).unwrap_or(runbook);
        problems.add(
            path,
            "rules",
            format!("runbook {} not found", relative.display()),
        );
        String::new()
    });
    let headings: BTreeSet<String> = regex(r"(?m)^## (\S+)\s*$")
        .captures_iter(&runbook_text)
        .map(|captures| captures[1].to_string())
        .collect();
    let shipped_uids: BTreeSet<String> = shipped_dashboards()
        .iter()
        .filter_map(|path| path.file_stem())
        .map(|stem| stem.to_string_lossy().into_owned())
        .collect();
    let dashboard_url = regex(&format!(r"^{}/d/([a-z0-9-]+)", regex::escape(GRAFANA_BASE)));
    for group in document["groups"].as_vec().into_iter().flatten() {
        for rule in group["rules"].as_vec().into_iter().flatten() {
            let alert = yaml_text(&rule["alert"]);
            let name = [alert.clone(), yaml_text(&rule["record"])]
                .into_iter()
                .find(|name| !name.is_empty())
                .unwrap_or_else(|| "<unnamed>".into());
            let place = if alert.is_empty() {
                format!("record {name}")
            } else {
                format!("alert {name}")
            };
            let expr = yaml_text(&rule["expr"]);
            check_query(problems, path, &place, &expr, catalogue, "", false);
            if alert.is_empty() {
                if !regex(r"^[a-z_]+:[a-z_]+:[a-z_]+$").is_match(&name) {
                    problems.add(
                        path,
                        &place,
                        "recording rule names follow level:metric:operations",
                    );
                }
                continue;
            }
            if !regex(r"^Honcho[A-Z][A-Za-z]*$").is_match(&name) {
                problems.add(
                    path,
                    &place,
                    "alert names are CamelCase and start with Honcho",
                );
            }
            let severity = &rule["labels"]["severity"];
            if !severity
                .as_str()
                .is_some_and(|severity| SEVERITIES.contains(&severity))
            {
                let shown = match severity {
                    Yaml::BadValue | Yaml::Null => "None".to_string(),
                    other => format!("'{}'", yaml_text(other)),
                };
                problems.add(
                    path,
                    &place,
                    format!("severity label {shown} is not one of ['critical', 'info', 'warning']"),
                );
            }
            let annotations = &rule["annotations"];
            for key in ["summary", "description", "runbook_url", "dashboard_url"] {
                if yaml_text(&annotations[key]).is_empty() {
                    problems.add(path, &place, format!("no {key} annotation"));
                }
            }
            if yaml_text(&annotations["summary"]).contains("{{") {
                problems.add(path, &place, "summary must be static (no templating): notification titles group by it; details go in description");
            }
            let dashboard = yaml_text(&annotations["dashboard_url"]);
            if !dashboard.is_empty() {
                let shipped = dashboard_url
                    .captures(&dashboard)
                    .is_some_and(|captures| shipped_uids.contains(&captures[1]));
                if !shipped {
                    problems.add(
                        path,
                        &place,
                        format!(
                            "dashboard_url must be {GRAFANA_BASE}/d/<uid of a dashboard in dashboards/>"
                        ),
                    );
                }
            }
            let expected_runbook = format!("{RUNBOOK_BASE}#{}", name.to_lowercase());
            let runbook_url = yaml_text(&annotations["runbook_url"]);
            if !runbook_url.is_empty() && runbook_url != expected_runbook {
                problems.add(
                    path,
                    &place,
                    format!("runbook_url must be {expected_runbook}"),
                );
            }
            if !headings.contains(&name) {
                problems.add(
                    path,
                    &place,
                    format!("docs/runbook.md has no section \"## {name}\""),
                );
            }
            let has_for = rule
                .as_hash()
                .is_some_and(|entries| entries.contains_key(&Yaml::String("for".into())));
            if !has_for {
                problems.add(path, &place, "no for: duration");
            }
        }
    }
}

/// The lint of these dashboards and rule files (recording rules are also looked up in the
/// shipped rule files): one line per problem, in file order.
pub fn lint(dashboards: &[PathBuf], rule_files: &[PathBuf]) -> Vec<String> {
    let catalogue = Catalogue::for_rule_files(rule_files);
    let runbook = repository().join("docs/runbook.md");
    let mut problems = Problems::default();
    let mut seen_uids = BTreeMap::new();
    for path in dashboards {
        lint_dashboard(path, &catalogue, &mut seen_uids, &mut problems);
    }
    for path in rule_files {
        lint_rules(path, &catalogue, &runbook, &mut problems);
    }
    problems.lines
}

/// Every panel and variable query as a recording rule (JSON, which promtool reads as YAML), for
/// `promtool check rules` to parse.
pub fn panel_queries_as_rules(dashboards: &[PathBuf]) -> Value {
    let unsafe_characters = regex(r"[^a-z0-9_]");
    let label_values = regex(r"(?s)^label_values\((.*),\s*[A-Za-z_]+\)$");
    let mut rules = Vec::new();
    for path in dashboards {
        let Some(dashboard) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        else {
            continue;
        };
        let stem = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let uid = field(&dashboard, "uid").as_str().unwrap_or(&stem);
        let prefix = unsafe_characters
            .replace_all(&uid.to_lowercase(), "_")
            .into_owned();
        for panel in walk_panels(field(&dashboard, "panels")) {
            for target in field(panel, "targets").as_array().into_iter().flatten() {
                let mut expr = text_of(field(target, "expr")).to_string();
                for (variable, value) in GRAFANA_VARIABLE_VALUES {
                    expr = expr.replace(variable, value);
                }
                if !expr.trim().is_empty() {
                    let reference = field(target, "refId").as_str().unwrap_or("A");
                    let id = repr(field(panel, "id"));
                    rules.push(json!({
                        "record": format!("dashboard_query:{prefix}_panel_{id}_{reference}:check"),
                        "expr": expr,
                    }));
                }
            }
        }
        for variable in field(field(&dashboard, "templating"), "list")
            .as_array()
            .into_iter()
            .flatten()
        {
            if text_of(field(variable, "type")) != "query" {
                continue;
            }
            let query = variable_query_text(variable);
            if let Some(captures) = label_values.captures(query.trim()) {
                let name = text_of(field(variable, "name"));
                rules.push(json!({
                    "record": format!("dashboard_query:{prefix}_variable_{name}:check"),
                    "expr": &captures[1],
                }));
            }
        }
    }
    let groups: Vec<Value> = rules
        .into_iter()
        .enumerate()
        .map(|(index, rule)| json!({"name": format!("dashboard-queries-{index}"), "rules": [rule]}))
        .collect();
    json!({ "groups": groups })
}

// ---------------------------------------------------------------------------------------------
// Rule unit tests and Alertmanager inhibitions (formerly inline Python in scripts/checks/rules.sh)

fn alert_names(rule_files: &[PathBuf]) -> BTreeSet<String> {
    let mut alerts = BTreeSet::new();
    for path in rule_files {
        let document =
            load_yaml(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
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

/// The alerts of `rule_files` that no `alert_rule_test` of `test_files` covers with an expected
/// alert (`no firing case`) or with an empty expectation (`no not-firing case`).
fn untested_alerts(rule_files: &[PathBuf], test_files: &[PathBuf]) -> Vec<String> {
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for path in test_files {
        let document =
            load_yaml(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        for test in document["tests"].as_vec().into_iter().flatten() {
            for case in test["alert_rule_test"].as_vec().into_iter().flatten() {
                let name = yaml_text(&case["alertname"]);
                let expects_alerts = case["exp_alerts"]
                    .as_vec()
                    .is_some_and(|alerts| !alerts.is_empty());
                if expects_alerts {
                    firing.insert(name);
                } else {
                    silent.insert(name);
                }
            }
        }
    }
    let alerts = alert_names(rule_files);
    let mut missing: Vec<String> = alerts
        .difference(&firing)
        .map(|alert| format!("{alert}: no firing case"))
        .collect();
    missing.extend(
        alerts
            .difference(&silent)
            .map(|alert| format!("{alert}: no not-firing case")),
    );
    missing
}

/// The alert names the `alertname` matchers of an Alertmanager config's inhibit rules name that
/// no rule file defines; `Err` when the config has no inhibit rules.
fn unknown_inhibited_alerts(
    config: &Yaml,
    alerts: &BTreeSet<String>,
) -> Result<Vec<String>, String> {
    let rules = config["inhibit_rules"]
        .as_vec()
        .filter(|rules| !rules.is_empty())
        .ok_or("the Alertmanager config has no inhibit_rules")?;
    let matcher = regex(r#"^alertname(=~|=)"([^"]*)"$"#);
    let mut problems = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        for key in ["source_matchers", "target_matchers"] {
            for text in rule[key]
                .as_vec()
                .into_iter()
                .flatten()
                .filter_map(Yaml::as_str)
            {
                let Some(captures) = matcher
                    .captures(&text.replace(' ', ""))
                    .map(|c| c[2].to_string())
                else {
                    continue;
                };
                for name in captures.split('|').filter(|name| !alerts.contains(*name)) {
                    problems.push(format!(
                        "inhibit rule #{index} {key}: no alert named {name}"
                    ));
                }
            }
        }
    }
    Ok(problems)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn the_shipped_dashboards_and_rule_files_pass_the_lint() {
    let dashboards = shipped_dashboards();
    let rule_files = shipped_rule_files();
    assert!(dashboards.len() >= 3, "dashboards/*.json: {dashboards:?}");
    assert!(!rule_files.is_empty(), "deploy/prometheus/*.rules.yml");
    let problems = lint(&dashboards, &rule_files);
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_lint_reports_every_problem_planted_in_the_testdata() {
    let testdata = repository().join("scripts/testdata");
    let problems = lint(
        &[
            testdata.join("bad-dashboard.json"),
            testdata.join("not-json.json"),
        ],
        &[testdata.join("bad.rules.yml")],
    );
    let expected = std::fs::read_to_string(testdata.join("bad-expected-problems.txt"))
        .expect("scripts/testdata/bad-expected-problems.txt");
    let expected: Vec<&str> = expected
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert!(expected.len() >= 30, "the planted problems are listed");
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|expected| !problems.iter().any(|problem| problem.contains(**expected)))
        .collect();
    assert!(
        missing.is_empty(),
        "the lint did not report:\n{}\n--- it reported:\n{}",
        missing
            .iter()
            .map(|line| line.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        problems.join("\n")
    );
}

#[test]
fn metric_names_are_found_outside_strings_matchers_label_lists_and_functions() {
    let names = |expr: &str| -> Vec<String> {
        metric_selectors(expr)
            .into_iter()
            .map(|selector| selector.name)
            .collect()
    };
    assert_eq!(
        names(
            r#"sum by (workspace) (rate(honcho_exporter_poll_errors_total{job=~"$job", reason="honcho_x"}[$__rate_interval]))"#
        ),
        ["honcho_exporter_poll_errors_total"]
    );
    assert_eq!(
        names("max without (instance, pod) (honcho_queue_items) # honcho_in_a_comment"),
        ["honcho_queue_items"]
    );
    assert_eq!(
        names("workspace:honcho_queue_items:max > on (workspace) group_left honcho_other"),
        ["workspace:honcho_queue_items:max", "honcho_other"]
    );
    let selector = &metric_selectors(r#"honcho_exporter_up{job=~"$job"} == 0"#)[0];
    assert_eq!(selector.matchers, r#"{job=~"$job"}"#);
    assert_eq!(
        metric_selectors(r#"rate(honcho_x_total[5m])"#)[0].preceding,
        "rate("
    );
}

#[test]
fn every_dashboard_query_parses_with_promtool() {
    if !crate::util::require_tool("promtool", "Debian package `prometheus`") {
        return;
    }
    let rules = panel_queries_as_rules(&shipped_dashboards());
    let count = rules["groups"].as_array().map_or(0, Vec::len);
    assert!(count >= 30, "every panel query is collected (got {count})");
    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("panel-queries.rules.json");
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&rules).expect("JSON renders"),
    )
    .expect("write the panel queries");
    let output = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool check rules rejected a dashboard query:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_alert_has_a_firing_and_a_not_firing_unit_test() {
    let rule_files = shipped_rule_files();
    let test_files = files_ending(&repository().join("deploy/prometheus/tests"), ".yml");
    assert!(!test_files.is_empty(), "deploy/prometheus/tests/*.yml");
    assert!(
        !alert_names(&rule_files).is_empty(),
        "the rule files define alerts"
    );
    let missing = untested_alerts(&rule_files, &test_files);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // An alert nobody tests is reported both ways (the check cannot pass vacuously).
    let missing = untested_alerts(
        &[repository().join("scripts/testdata/bad.rules.yml")],
        &test_files,
    );
    assert!(
        missing.contains(&"HonchoNoSuchSection: no firing case".to_string()),
        "{missing:?}"
    );
    assert!(
        missing.contains(&"HonchoNoSuchSection: no not-firing case".to_string()),
        "{missing:?}"
    );
}

#[test]
fn every_alert_an_inhibit_rule_names_exists() {
    let config = load_yaml(&repository().join("deploy/alertmanager/alertmanager.yml"))
        .expect("deploy/alertmanager/alertmanager.yml is YAML");
    let alerts = alert_names(&shipped_rule_files());
    let problems =
        unknown_inhibited_alerts(&config, &alerts).unwrap_or_else(|error| panic!("{error}"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Against a rule set without the exporter's alerts, every named alert is unknown.
    let problems = unknown_inhibited_alerts(&config, &BTreeSet::new()).expect("inhibit rules");
    assert!(
        problems
            .iter()
            .any(|problem| problem.ends_with("no alert named HonchoExporterDataStale")),
        "{problems:?}"
    );
}

#!/usr/bin/env python3
"""Lint the Grafana dashboards and the Prometheus rule files shipped with honcho_exporter.

Dashboards (grafana/dashboard-linter's rules and the monitoring-mixins conventions):
  * valid JSON, schemaVersion >= 39, `uid` equal to the file name (stable) and unique;
  * exactly one `datasource` variable (type datasource, Prometheus) and `job`, `instance`,
    `workspace` query variables built with `label_values(...)`;
  * no hard-coded datasource UID anywhere: panels and targets use `${datasource}`;
  * every panel has a title, a description and a unit;
  * every range selector in a panel query is `[$__rate_interval]`; counters (`*_total`) only
    appear directly inside rate()/irate()/increase();
  * every metric a query uses is one the exporter exports (dashboards/exported-metrics.txt) or
    one of Honcho's own (dashboards/honcho-own-metrics.txt, selected with namespace="honcho",
    and only in panels whose description says they need Honcho's /metrics);
  * every exporter metric selector carries `job=~"$job"` and `instance=~"$instance"`;
  * HA: queue metrics (honcho_queue_*, honcho_deriver_*) are only read through
    `max without (instance, pod)`, so two exporters on one Honcho never double count;
  * a `topk`/`bottomk` in a time series (range) query ranks `@ end()` values, so the graph shows
    one fixed set of k series, not k per step (more than k over the range);
  * overview dashboards (tag `overview`): every time series grouped by workspace is limited
    with topk/bottomk (1,000 workspaces must not stack 3,000 series) and carries a data link
    to the workspace board (`/d/honcho-workspace`, `var-workspace=${__field.labels.…}`,
    `${__url_time_range}`).

Rule files:
  * every metric an expression uses is exported, or recorded by a rule file;
  * alerts: `Honcho…` CamelCase names, a `severity` label (critical|warning|info), a static
    summary, description, a dashboard_url on a shipped dashboard and a runbook_url pointing at
    docs/runbook.md#<lowercased alert name>, with that section present in the runbook. (The
    `# param:<Alert>.<name>` markers of thresholds and `for:` durations are checked in Rust:
    tests/integration/dashboards.rs.)

Exits 1 and prints one line per problem (file, panel or rule, problem) if anything is wrong.
Metric names are parsed out of PromQL roughly (strings and label lists removed first); that is
enough for the queries in this repository, not a PromQL parser.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK_BASE = "https://github.com/honcho-exporter/honcho_exporter/blob/main/docs/runbook.md"
GRAFANA_BASE = "https://grafana.example.com"
SHIPPED_DASHBOARD_UIDS = {path.stem for path in (Path(__file__).resolve().parent.parent / "dashboards").glob("*.json")}
CHECKED_PREFIXES = ("honcho_", "process_", "deriver_")
HA_DEDUP_PREFIXES = ("honcho_queue_", "honcho_deriver_")
HA_DEDUP = re.compile(r"max\s+without\s*\(\s*instance\s*,\s*pod\s*\)")
SEVERITIES = {"critical", "warning", "info"}
DATASOURCE_REF = {"${datasource}", "$datasource"}
# Grafana's built-in "Annotations & Alerts" entry, the only datasource allowed to be literal.
GRAFANA_BUILTIN_DATASOURCE = {"type": "grafana", "uid": "-- Grafana --"}
LABEL_LIST_KEYWORDS = ("by", "without", "on", "ignoring", "group_left", "group_right")
RANGE_FUNCTIONS_FOR_COUNTERS = ("rate", "irate", "increase")


class Problems:
    """Collects problems as `file: where: what` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, file: str, where: str, what: str) -> None:
        self.lines.append(f"{os.path.relpath(file)}: {where}: {what}")


# --------------------------------------------------------------------------- PromQL scanning


def mask_strings_and_comments(expr: str) -> str:
    """Return `expr` with the contents of string literals replaced by `x` and comments by
    spaces, keeping every position, so that matches in the mask index into the original."""
    out = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            quote = c
            out.append(c)
            i += 1
            while i < len(expr) and expr[i] != quote:
                if expr[i] == "\\" and quote != "`" and i + 1 < len(expr):
                    out.append("xx")
                    i += 2
                    continue
                out.append("x")
                i += 1
            if i < len(expr):
                out.append(quote)
                i += 1
        elif c == "#":
            while i < len(expr) and expr[i] != "\n":
                out.append(" ")
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def label_list_spans(masked: str) -> list[tuple[int, int]]:
    """Spans of `by (...)`, `on (...)`, ... label lists, whose words are labels, not metrics."""
    spans = []
    pattern = re.compile(r"\b(" + "|".join(LABEL_LIST_KEYWORDS) + r")\s*\(")
    for m in pattern.finditer(masked):
        end = masked.find(")", m.end())
        spans.append((m.end(), end if end >= 0 else len(masked)))
    return spans


def matcher_spans(masked: str) -> list[tuple[int, int]]:
    """Spans of `{...}` label matcher blocks."""
    spans = []
    for m in re.finditer(r"\{[^{}]*\}", masked):
        spans.append((m.start(), m.end()))
    return spans


class Selector:
    """One metric name occurrence in a query, with its `{...}` matchers (original text)."""

    def __init__(self, name: str, start: int, matchers: str, preceding: str):
        self.name = name
        self.start = start
        self.matchers = matchers
        self.preceding = preceding


def metric_selectors(expr: str) -> list[Selector]:
    """Metric names used by a PromQL expression, roughly: identifiers outside strings, label
    matchers and label lists, not followed by `(` (functions) or a matcher operator (labels)."""
    masked = mask_strings_and_comments(expr)
    excluded = label_list_spans(masked) + matcher_spans(masked)
    selectors = []
    for m in re.finditer(r"(?<![A-Za-z0-9_:$])[A-Za-z_:][A-Za-z0-9_:]*", masked):
        name = m.group(0)
        if any(s <= m.start() < e for s, e in excluded):
            continue
        rest = masked[m.end():].lstrip()
        if rest.startswith("(") or re.match(r"(=~|!~|!=|=(?!=))", rest):
            continue
        if not (name.startswith(CHECKED_PREFIXES) or ":" in name):
            continue
        matchers = ""
        if rest.startswith("{"):
            brace = masked.index("{", m.end())
            close = masked.find("}", brace)
            matchers = expr[brace: close + 1 if close >= 0 else len(expr)]
        preceding = masked[: m.start()].rstrip()
        selectors.append(Selector(name, m.start(), matchers, preceding))
    return selectors


def range_selectors(expr: str) -> list[str]:
    """Contents of every `[...]` range (or subquery) in the expression."""
    return re.findall(r"\[([^\]]*)\]", mask_strings_and_comments(expr))


# --------------------------------------------------------------------------- dashboards


def walk_panels(panels: list) -> list[dict]:
    """All panels, rows' nested panels included."""
    out = []
    for panel in panels or []:
        out.append(panel)
        if panel.get("type") == "row":
            out.extend(walk_panels(panel.get("panels", [])))
    return out


def find_datasource_refs(node, path: str = "$"):
    """Yield (path, value) for every `datasource` key anywhere in the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield f"{path}.datasource", value
            yield from find_datasource_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from find_datasource_refs(value, f"{path}[{i}]")


def is_datasource_variable_ref(value) -> bool:
    if isinstance(value, str):
        return value in DATASOURCE_REF
    if isinstance(value, dict):
        return value.get("uid") in DATASOURCE_REF and value.get("type", "prometheus") == "prometheus"
    return False


def variable_query_text(variable: dict) -> str:
    query = variable.get("query", "")
    if isinstance(query, dict):
        query = query.get("query", "")
    return query or variable.get("definition", "")


class MetricCatalogue:
    """The metric names queries may use."""

    def __init__(self, exported: set[str], honcho_own: set[str], recorded: set[str]):
        self.exported = exported
        self.honcho_own = honcho_own
        self.recorded = recorded

    def problem_with(self, name: str) -> str | None:
        if ":" in name:
            if name not in self.recorded:
                return f"uses recording rule {name}, which no rule file in deploy/prometheus records"
            return None
        if name in self.exported or name in self.honcho_own:
            return None
        return f"uses metric {name}, which honcho_exporter does not export (dashboards/exported-metrics.txt)"


def check_query(problems: Problems, file: str, where: str, expr: str, catalogue: MetricCatalogue,
                description: str, for_dashboard: bool) -> None:
    """Checks shared by panel queries and template variable queries."""
    for selector in metric_selectors(expr):
        problem = catalogue.problem_with(selector.name)
        if problem:
            problems.add(file, where, problem)
            continue
        if selector.name.endswith("_total") and not re.search(
            r"\b(" + "|".join(RANGE_FUNCTIONS_FOR_COUNTERS) + r")\s*\($", selector.preceding
        ):
            problems.add(file, where, f"counter {selector.name} must be read through rate()/irate()/increase()")
        if not for_dashboard:
            continue
        if selector.name in catalogue.honcho_own:
            if 'namespace="honcho"' not in selector.matchers:
                problems.add(file, where, f'Honcho metric {selector.name} must be selected with namespace="honcho"')
            if "/metrics" not in description:
                problems.add(file, where, f"panel reads Honcho's own {selector.name}: its description must say it needs Honcho's /metrics scraped")
            continue
        if ":" in selector.name:
            continue
        for variable in ("job", "instance"):
            if not re.search(variable + r'\s*=~\s*"\$\{?' + variable + r'\}?"', selector.matchers):
                problems.add(file, where, f'selector of {selector.name} lacks {variable}=~"${variable}"')
        if selector.name.startswith(HA_DEDUP_PREFIXES) and not HA_DEDUP.search(expr):
            problems.add(file, where, f"{selector.name} must be read through `max without (instance, pod)` (HA: two exporters must not double count)")


def lint_dashboard(path: Path, catalogue: MetricCatalogue, seen_uids: dict, problems: Problems) -> None:
    file = str(path)
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        problems.add(file, "dashboard", f"not valid JSON: {error}")
        return
    if not isinstance(dashboard, dict):
        problems.add(file, "dashboard", "top level is not a JSON object")
        return

    uid = dashboard.get("uid")
    if not uid:
        problems.add(file, "dashboard", "no uid")
    else:
        if uid != path.stem:
            problems.add(file, "dashboard", f"uid {uid!r} must equal the file name {path.stem!r} (stable uids)")
        if uid in seen_uids:
            problems.add(file, "dashboard", f"uid {uid!r} already used by {seen_uids[uid]}")
        seen_uids[uid] = file
    if not dashboard.get("title"):
        problems.add(file, "dashboard", "no title")
    schema = dashboard.get("schemaVersion")
    if not isinstance(schema, int) or schema < 39:
        problems.add(file, "dashboard", f"schemaVersion {schema!r} is below 39")

    variables = dashboard.get("templating", {}).get("list", [])
    by_name = {v.get("name"): v for v in variables}
    datasource_variables = [v for v in variables if v.get("type") == "datasource"]
    if len(datasource_variables) != 1:
        problems.add(file, "templating", f"needs exactly one datasource variable, found {len(datasource_variables)}")
    datasource_variable = by_name.get("datasource")
    if not datasource_variable or datasource_variable.get("type") != "datasource" or datasource_variable.get("query") != "prometheus":
        problems.add(file, "templating", 'needs a variable named "datasource" of type datasource with query "prometheus"')
    for name, needs in (("job", []), ("instance", ["$job"]), ("workspace", ["$job", "$instance"])):
        variable = by_name.get(name)
        where = f"variable {name}"
        if not variable:
            problems.add(file, where, "missing")
            continue
        query = variable_query_text(variable)
        if variable.get("type") != "query" or not query.startswith("label_values("):
            problems.add(file, where, "must be a query variable using label_values(...)")
        if not is_datasource_variable_ref(variable.get("datasource")):
            problems.add(file, where, "must use the ${datasource} variable")
        for need in needs:
            if need not in query:
                problems.add(file, where, f"query must filter on {need}")
        if query.startswith("label_values("):
            check_query(problems, file, where, query, catalogue, "", for_dashboard=False)

    for ref_path, value in find_datasource_refs(dashboard):
        if value == GRAFANA_BUILTIN_DATASOURCE:
            continue
        if not is_datasource_variable_ref(value):
            problems.add(file, ref_path, f"hard-coded datasource {json.dumps(value)}: use ${{datasource}}")

    overview = "overview" in (dashboard.get("tags") or [])
    panel_ids = set()
    panels = walk_panels(dashboard.get("panels", []))
    if not any(p.get("type") != "row" for p in panels):
        problems.add(file, "dashboard", "has no panels")
    for panel in panels:
        title = panel.get("title") or f"<panel id {panel.get('id')}>"
        where = f'panel "{title}"'
        panel_id = panel.get("id")
        if panel_id in panel_ids:
            problems.add(file, where, f"duplicate panel id {panel_id}")
        panel_ids.add(panel_id)
        if panel.get("type") == "row":
            continue
        if not panel.get("title"):
            problems.add(file, where, "no title")
        description = panel.get("description") or ""
        if not description.strip():
            problems.add(file, where, "no description")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.add(file, where, "no unit (fieldConfig.defaults.unit)")
        if not is_datasource_variable_ref(panel.get("datasource")):
            problems.add(file, where, "panel datasource must be ${datasource}")
        targets = panel.get("targets") or []
        if not targets:
            problems.add(file, where, "no queries")
        ref_ids = set()
        for target in targets:
            ref = target.get("refId", "?")
            target_where = f"{where} query {ref}"
            if ref in ref_ids:
                problems.add(file, target_where, "duplicate refId")
            ref_ids.add(ref)
            expr = target.get("expr") or ""
            if not expr.strip():
                problems.add(file, target_where, "empty expr")
                continue
            for window in range_selectors(expr):
                if window.strip() != "$__rate_interval":
                    problems.add(file, target_where, f"range [{window}] must be [$__rate_interval]")
            check_query(problems, file, target_where, expr, catalogue, description, for_dashboard=True)
            check_series_limits(problems, file, target_where, expr, panel, target, overview)
        if overview and panel.get("type") == "timeseries" and any(
            groups_by_workspace(t.get("expr") or "") for t in targets
        ):
            check_workspace_link(problems, file, where, panel)


WORKSPACE_GROUPING = re.compile(r"\bby\s*\([^)]*\bworkspace(_name)?\b[^)]*\)")
RANKING = re.compile(r"\b(topk|bottomk)\s*\(")


def groups_by_workspace(expr: str) -> bool:
    return bool(WORKSPACE_GROUPING.search(mask_strings_and_comments(expr)))


def check_series_limits(problems: Problems, file: str, where: str, expr: str, panel: dict, target: dict,
                        overview: bool) -> None:
    """topk/bottomk in range queries rank `@ end()` values; overview series per workspace are ranked."""
    masked = mask_strings_and_comments(expr)
    range_query = panel.get("type") == "timeseries" and target.get("instant") is not True
    if range_query and RANKING.search(masked) and "@ end()" not in masked:
        problems.add(file, where, "topk/bottomk in a range query picks k series per step (more than k in the graph): rank `@ end()` values and join them with `and on (...)`")
    if overview and panel.get("type") == "timeseries" and groups_by_workspace(expr) and not RANKING.search(masked):
        problems.add(file, where, "overview time series grouped by workspace must be limited with topk(10, …) (or bottomk)")


def check_workspace_link(problems: Problems, file: str, where: str, panel: dict) -> None:
    """Overview panels per workspace link each series to the workspace board, keeping the time range."""
    links = (panel.get("fieldConfig", {}).get("defaults", {}).get("links") or []) + (panel.get("links") or [])
    good = [
        link for link in links
        if "/d/honcho-workspace" in link.get("url", "")
        and "var-workspace=${__field.labels.workspace" in link.get("url", "")
        and "${__url_time_range}" in link.get("url", "")
    ]
    if not good:
        problems.add(file, where, "no data link to the workspace board (/d/honcho-workspace?…var-workspace=${__field.labels.workspace}&${__url_time_range})")


# --------------------------------------------------------------------------- rule files


def load_yaml(path: Path):
    import yaml  # PyYAML; scripts/test.sh installs it

    return yaml.safe_load(path.read_text())


def recorded_names(rule_files: list[Path]) -> set[str]:
    names = set()
    for path in rule_files:
        try:
            data = load_yaml(path) or {}
        except Exception:  # reported by lint_rules
            continue
        for group in data.get("groups", []) or []:
            for rule in group.get("rules", []) or []:
                if isinstance(rule, dict) and rule.get("record"):
                    names.add(rule["record"])
    return names


def lint_rules(path: Path, catalogue: MetricCatalogue, runbook: Path, problems: Problems) -> None:
    file = str(path)
    try:
        text = path.read_text()
        data = load_yaml(path) or {}
    except Exception as error:  # YAML errors come in several classes
        problems.add(file, "rules", f"not valid YAML: {error}")
        return
    try:
        runbook_text = runbook.read_text()
    except OSError:
        runbook_text = ""
        problems.add(file, "rules", f"runbook {os.path.relpath(runbook)} not found")
    runbook_headings = set(re.findall(r"^## (\S+)\s*$", runbook_text, flags=re.M))

    alerts = set()
    for group in data.get("groups", []) or []:
        for rule in group.get("rules", []) or []:
            name = rule.get("alert") or rule.get("record") or "<unnamed>"
            where = f"alert {name}" if rule.get("alert") else f"record {name}"
            check_query(problems, file, where, str(rule.get("expr", "")), catalogue, "", for_dashboard=False)
            if not rule.get("alert"):
                if not re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z_]+", name):
                    problems.add(file, where, "recording rule names follow level:metric:operations")
                continue
            alerts.add(name)
            if not re.fullmatch(r"Honcho[A-Z][A-Za-z]*", name):
                problems.add(file, where, "alert names are CamelCase and start with Honcho")
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                problems.add(file, where, f"severity label {severity!r} is not one of {sorted(SEVERITIES)}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook_url", "dashboard_url"):
                if not annotations.get(key):
                    problems.add(file, where, f"no {key} annotation")
            if "{{" in str(annotations.get("summary", "")):
                problems.add(file, where, "summary must be static (no templating): notification titles group by it; details go in description")
            dashboard_url = str(annotations.get("dashboard_url", ""))
            if dashboard_url:
                match = re.match(re.escape(GRAFANA_BASE) + r"/d/([a-z0-9-]+)", dashboard_url)
                if not match or match.group(1) not in SHIPPED_DASHBOARD_UIDS:
                    problems.add(file, where, f"dashboard_url must be {GRAFANA_BASE}/d/<uid of a dashboard in dashboards/>")
            expected_url = f"{RUNBOOK_BASE}#{name.lower()}"
            if annotations.get("runbook_url") and annotations["runbook_url"] != expected_url:
                problems.add(file, where, f"runbook_url must be {expected_url}")
            if name not in runbook_headings:
                problems.add(file, where, f'docs/runbook.md has no section "## {name}"')
            if "for" not in rule:
                problems.add(file, where, "no for: duration")


# --------------------------------------------------------------------------- promtool hand-off

# Grafana variables replaced by plain values so that promtool can parse the queries.
GRAFANA_VARIABLE_VALUES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
}


def panel_queries_as_rules(dashboards: list[Path]) -> dict:
    """Every panel and variable query as a recording rule, for `promtool check rules` (syntax)."""
    rules = []
    for path in dashboards:
        try:
            dashboard = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        prefix = re.sub(r"[^a-z0-9_]", "_", str(dashboard.get("uid", path.stem)).lower())
        for panel in walk_panels(dashboard.get("panels", [])):
            for target in panel.get("targets") or []:
                expr = target.get("expr") or ""
                for variable, value in GRAFANA_VARIABLE_VALUES.items():
                    expr = expr.replace(variable, value)
                if expr.strip():
                    rules.append({"record": f"dashboard_query:{prefix}_panel_{panel.get('id')}_{target.get('refId', 'A')}:check", "expr": expr})
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable_query_text(variable) if variable.get("type") == "query" else ""
            match = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_]+\)", query.strip(), flags=re.S)
            if match:
                rules.append({"record": f"dashboard_query:{prefix}_variable_{variable.get('name')}:check", "expr": match.group(1)})
    return {"groups": [{"name": f"dashboard-queries-{i}", "rules": [rule]} for i, rule in enumerate(rules)]}


# --------------------------------------------------------------------------- main


def read_names(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dashboards", nargs="*", type=Path, help="dashboard JSON files (default: dashboards/*.json)")
    parser.add_argument("--rules", nargs="*", type=Path, default=None, help="rule files (default: deploy/prometheus/*.rules.yml)")
    parser.add_argument("--exported-metrics", type=Path, default=ROOT / "dashboards/exported-metrics.txt")
    parser.add_argument("--honcho-metrics", type=Path, default=ROOT / "dashboards/honcho-own-metrics.txt")
    parser.add_argument("--runbook", type=Path, default=ROOT / "docs/runbook.md")
    parser.add_argument("--emit-promql-rules", type=Path, metavar="FILE",
                        help="also write every dashboard query into FILE as a rule file, for `promtool check rules`")
    args = parser.parse_args()

    dashboards = args.dashboards or sorted((ROOT / "dashboards").glob("*.json"))
    rule_files = args.rules if args.rules is not None else sorted((ROOT / "deploy/prometheus").glob("*.rules.yml"))
    # Recording rules used by dashboards are looked up in the shipped rule files too.
    shipped_rules = sorted((ROOT / "deploy/prometheus").glob("*.rules.yml"))
    catalogue = MetricCatalogue(
        read_names(args.exported_metrics),
        read_names(args.honcho_metrics),
        recorded_names(list(rule_files) + shipped_rules),
    )
    if not dashboards and not rule_files:
        print("lint_dashboards: nothing to lint", file=sys.stderr)
        return 1

    problems = Problems()
    seen_uids: dict = {}
    for path in dashboards:
        lint_dashboard(path, catalogue, seen_uids, problems)
    for path in rule_files:
        lint_rules(path, catalogue, args.runbook, problems)

    if args.emit_promql_rules:
        args.emit_promql_rules.write_text(json.dumps(panel_queries_as_rules(dashboards), indent=2))

    for line in problems.lines:
        print(line)
    if problems.lines:
        print(f"lint_dashboards: {len(problems.lines)} problem(s) in {len(dashboards)} dashboard(s) and {len(rule_files)} rule file(s)", file=sys.stderr)
        return 1
    print(f"lint_dashboards: {len(dashboards)} dashboard(s) and {len(rule_files)} rule file(s) OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

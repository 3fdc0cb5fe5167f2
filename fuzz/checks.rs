//! The per-target checks shared by the libFuzzer targets (`fuzz/fuzz_targets/*.rs`) and the
//! corpus replay test (`tests/integration/fuzz_corpus.rs`), included into both with `#[path]`.
//!
//! Each `check_*` function takes arbitrary bytes, runs them through the exporter's real code
//! (JSON decoding of one Honcho response type and what the poller does with it next, or the
//! exposition renderer), and panics when an invariant that holds for EVERY input is broken.
//! Input the decoder rejects is fine (the exporter reports it as a decode error); a panic, or a
//! result that contradicts the input, is a bug. Each returns whether its decoder accepted the
//! input (so the replay test can tell a checked input from a rejected one).
//!
//! What it must not do: assert properties that only hold for well-behaved servers (a hostile
//! body may report fewer workspace items than its sessions hold), or do its own arithmetic in
//! a type that can overflow (sums are `u128`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use honcho_exporter::classify::{TaskType, UnitState};
use honcho_exporter::exposition::{self, Format};
use honcho_exporter::honcho::types::{
    ItemCounts, QueueStatus, WorkUnitsPage, WorkspacePage, parse_timestamp,
};
use honcho_exporter::metric::{MetricFamily, MetricType};
use honcho_exporter::snapshot::{
    NO_SESSION, OTHER_SESSIONS, SessionRow, WorkUnitAggregator, summarize_status,
};

/// A target's check: panics on a broken invariant, returns whether the decoder accepted the input.
pub type Check = fn(&[u8]) -> bool;

/// The fuzz targets and their checks, by target name (the `[[bin]]` names of
/// `fuzz/Cargo.toml` and the directory names under `fuzz/seeds/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("render", check_render),
    ("status", check_status),
    ("work_units_page", check_work_units_page),
    ("workspace_page", check_workspace_page),
];

/// The body as a generic JSON value, when `serde_json::Value` accepts it. The typed decoders
/// accept strictly more: serde_json skips the values of fields they ignore without validating
/// their UTF-8, so only bodies both accept can be compared (the library reads no ignored field).
fn generic(data: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(data).ok()
}

/// A struct field of a generic value: by name in an object, by declaration position in an
/// array (serde's derived structs also accept the positional form `[items, total, …]`; the
/// flattened status types do not).
fn field<'v>(value: &'v serde_json::Value, name: &str, position: usize) -> &'v serde_json::Value {
    match value {
        // `Value`'s indexing yields `Null` for a missing name or position (never panics).
        serde_json::Value::Array(_) => &value[position],
        _ => &value[name],
    }
}

/// Session caps tried for every status body: none kept (all in `__other__`), one, and a few.
const SESSION_CAPS: [usize; 3] = [0, 1, 3];

/// Decodes a queue/status (or v2 deriver/status) body and summarises it with several caps.
///
/// Invariants for any decodable body (W = workspace counts, S = sum over ALL sessions, per
/// field): at most `cap` real session rows, the top ones by (pending desc, in progress desc,
/// id); `__other__` exactly when sessions were capped, holding the sum of the rest; `__none__`
/// exactly when `W.total > S.total`, holding `W − S` saturated at 0; hence the rows sum to `S`,
/// or to `max(W, S)` when `__none__` is present, and to `W` exactly when the body is consistent.
/// Sums beyond `u64::MAX` must not panic or wrap: `__other__` holds `u64::MAX` then (the
/// library does not do this yet: see `fuzz/artifacts-found/README.md`).
pub fn check_status(data: &[u8]) -> bool {
    let Ok(status) = serde_json::from_slice::<QueueStatus>(data) else {
        return false;
    };
    if let Some(value) = generic(data) {
        assert_eq!(
            value["total_work_units"].as_u64(),
            Some(status.counts.total),
            "total_work_units"
        );
        assert_eq!(
            value["pending_stalled_work_units"].as_u64(),
            status.counts.pending_stalled,
            "pending_stalled_work_units"
        );
        let generic_ids: BTreeSet<&str> = value["sessions"]
            .as_object()
            .map(|sessions| sessions.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let typed_ids: BTreeSet<&str> = status
            .sessions
            .iter()
            .flatten()
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(typed_ids, generic_ids, "session ids");
    }
    for cap in SESSION_CAPS {
        check_summary(&status, cap);
    }
    true
}

/// The u128 sums of the four always-present fields, then of the two split fields (stalled,
/// ready), each `None` when any addend lacks it (the library keeps them independently).
type WideCounts = ([u128; 4], [Option<u128>; 2]);

fn widen(counts: &ItemCounts) -> WideCounts {
    (
        [
            u128::from(counts.total),
            u128::from(counts.completed),
            u128::from(counts.in_progress),
            u128::from(counts.pending),
        ],
        [
            counts.pending_stalled.map(u128::from),
            counts.pending_ready.map(u128::from),
        ],
    )
}

fn wide_sum<'a>(all: impl IntoIterator<Item = &'a ItemCounts>) -> WideCounts {
    let mut sum: WideCounts = ([0; 4], [Some(0); 2]);
    for counts in all {
        let (base, split) = widen(counts);
        for (total, value) in sum.0.iter_mut().zip(base) {
            *total += value;
        }
        for (total, value) in sum.1.iter_mut().zip(split) {
            *total = total.zip(value).map(|(total, value)| total + value);
        }
    }
    sum
}

/// A u128 sum as the library's saturating u64 arithmetic would hold it.
fn saturate(value: u128) -> u128 {
    value.min(u128::from(u64::MAX))
}

/// Export order of session rows: pending desc, then in progress desc, then id.
fn session_order(a: &SessionRow, b: &SessionRow) -> std::cmp::Ordering {
    b.counts
        .pending
        .cmp(&a.counts.pending)
        .then(b.counts.in_progress.cmp(&a.counts.in_progress))
        .then(a.session_id.cmp(&b.session_id))
}

fn check_summary(status: &QueueStatus, cap: usize) {
    let sessions: Vec<SessionRow> = status
        .sessions
        .iter()
        .flatten()
        .map(|(id, session)| SessionRow {
            session_id: id.clone(),
            counts: session.counts,
        })
        .collect();
    // Ids equal to our own row names are folded into `__other__` (they would duplicate a
    // series); they go after the regular sessions in the rest.
    let (mut sessions, reserved): (Vec<SessionRow>, Vec<SessionRow>) = sessions
        .into_iter()
        .partition(|row| row.session_id != OTHER_SESSIONS && row.session_id != NO_SESSION);
    sessions.sort_by(session_order);
    let regular = sessions.len();
    sessions.extend(reserved);
    let summary = summarize_status(status.clone(), cap);

    assert_eq!(summary.counts, status.counts, "workspace counts changed");
    assert!(
        summary.sessions.len() <= cap + 2,
        "{} rows for cap {cap}",
        summary.sessions.len()
    );
    let kept = regular.min(cap);
    let capped = sessions.len() - kept;
    assert_eq!(summary.capped_sessions, capped as u64, "capped_sessions");
    assert_eq!(
        summary.sessions[..kept],
        sessions[..kept],
        "the kept rows are not the top {kept} sessions in export order"
    );

    let mut synthesized = summary.sessions[kept..].iter();
    let other = if capped > 0 {
        let other = synthesized.next().expect("an __other__ row when capped");
        assert_eq!(other.session_id, OTHER_SESSIONS);
        let rest = wide_sum(sessions[kept..].iter().map(|row| &row.counts));
        assert_eq!(
            widen(&other.counts).0,
            rest.0.map(saturate),
            "__other__ is not the rest's sum"
        );
        Some(other)
    } else {
        None
    };

    let workspace = widen(&status.counts);
    let all_sessions = wide_sum(sessions.iter().map(|row| &row.counts));
    let none_expected = workspace.0[0] > all_sessions.0[0];
    let none = synthesized.next();
    assert_eq!(
        none.is_some(),
        none_expected,
        "__none__ row presence (workspace total {} vs sessions {})",
        workspace.0[0],
        all_sessions.0[0]
    );
    assert!(synthesized.next().is_none(), "rows after __none__");
    if let Some(none) = none {
        assert_eq!(none.session_id, NO_SESSION);
        let expected: [u128; 4] =
            std::array::from_fn(|field| workspace.0[field].saturating_sub(all_sessions.0[field]));
        assert_eq!(
            widen(&none.counts).0,
            expected,
            "__none__ is not the workspace minus all sessions"
        );
    }

    // Sessions' sums beyond u64 (only a hostile body) cannot be exported exactly: the rows'
    // sums below hold only when every sum fits.
    let fits = |value: &u128| *value <= u128::from(u64::MAX);
    if !(all_sessions.0.iter().all(fits) && all_sessions.1.iter().flatten().all(fits)) {
        return;
    }
    let rows = wide_sum(summary.sessions.iter().map(|row| &row.counts));
    for field in 0..4 {
        let expected = if none_expected {
            workspace.0[field].max(all_sessions.0[field])
        } else {
            all_sessions.0[field]
        };
        assert_eq!(rows.0[field], expected, "rows' sum of field {field}");
    }
    let consistent = (0..4).all(|field| workspace.0[field] >= all_sessions.0[field])
        && workspace.0[0] == workspace.0[1] + workspace.0[2] + workspace.0[3]
        && sessions.iter().all(|row| {
            let (base, _) = widen(&row.counts);
            base[0] == base[1] + base[2] + base[3]
        });
    if consistent {
        assert_eq!(
            rows.0, workspace.0,
            "a consistent body's rows must sum to it"
        );
    }

    // The split, field by field: synthesized rows carry a split field only when the workspace
    // does; when the workspace and every session have it, the rows sum like the base fields.
    for field in 0..2 {
        let split_of = |row: &SessionRow| widen(&row.counts).1[field];
        match (workspace.1[field], all_sessions.1[field]) {
            (None, _) => {
                for row in other.iter().chain(none.iter()) {
                    assert!(
                        split_of(row).is_none(),
                        "{} invents split field {field} the workspace lacks",
                        row.session_id
                    );
                }
            }
            (Some(workspace_split), Some(sessions_split)) => {
                let expected = if none_expected {
                    workspace_split.max(sessions_split)
                } else {
                    sessions_split
                };
                assert_eq!(
                    rows.1[field],
                    Some(expected),
                    "rows' sum of split field {field}"
                );
            }
            (Some(_), None) => {}
        }
    }
}

/// The walk time used for work-units pages: 2026-11-22T04:00:00Z, after the fixtures' items.
const WALK_NOW: f64 = 1_795_320_000.0;

/// Decodes a work-units page and walks it (twice, as a unit reappearing on a later page would)
/// through a [`WorkUnitAggregator`].
///
/// Invariants for any decodable page: invalid timestamps are the first occurrences whose
/// `oldest_item_at` does not parse, and those units are in no cell (their age is unknown);
/// units across cells = distinct keys minus them; every repeat is a duplicate; items and tokens
/// are the sums over the first occurrences with a valid timestamp (saturating, never panicking,
/// beyond `u64::MAX`); the detail list is bounded by its limit, sorted most problematic first,
/// and detail + capped = problem (non-ready) units; only wanted sessions get names; the
/// envelope's settings pass through.
pub fn check_work_units_page(data: &[u8]) -> bool {
    // The walk's own decoding path (UTF-8 check, preallocated rows), not serde_json directly.
    let Ok(page) = honcho_exporter::honcho::decode::<WorkUnitsPage<'_>>(data) else {
        return false;
    };
    if let Some(value) = generic(data) {
        let generic_keys: Vec<&str> = field(&value, "items", 0)
            .as_array()
            .expect("items is an array")
            .iter()
            .map(|item| {
                field(item, "work_unit_key", 0)
                    .as_str()
                    .expect("a string key")
            })
            .collect();
        let typed_keys: Vec<&str> = page
            .items
            .iter()
            .map(|row| row.work_unit_key.as_ref())
            .collect();
        assert_eq!(typed_keys, generic_keys, "work unit keys");
    }
    // Keep the names of every other session seen, so both branches of the lookup run.
    let wanted: HashSet<String> = page
        .items
        .iter()
        .filter_map(|row| row.session_id.as_deref())
        .enumerate()
        .filter(|(index, _)| index % 2 == 0)
        .map(|(_, id)| id.to_string())
        .collect();
    for detail_limit in [0, 2] {
        let mut aggregator = WorkUnitAggregator::new(
            WALK_NOW,
            Duration::from_secs(600),
            detail_limit,
            wanted.clone(),
        );
        aggregator.add_page(&page);
        aggregator.add_page(&page);
        let aggregate = aggregator.finish();

        let mut seen = HashSet::new();
        let mut first_rows = Vec::new();
        for row in &page.items {
            if seen.insert(row.work_unit_key.as_ref()) {
                first_rows.push(row);
            }
        }
        let rows = page.items.len() as u64;
        let distinct = first_rows.len() as u64;
        let invalid = first_rows
            .iter()
            .filter(|row| parse_timestamp(&row.oldest_item_at).is_none())
            .count() as u64;
        assert_eq!(aggregate.invalid_timestamps, invalid, "invalid timestamps");
        assert_eq!(
            aggregate.first_invalid_timestamp.is_some(),
            invalid > 0,
            "an example exactly when there are invalid timestamps"
        );
        first_rows.retain(|row| parse_timestamp(&row.oldest_item_at).is_some());
        let classified = distinct - invalid;
        let cells = aggregate.cells.iter().flatten();
        let units: u64 = cells.clone().map(|cell| cell.units).sum();
        assert_eq!(
            units, classified,
            "units across cells vs distinct work unit keys with a valid timestamp"
        );
        assert_eq!(aggregate.duplicates, 2 * rows - distinct, "duplicates");
        let items: u128 = cells.clone().map(|cell| u128::from(cell.items)).sum();
        let expected_items: u128 = first_rows
            .iter()
            .map(|row| u128::from(row.pending_items))
            .sum();
        assert_sum_across_cells(items, expected_items, "items");
        let tokens: u128 = cells.map(|cell| u128::from(cell.tokens)).sum();
        let expected_tokens: u128 = first_rows
            .iter()
            .map(|row| u128::from(row.pending_tokens))
            .sum();
        assert_sum_across_cells(tokens, expected_tokens, "tokens");

        for task_type in TaskType::ALL {
            for state in UnitState::ALL {
                let cell = aggregate.cell(task_type, state);
                assert_eq!(
                    cell.units == 0,
                    cell.oldest_item_timestamp.is_none(),
                    "a cell has an oldest timestamp exactly when it has units"
                );
            }
        }

        let ready: u64 = TaskType::ALL
            .iter()
            .map(|&task_type| aggregate.cell(task_type, UnitState::Ready).units)
            .sum();
        assert!(
            aggregate.detail.len() <= detail_limit,
            "detail over its limit"
        );
        assert_eq!(
            aggregate.detail.len() as u64 + aggregate.capped_detail,
            classified - ready,
            "detail + capped vs problem units"
        );
        assert!(
            aggregate
                .detail
                .iter()
                .all(|unit| unit.state != UnitState::Ready),
            "a ready unit in the problem detail"
        );
        let rank = |state: UnitState| state.problem_rank().unwrap_or(u8::MAX);
        assert!(
            aggregate.detail.windows(2).all(|pair| {
                (rank(pair[0].state), pair[0].oldest_item_timestamp)
                    <= (rank(pair[1].state), pair[1].oldest_item_timestamp)
            }),
            "detail not sorted most problematic first"
        );
        assert!(
            aggregate.session_names.keys().all(|id| wanted.contains(id)),
            "a session name kept that was not wanted"
        );
        assert_eq!(
            aggregate.batch_max_tokens,
            page.representation_batch_max_tokens
        );
        assert_eq!(aggregate.flush_enabled, page.flush_enabled);
    }
    true
}

/// A per-cell u64 sum beyond `u64::MAX` (only a hostile page) saturates, so the cells then hold
/// at most the exact sum; otherwise exactly it.
fn assert_sum_across_cells(cells: u128, exact: u128, what: &str) {
    if exact <= u128::from(u64::MAX) {
        assert_eq!(cells, exact, "{what} across cells");
    } else {
        assert!(
            cells <= exact,
            "{what} across cells {cells} exceed the exact sum {exact}"
        );
    }
}

/// Decodes a workspaces/list page. Invariant: when the generic JSON parser accepts the body
/// too, it reads the same workspace names in the same order.
pub fn check_workspace_page(data: &[u8]) -> bool {
    let Ok(page) = serde_json::from_slice::<WorkspacePage>(data) else {
        return false;
    };
    let Some(value) = generic(data) else {
        return true;
    };
    let ids: Vec<&str> = field(&value, "items", 0)
        .as_array()
        .expect("items is an array")
        .iter()
        .map(|item| field(item, "id", 0).as_str().expect("id is a string"))
        .collect();
    let typed: Vec<&str> = page.items.iter().map(|item| item.id.as_str()).collect();
    assert_eq!(typed, ids);
    true
}

/// Label names of the render target's samples, in order; a record's fields fill them.
const RENDER_LABELS: [&str; 4] = ["workspace", "session_id", "peer", "reason"];

/// Renders fuzzer-chosen label values and sample values in both formats, then parses the
/// output back with a strict little line parser.
///
/// Input: UTF-8 (lossily) split into records by `\u{1e}`, each record into fields by
/// `\u{1f}`: a value (`f64` text; anything unparsable is 0), then up to four label values. Every
/// record becomes a sample of a gauge with a unit, a counter and an info family.
///
/// Invariants: the output is UTF-8; every line is a `# HELP|TYPE|UNIT|EOF` comment or
/// `name{label="value",...} value` with only `\\`, `\"` and `\n` escapes inside quotes; the
/// samples parse back to exactly the names, label values and values given (info: 1).
pub fn check_render(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let samples: Vec<(Vec<(&'static str, String)>, f64)> = text
        .split('\u{1e}')
        .map(|record| {
            let mut fields = record.split('\u{1f}');
            let value = fields
                .next()
                .and_then(|value| value.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            let labels = RENDER_LABELS
                .iter()
                .zip(fields)
                .map(|(&name, value)| (name, value.to_string()))
                .collect();
            (labels, value)
        })
        .collect();
    let mut families = vec![
        MetricFamily::new(
            "fuzz_age_seconds",
            "A gauge with a unit; help with \"quotes\" and a back\\slash",
            MetricType::Gauge,
        )
        .with_unit("seconds"),
        MetricFamily::new("fuzz_events", "A counter", MetricType::Counter),
        MetricFamily::new("fuzz_build", "An info family", MetricType::Info),
    ];
    for family in &mut families {
        for (labels, value) in &samples {
            family.push(labels.clone(), *value);
        }
    }
    for format in [Format::OpenMetrics, Format::Text] {
        let mut out = Vec::new();
        exposition::render(&families, format, &mut out);
        exposition::finish(format, &mut out);
        let body = std::str::from_utf8(&out).expect("exposition is UTF-8");
        let body = body
            .strip_suffix('\n')
            .expect("exposition ends with a newline");
        let mut expected = families.iter().flat_map(|family| {
            let suffix = match family.kind {
                MetricType::Gauge => "",
                MetricType::Counter => "_total",
                MetricType::Info => "_info",
            };
            family.samples.iter().map(move |sample| {
                let value = if family.kind == MetricType::Info {
                    1.0
                } else {
                    sample.value
                };
                (format!("{}{suffix}", family.name), &sample.labels, value)
            })
        });
        for line in body.split('\n') {
            if let Some(comment) = line.strip_prefix("# ") {
                assert!(
                    ["HELP ", "TYPE ", "UNIT "]
                        .iter()
                        .any(|keyword| comment.starts_with(keyword))
                        || (format == Format::OpenMetrics && comment == "EOF"),
                    "unexpected comment line {line:?} in {format:?}"
                );
                continue;
            }
            let (name, labels, value) = parse_sample_line(line)
                .unwrap_or_else(|problem| panic!("{problem} in {format:?} line {line:?}"));
            let (expected_name, expected_labels, expected_value) = expected
                .next()
                .unwrap_or_else(|| panic!("extra sample line {line:?} in {format:?}"));
            assert_eq!(name, expected_name, "sample name");
            let expected_labels: BTreeMap<&str, &str> = expected_labels
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            let labels: BTreeMap<&str, &str> = labels
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            assert_eq!(labels, expected_labels, "label values in {format:?}");
            assert!(
                value == expected_value || (value.is_nan() && expected_value.is_nan()),
                "value {value} rendered for {expected_value} in {format:?}: {line:?}"
            );
        }
        assert!(
            expected.next().is_none(),
            "samples missing from the {format:?} output"
        );
    }
    true
}

/// A parsed sample line: name, label names and unescaped values, value.
type ParsedSample<'a> = (&'a str, Vec<(&'a str, String)>, f64);

/// Parses `name{label="value",...} value` strictly: metric and label name characters, only the
/// `\\`, `\"`, `\n` escapes, no raw newline, exactly one space before the value, nothing after.
fn parse_sample_line(line: &str) -> Result<ParsedSample<'_>, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("bad metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            let label_end = rest.find('=').ok_or("label without '='")?;
            let label = &rest[..label_end];
            if label.is_empty()
                || label.starts_with(|c: char| c.is_ascii_digit())
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("bad label name {label:?}"));
            }
            rest = rest[label_end + 1..]
                .strip_prefix('"')
                .ok_or("label value without an opening quote")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (index, '"') => break index,
                    (_, '\\') => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((label, value));
            rest = &rest[close + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else {
                rest = rest.strip_prefix('}').ok_or("label set not closed")?;
                break;
            }
        }
    }
    let value_text = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value_text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        number if number.starts_with(|c: char| c.is_ascii_digit() || c == '-') => number
            .parse::<f64>()
            .map_err(|error| format!("value {number:?}: {error}"))?,
        other => return Err(format!("bad value {other:?}")),
    };
    Ok((name, labels, value))
}

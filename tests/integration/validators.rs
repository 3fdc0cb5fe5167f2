//! Third-party validators for exposition bodies, shared by every test module that checks output:
//! Python `prometheus_client`'s strict OpenMetrics parser (through
//! `scripts/validate_openmetrics.py`) and Debian's `promtool check metrics` for text 0.0.4, plus
//! a way to read the samples of a body back through those same parsers.
//!
//! Test tiers: without a tool (a machine with only Rust) each check is skipped with one line
//! naming the tool and its package; with `HONCHO_EXPORTER_FULL_TESTS=1` (set by
//! `./scripts/test.sh`, which installs them) a missing tool fails the test
//! ([`crate::util::require_tool`], [`require_openmetrics_parser`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use honcho_exporter::exposition::Format;

/// How many lines of an offending body a failure message shows.
const BODY_LINES_SHOWN: usize = 40;

/// True when Python's reference OpenMetrics parser (`prometheus_client`) can run; otherwise
/// skips with one line (fails under `HONCHO_EXPORTER_FULL_TESTS=1`). Tests that read samples
/// back with [`parsed_samples`] start with it.
pub fn require_openmetrics_parser() -> bool {
    crate::util::require_python_module("prometheus_client", "PyPI package `prometheus_client`")
}

/// Panics with the parser's message unless `body` is a valid OpenMetrics 1.0.0 exposition.
/// Without the parser the check is skipped with one line ([`require_openmetrics_parser`]).
pub fn assert_valid_openmetrics(body: &[u8]) {
    if !require_openmetrics_parser() {
        return;
    }
    let output = run_validator_script(&[], body);
    if !output.status.success() {
        fail(
            "prometheus_client's OpenMetrics parser rejected the body",
            &output,
            body,
        );
    }
}

/// Panics with promtool's output unless `body` is a valid text 0.0.4 exposition without lint
/// problems. promtool exits 3 on lint problems (missing HELP, a counter without `_total`,
/// non-base units...); our own output must have none, so they fail too.
/// Without promtool (a Rust-only machine) the check is skipped with one line, unless
/// `HONCHO_EXPORTER_FULL_TESTS=1` ([`crate::util::require_tool`]).
pub fn assert_valid_text(body: &[u8]) {
    if !crate::util::require_tool("promtool", "Debian package `prometheus`") {
        return;
    }
    let output = run_with_stdin(Command::new("promtool").args(["check", "metrics"]), body)
        .unwrap_or_else(|error| panic!("cannot run promtool: {error}"));
    if !output.status.success() {
        fail("promtool check metrics rejected the body", &output, body);
    }
}

/// One sample as a reference parser read it back: the exposed sample name (with `_total` or
/// `_info`), its labels and its value. Comparable, so two bodies can be compared as sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParsedSample {
    /// The sample name as exposed, e.g. `requests_total`.
    pub name: String,
    /// Label names to unescaped values.
    pub labels: BTreeMap<String, String>,
    /// The value's bits, with every NaN made the same NaN and -0 made 0 (neither survives a
    /// render distinguishably), so equal values compare equal.
    pub value_bits: u64,
}

impl ParsedSample {
    /// A sample with a normalised value.
    pub fn new(name: impl Into<String>, labels: BTreeMap<String, String>, value: f64) -> Self {
        let value = if value.is_nan() {
            f64::NAN
        } else if value == 0.0 {
            0.0
        } else {
            value
        };
        Self {
            name: name.into(),
            labels,
            value_bits: value.to_bits(),
        }
    }
}

/// The samples of a `format` body, read by prometheus_client's parser for that format (the
/// strict one for OpenMetrics, the text one otherwise). Panics when the body does not parse.
/// The caller checks [`require_openmetrics_parser`] first (and skips without it).
pub fn parsed_samples(body: &[u8], format: Format) -> BTreeSet<ParsedSample> {
    let mut arguments = vec!["--dump-samples"];
    if format == Format::Text {
        arguments.extend(["--format", "text"]);
    }
    let output = run_validator_script(&arguments, body);
    if !output.status.success() {
        fail(
            &format!("prometheus_client could not parse the {format:?} body"),
            &output,
            body,
        );
    }
    let stdout = String::from_utf8(output.stdout).expect("the validator writes JSON, i.e. UTF-8");
    stdout
        .lines()
        .map(|line| {
            let sample: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("validator printed non-JSON {line:?}: {error}"));
            let name = sample["name"]
                .as_str()
                .expect("sample has a name")
                .to_owned();
            let labels = sample["labels"]
                .as_object()
                .expect("sample has labels")
                .iter()
                .map(|(label, value)| {
                    let value = value.as_str().expect("label values are strings");
                    (label.clone(), value.to_owned())
                })
                .collect();
            let value_text = sample["value"].as_str().expect("value is a repr string");
            let value: f64 = value_text
                .parse()
                .unwrap_or_else(|error| panic!("unparsable value {value_text:?}: {error}"));
            ParsedSample::new(name, labels, value)
        })
        .collect()
}

fn run_validator_script(arguments: &[&str], body: &[u8]) -> Output {
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "scripts",
        "validate_openmetrics.py",
    ]
    .iter()
    .collect();
    run_with_stdin(Command::new("python3").arg(&script).args(arguments), body)
        .unwrap_or_else(|error| panic!("cannot run python3 {}: {error}", script.display()))
}

/// Runs `command` with `body` on stdin, collecting stdout and stderr. Writes stdin from another
/// thread so a tool that answers before reading everything cannot deadlock us on a full pipe.
fn run_with_stdin(command: &mut Command, body: &[u8]) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        // A tool that exits early closes the pipe; its exit status tells the real story.
        let _ignored_broken_pipe = stdin.write_all(&body);
    });
    let output = child.wait_with_output()?;
    writer
        .join()
        .expect("the stdin writer thread does not panic");
    Ok(output)
}

fn fail(what: &str, output: &Output, body: &[u8]) -> ! {
    let body = String::from_utf8_lossy(body);
    let line_count = body.lines().count();
    let shown: Vec<&str> = body.lines().take(BODY_LINES_SHOWN).collect();
    panic!(
        "{what} ({status}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- body: first {shown_count} of {line_count} lines ---\n{lines}",
        status = output.status,
        stdout = String::from_utf8_lossy(&output.stdout).trim_end(),
        stderr = String::from_utf8_lossy(&output.stderr).trim_end(),
        shown_count = shown.len(),
        lines = shown.join("\n"),
    );
}

//! Exposition: renders [`MetricFamily`] lists as OpenMetrics 1.0.0 or Prometheus text 0.0.4,
//! negotiates the format from `Accept`, and gzips. Pure: no I/O, no knowledge of Honcho.
//!
//! # Why our own renderer
//!
//! Two things `prometheus-client` (client_rust) cannot do for us. It does not escape label
//! values (client_rust issue #151, open): a workspace, session or peer name holding `"`, `\` or
//! a newline — names Honcho's users choose — would corrupt the whole exposition. And it encodes
//! OpenMetrics only, with no text 0.0.4, which Debian's Prometheus 2.42 and `promtool` speak.
//! (Order and HELP are not the problem: a `Collector` controls its own order and HELP is
//! written verbatim.) The two formats differ only in a few lines per family, so one small
//! renderer over [`MetricFamily`] serves both, escaping every label value, deterministically,
//! in the order the families were built.
//!
//! # What it must not do
//!
//! Allocate per sample (a poll renders up to 100,000 samples; everything is written straight into
//! the caller's buffer), reorder anything, or decide metric names (that is [`crate::families`]).

use std::io::Write as _;

pub mod deflate;

use crate::metric::{MetricFamily, MetricType, Sample};

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0; charset=utf-8`
    OpenMetrics,
    /// `text/plain; version=0.0.4; charset=utf-8`
    Text,
}

impl Format {
    /// The exact `Content-Type` header for a body in this format. Prometheus fails the scrape
    /// when the header does not match the body, so the server must always send this one.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Renders `families` in `format`, appending to `out`. Does not write OpenMetrics' `# EOF`
/// (see [`finish`]), so a body can be assembled from several renders.
pub fn render(families: &[MetricFamily], format: Format, out: &mut Vec<u8>) {
    for family in families {
        render_family(family, format, out);
    }
}

/// Ends a body: `# EOF\n` for OpenMetrics, nothing for text.
pub fn finish(format: Format, out: &mut Vec<u8>) {
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
}

/// The suffix samples of a family of this type carry after the family name.
fn sample_suffix(kind: MetricType) -> &'static str {
    match kind {
        MetricType::Gauge => "",
        MetricType::Counter => "_total",
        MetricType::Info => "_info",
    }
}

fn render_family(family: &MetricFamily, format: Format, out: &mut Vec<u8>) {
    render_header(family, format, out);
    render_samples(family, out);
}

/// Appends a family's metadata lines (`# HELP`, `# TYPE`, OpenMetrics' `# UNIT`) in `format`:
/// the only part of a family that differs between the two formats.
pub fn render_header(family: &MetricFamily, format: Format, out: &mut Vec<u8>) {
    debug_assert!(
        is_valid_metric_name(family.name),
        "invalid metric family name {:?}",
        family.name
    );
    debug_assert!(
        family.unit.is_none_or(|unit| family
            .name
            .strip_suffix(unit)
            .is_some_and(|rest| rest.ends_with('_'))),
        "family {:?} has unit {:?} but its name does not end with _<unit>",
        family.name,
        family.unit
    );
    debug_assert!(
        !(family.kind == MetricType::Info && family.unit.is_some()),
        "info family {:?} cannot have a unit",
        family.name
    );
    let suffix = sample_suffix(family.kind);
    match format {
        Format::OpenMetrics => {
            let type_name = match family.kind {
                MetricType::Gauge => "gauge",
                MetricType::Counter => "counter",
                MetricType::Info => "info",
            };
            write_metadata_line(out, "HELP", family.name, "");
            write_escaped(out, family.help, EscapeSet::OpenMetricsHelp);
            out.push(b'\n');
            write_metadata_line(out, "TYPE", family.name, "");
            out.extend_from_slice(type_name.as_bytes());
            out.push(b'\n');
            if let Some(unit) = family.unit {
                write_metadata_line(out, "UNIT", family.name, "");
                out.extend_from_slice(unit.as_bytes());
                out.push(b'\n');
            }
        }
        Format::Text => {
            // Text 0.0.4 has no info type and names the metric as exposed (with its suffix).
            let type_name = match family.kind {
                MetricType::Gauge | MetricType::Info => "gauge",
                MetricType::Counter => "counter",
            };
            write_metadata_line(out, "HELP", family.name, suffix);
            write_escaped(out, family.help, EscapeSet::TextHelp);
            out.push(b'\n');
            write_metadata_line(out, "TYPE", family.name, suffix);
            out.extend_from_slice(type_name.as_bytes());
            out.push(b'\n');
        }
    }
}

/// Appends a family's sample lines. They are the same bytes in both formats, so one rendering
/// serves both.
pub fn render_samples(family: &MetricFamily, out: &mut Vec<u8>) {
    for sample in &family.samples {
        render_sample_prefix(family, sample, out);
        let value = if family.kind == MetricType::Info {
            1.0
        } else {
            sample.value
        };
        render_sample_value(value, out);
    }
}

/// Appends the part of a sample line before its value: name, suffix, labels and the space.
pub fn render_sample_prefix(family: &MetricFamily, sample: &Sample, out: &mut Vec<u8>) {
    out.extend_from_slice(family.name.as_bytes());
    out.extend_from_slice(sample_suffix(family.kind).as_bytes());
    if !sample.labels.is_empty() {
        out.push(b'{');
        for (index, (label_name, label_value)) in sample.labels.iter().enumerate() {
            debug_assert!(
                is_valid_label_name(label_name),
                "invalid label name {label_name:?} in family {:?}",
                family.name
            );
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(label_name.as_bytes());
            out.extend_from_slice(b"=\"");
            write_escaped(out, label_value, EscapeSet::LabelValue);
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
}

/// Appends `millis / 1000` as a sample value and the line's end, as [`render_sample_value`]
/// would, without float formatting when `millis` is a whole number of milliseconds in
/// `0..MAX_PLAIN_MILLIS` (a scrape writes every age this way): there an f64's spacing is under
/// half a millisecond, so the shortest decimal that round-trips `millis / 1000` is its three
/// decimals themselves. Anything else goes through [`render_sample_value`].
pub fn render_millis_value(millis: f64, out: &mut Vec<u8>) {
    if !(millis.fract() == 0.0 && (0.0..MAX_PLAIN_MILLIS as f64).contains(&millis)) {
        render_sample_value(millis / 1000.0, out);
        return;
    }
    // Integral and below 10^15 < 2^53: the cast is exact.
    let millis = millis as u64;
    let mut buffer = itoa::Buffer::new();
    out.extend_from_slice(buffer.format(millis / 1000).as_bytes());
    let mut fraction = millis % 1000;
    if fraction != 0 {
        let mut digits = 3;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        out.push(b'.');
        let written = buffer.format(fraction);
        out.extend(std::iter::repeat_n(b'0', digits - written.len()));
        out.extend_from_slice(written.as_bytes());
    }
    out.push(b'\n');
}

/// Milliseconds (10^15: ~31,700 years) from which [`render_millis_value`] formats the float.
pub const MAX_PLAIN_MILLIS: u64 = 1_000_000_000_000_000;

/// Appends a sample value and the line's end: the rest of a line begun by
/// [`render_sample_prefix`].
pub fn render_sample_value(value: f64, out: &mut Vec<u8>) {
    write_value(out, value);
    out.push(b'\n');
}

/// Writes `# <keyword> <name><suffix> ` (the caller writes the rest of the line).
fn write_metadata_line(out: &mut Vec<u8>, keyword: &str, name: &str, suffix: &str) {
    out.extend_from_slice(b"# ");
    out.extend_from_slice(keyword.as_bytes());
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    out.push(b' ');
}

/// Which characters a piece of text must escape; each spec differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscapeSet {
    /// Label values in both formats: `\\`, `\"`, `\n`.
    LabelValue,
    /// HELP text in text 0.0.4: `\\` and `\n` only (the Go parser rejects `\"` there).
    TextHelp,
    /// HELP text in OpenMetrics: `\\`, `\n` and `\"`.
    OpenMetricsHelp,
}

/// Appends `text` escaped per `set`, copying runs without special characters in one go.
fn write_escaped(out: &mut Vec<u8>, text: &str, set: EscapeSet) {
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if set != EscapeSet::TextHelp => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run_start..index]);
        out.extend_from_slice(escaped);
        run_start = index + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// Integral values below this magnitude are exact in an f64 and written without a decimal point.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53

/// Appends a sample value: integers without a decimal point, other finite values as the shortest
/// string that parses back to the same f64, and `NaN`, `+Inf`, `-Inf` as both formats spell them.
fn write_value(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if value.fract() == 0.0 && value.abs() < MAX_EXACT_INTEGER {
        // The cast is exact: the value is integral and within ±2^53.
        let integer = value as i64;
        out.extend_from_slice(itoa::Buffer::new().format(integer).as_bytes());
    } else {
        // Rust's float formatting is shortest round-trip; the exponent form keeps very large or
        // very small magnitudes short (both parsers accept `1.5e-7` and `1e300`).
        let magnitude = value.abs();
        let written = if (1e-4..1e16).contains(&magnitude) {
            write!(out, "{value}")
        } else {
            write!(out, "{value:e}")
        };
        written.expect("writing into a Vec<u8> cannot fail");
    }
}

fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_' || first == b':')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':')
}

fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// One entry of an `Accept` or `Accept-Encoding` header: the value before the first `;`
/// (trimmed, as written), its quality and its other parameters (raw, for the caller to look up).
struct HeaderEntry<'a> {
    /// The media range or content coding, e.g. `text/plain` or `gzip`.
    value: &'a str,
    /// The `q` parameter; 1 when absent, 0 when unparsable (as client_golang's goautoneg does).
    quality: f64,
    /// Everything after the value, for parameter lookups.
    params: &'a str,
}

impl<'a> HeaderEntry<'a> {
    fn parse(entry: &'a str) -> Self {
        let (value, params) = entry.split_once(';').unwrap_or((entry, ""));
        let quality = match header_param(params, "q") {
            None => 1.0,
            Some(q) => q
                .parse::<f64>()
                .ok()
                .filter(|q| q.is_finite())
                .unwrap_or(0.0),
        };
        Self {
            value: value.trim(),
            quality,
            params,
        }
    }

    fn param(&self, name: &str) -> Option<&'a str> {
        header_param(self.params, name)
    }
}

/// The value of parameter `name` in `;`-separated `params` (case-insensitive name; surrounding
/// whitespace and double quotes removed).
fn header_param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Picks the format for a request's `Accept` header, the way Prometheus' client_golang does:
/// entries are ranked by q-value (ties keep header order) and the first one we can serve wins.
/// `application/openmetrics-text` with `version=1.0.0` or no version is OpenMetrics; other
/// OpenMetrics versions (e.g. `0.0.1`) are skipped, since we do not produce them. `text/plain`
/// with `version=0.0.4` or no version is text. Wildcards and anything else are skipped, and when
/// nothing matches (absent header, `*/*`, garbage) the answer is text. Unlike client_golang,
/// `q=0` ("not acceptable") entries are never chosen.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut best: Option<(f64, Format)> = None;
    for entry in accept.split(',').map(HeaderEntry::parse) {
        if entry.quality <= 0.0 || best.is_some_and(|(quality, _)| entry.quality <= quality) {
            continue;
        }
        let version = entry.param("version");
        let format = if entry
            .value
            .eq_ignore_ascii_case("application/openmetrics-text")
            && version.is_none_or(|version| version == "1.0.0")
        {
            Format::OpenMetrics
        } else if entry.value.eq_ignore_ascii_case("text/plain")
            && version.is_none_or(|version| version == "0.0.4")
        {
            Format::Text
        } else {
            continue;
        };
        best = Some((entry.quality, format));
    }
    best.map_or(Format::Text, |(_, format)| format)
}

/// Whether an `Accept-Encoding` header allows gzip: a `gzip` (or its alias `x-gzip`) entry with
/// q > 0, or failing that a `*` entry with q > 0. `gzip;q=0` means no, whatever `*` says.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(accept_encoding) = accept_encoding else {
        return false;
    };
    let mut gzip_quality = None;
    let mut wildcard_quality = None;
    for entry in accept_encoding.split(',').map(HeaderEntry::parse) {
        if entry.value.eq_ignore_ascii_case("gzip") || entry.value.eq_ignore_ascii_case("x-gzip") {
            gzip_quality = Some(entry.quality);
        } else if entry.value == "*" {
            wildcard_quality = Some(entry.quality);
        }
    }
    gzip_quality.or(wildcard_quality).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_values_are_written_as_the_float_formatting_writes_their_seconds() {
        let mut cases: Vec<u64> = (0..20_000).collect();
        cases.extend([
            999_999_999,
            1_795_318_100_123,
            1_795_318_100_100,
            MAX_PLAIN_MILLIS - 1,
            MAX_PLAIN_MILLIS,
            (1 << 53) - 1,
            u64::MAX / 4,
        ]);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            // xorshift: deterministic spread over ages up to ~10^13 ms.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            cases.push(state % 10_000_000_000_000);
        }
        for millis in cases {
            let (mut fast, mut float) = (Vec::new(), Vec::new());
            render_millis_value(millis as f64, &mut fast);
            render_sample_value(millis as f64 / 1000.0, &mut float);
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&float),
                "{millis} ms"
            );
        }
    }

    fn rendered(families: &[MetricFamily], format: Format) -> String {
        let mut out = Vec::new();
        render(families, format, &mut out);
        finish(format, &mut out);
        String::from_utf8(out).expect("renderer writes UTF-8")
    }

    fn gauge_with_label(value: &str) -> MetricFamily {
        let mut family = MetricFamily::new("g", "h", MetricType::Gauge);
        family.push(vec![("l", value.to_owned())], 1.0);
        family
    }

    fn value_text(value: f64) -> String {
        let mut out = Vec::new();
        write_value(&mut out, value);
        String::from_utf8(out).expect("values are ASCII")
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline_in_both_formats() {
        let family = gauge_with_label("a\\b\"c\nd é");
        for format in [Format::OpenMetrics, Format::Text] {
            let body = rendered(std::slice::from_ref(&family), format);
            assert!(
                body.contains("g{l=\"a\\\\b\\\"c\\nd é\"} 1\n"),
                "{format:?}: {body}"
            );
        }
    }

    #[test]
    fn help_escapes_quotes_in_openmetrics_only() {
        let family = MetricFamily::new("g", "say \"hi\"\\now\nthen", MetricType::Gauge);
        let open_metrics = rendered(std::slice::from_ref(&family), Format::OpenMetrics);
        assert!(open_metrics.starts_with("# HELP g say \\\"hi\\\"\\\\now\\nthen\n"));
        let text = rendered(std::slice::from_ref(&family), Format::Text);
        assert!(text.starts_with("# HELP g say \"hi\"\\\\now\\nthen\n"));
    }

    #[test]
    fn counter_in_openmetrics_names_the_family_without_total() {
        let mut family = MetricFamily::new("requests", "Requests", MetricType::Counter);
        family.push(vec![("code", "200".into())], 3.0);
        assert_eq!(
            rendered(&[family], Format::OpenMetrics),
            "# HELP requests Requests\n# TYPE requests counter\nrequests_total{code=\"200\"} 3\n# EOF\n"
        );
    }

    #[test]
    fn counter_in_text_names_the_metric_with_total() {
        let mut family = MetricFamily::new("requests", "Requests", MetricType::Counter);
        family.push(vec![], 3.0);
        assert_eq!(
            rendered(&[family], Format::Text),
            "# HELP requests_total Requests\n# TYPE requests_total counter\nrequests_total 3\n"
        );
    }

    #[test]
    fn info_is_an_info_family_in_openmetrics_and_an_info_gauge_in_text() {
        let mut family = MetricFamily::new("build", "Build", MetricType::Info);
        family.push(vec![("version", "1.2".into())], 1.0);
        assert_eq!(
            rendered(std::slice::from_ref(&family), Format::OpenMetrics),
            "# HELP build Build\n# TYPE build info\nbuild_info{version=\"1.2\"} 1\n# EOF\n"
        );
        assert_eq!(
            rendered(&[family], Format::Text),
            "# HELP build_info Build\n# TYPE build_info gauge\nbuild_info{version=\"1.2\"} 1\n"
        );
    }

    #[test]
    fn unit_is_a_unit_line_in_openmetrics_and_absent_in_text() {
        let mut family =
            MetricFamily::new("age_seconds", "Age", MetricType::Gauge).with_unit("seconds");
        family.push(vec![], 1.5);
        assert_eq!(
            rendered(std::slice::from_ref(&family), Format::OpenMetrics),
            "# HELP age_seconds Age\n# TYPE age_seconds gauge\n# UNIT age_seconds seconds\nage_seconds 1.5\n# EOF\n"
        );
        assert_eq!(
            rendered(&[family], Format::Text),
            "# HELP age_seconds Age\n# TYPE age_seconds gauge\nage_seconds 1.5\n"
        );
    }

    #[test]
    fn family_without_samples_keeps_its_metadata() {
        let family = MetricFamily::new("empty", "Nothing yet", MetricType::Gauge);
        assert_eq!(
            rendered(std::slice::from_ref(&family), Format::OpenMetrics),
            "# HELP empty Nothing yet\n# TYPE empty gauge\n# EOF\n"
        );
        assert_eq!(
            rendered(&[family], Format::Text),
            "# HELP empty Nothing yet\n# TYPE empty gauge\n"
        );
    }

    #[test]
    fn samples_keep_build_order_and_labels_are_comma_separated() {
        let mut family = MetricFamily::new("g", "h", MetricType::Gauge);
        family.push(vec![("b", "2".into()), ("a", "1".into())], 1.0);
        family.push(vec![("b", "1".into()), ("a", "2".into())], 2.0);
        let body = rendered(&[family], Format::Text);
        assert!(
            body.ends_with("g{b=\"2\",a=\"1\"} 1\ng{b=\"1\",a=\"2\"} 2\n"),
            "{body}"
        );
    }

    #[test]
    fn finish_writes_eof_for_openmetrics_only() {
        let mut out = Vec::new();
        finish(Format::OpenMetrics, &mut out);
        assert_eq!(out, b"# EOF\n");
        out.clear();
        finish(Format::Text, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn values_are_integers_shortest_floats_or_special_names() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (42.0, "42"),
            (-7.0, "-7"),
            (9_007_199_254_740_991.0, "9007199254740991"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-0.25, "-0.25"),
            (1e-7, "1e-7"),
            (1.5e300, "1.5e300"),
            (1e16, "1e16"),
            (18_446_744_073_709_551_615.0, "1.8446744073709552e19"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for &(value, expected) in cases {
            assert_eq!(value_text(value), expected, "value {value:?}");
        }
    }

    #[test]
    fn finite_values_round_trip_exactly() {
        for value in [
            0.1 + 0.2,
            1.0 / 3.0,
            123_456.789e-20,
            f64::MAX,
            f64::MIN_POSITIVE,
            -9_007_199_254_740_993.0,
            5e-324,
        ] {
            let text = value_text(value);
            assert_eq!(text.parse::<f64>().ok(), Some(value), "{value:?} -> {text}");
        }
    }

    #[test]
    fn content_types_are_exact() {
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Format::Text.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    fn assert_negotiates(cases: &[(Option<&str>, Format)]) {
        for &(accept, expected) in cases {
            assert_eq!(negotiate(accept), expected, "Accept: {accept:?}");
        }
    }

    #[test]
    fn negotiation_defaults_to_text_when_nothing_asks_for_openmetrics() {
        assert_negotiates(&[
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("garbage;;;,,=q"), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some("text/plain;version=0.0.4"), Format::Text),
            (Some("text/plain;version=0.0.4;q=1,*/*;q=0.1"), Format::Text),
        ]);
    }

    #[test]
    fn negotiation_serves_openmetrics_for_version_1_0_0_or_no_version() {
        assert_negotiates(&[
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("application/openmetrics-text;version=1.0.0"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text; version=\"1.0.0\""),
                Format::OpenMetrics,
            ),
            (
                Some("Application/OpenMetrics-Text; Version=1.0.0"),
                Format::OpenMetrics,
            ),
        ]);
    }

    #[test]
    fn negotiation_skips_openmetrics_versions_we_do_not_produce() {
        assert_negotiates(&[
            (
                Some("application/openmetrics-text;version=0.0.1"),
                Format::Text,
            ),
            (
                Some("application/openmetrics-text;version=2.0.0"),
                Format::Text,
            ),
            (
                Some(
                    "application/openmetrics-text;version=0.0.1,application/openmetrics-text;version=1.0.0;q=0.5",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;version=9.9,application/openmetrics-text;q=0.2"),
                Format::OpenMetrics,
            ),
        ]);
    }

    #[test]
    fn negotiation_picks_openmetrics_for_prometheus_2_42() {
        assert_negotiates(&[(
            Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
            Format::OpenMetrics,
        )]);
    }

    #[test]
    fn negotiation_ranks_by_q_value_then_header_order() {
        assert_negotiates(&[
            (
                Some("text/plain;q=0.5,application/openmetrics-text;q=0.9"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.4,text/plain;q=0.5"),
                Format::Text,
            ),
            (
                Some("text/plain,application/openmetrics-text"),
                Format::Text,
            ),
            (
                Some("application/openmetrics-text,text/plain"),
                Format::OpenMetrics,
            ),
            // Wildcards match nothing in particular; a lower-q exact entry still wins.
            (
                Some("*/*;q=0.9,application/openmetrics-text;q=0.1"),
                Format::OpenMetrics,
            ),
        ]);
    }

    #[test]
    fn negotiation_never_picks_q_zero_or_unparsable_q() {
        assert_negotiates(&[
            (Some("application/openmetrics-text;q=0"), Format::Text),
            (
                Some("application/openmetrics-text;q=0.0, text/plain;q=0.1"),
                Format::Text,
            ),
            (
                Some("application/openmetrics-text;q=nonsense"),
                Format::Text,
            ),
        ]);
    }

    #[test]
    fn gzip_acceptance_respects_q_values() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("identity"), false),
            (Some("gzip"), true),
            (Some("GZIP"), true),
            (Some("x-gzip"), true),
            (Some("deflate, gzip;q=1.0, *;q=0.5"), true),
            (Some("br;q=1.0, gzip;q=0.8"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip; q=0.0"), false),
            (Some("*"), true),
            (Some("*;q=0"), false),
            (Some("gzip;q=0, *"), false),
            (Some("br, deflate"), false),
        ];
        for &(header, expected) in cases {
            assert_eq!(
                accepts_gzip(header),
                expected,
                "Accept-Encoding: {header:?}"
            );
        }
    }
}

//! The renderers against third-party parsers: representative and arbitrary families rendered in
//! both formats must pass the strict OpenMetrics parser and `promtool check metrics`, and both
//! formats must carry exactly the samples that were rendered.

use std::collections::BTreeSet;

use honcho_exporter::exposition::{Format, finish, render};
use honcho_exporter::metric::{MetricFamily, MetricType};
use honcho_exporter::process::process_families;
use proptest::prelude::*;

use crate::util::{panic_message, require_tool};
use crate::validators::{
    ParsedSample, assert_valid_openmetrics, assert_valid_text, parsed_samples,
    require_openmetrics_parser,
};

fn body(families: &[MetricFamily], format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    render(families, format, &mut out);
    finish(format, &mut out);
    out
}

/// The samples `families` should expose, as the parsers report them.
fn expected_samples(families: &[MetricFamily]) -> BTreeSet<ParsedSample> {
    families
        .iter()
        .flat_map(|family| {
            let (suffix, fixed_value) = match family.kind {
                MetricType::Gauge => ("", None),
                MetricType::Counter => ("_total", None),
                MetricType::Info => ("_info", Some(1.0)),
            };
            family.samples.iter().map(move |sample| {
                let labels = sample
                    .labels
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), value.clone()))
                    .collect();
                ParsedSample::new(
                    format!("{}{suffix}", family.name),
                    labels,
                    fixed_value.unwrap_or(sample.value),
                )
            })
        })
        .collect()
}

fn labels(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect()
}

/// Every type, units, empty families, special values and label values that need escaping.
fn representative_families() -> Vec<MetricFamily> {
    let long_value: String = "0123456789abcdef\"\\\n".repeat(540);
    assert!(long_value.len() > 10_000);

    let mut build = MetricFamily::new(
        "exporter_build",
        "Build \"info\" \\ of the exporter",
        MetricType::Info,
    );
    build.push(
        labels(&[("version", "1.2.3"), ("revision", "abc\ndef")]),
        1.0,
    );

    let mut requests = MetricFamily::new(
        "exporter_requests",
        "Requests to Honcho\nby outcome",
        MetricType::Counter,
    );
    requests.push(labels(&[("outcome", "ok")]), 12.0);
    requests.push(labels(&[("outcome", "timeout")]), 0.0);
    requests.push(labels(&[("outcome", "huge")]), 1e300);
    requests.push(labels(&[("outcome", "forever")]), f64::INFINITY);

    let mut duration = MetricFamily::new(
        "exporter_poll_duration_seconds",
        "Duration of the last poll",
        MetricType::Counter,
    )
    .with_unit("seconds");
    duration.push(Vec::new(), 0.125);

    let mut age = MetricFamily::new(
        "queue_oldest_age_seconds",
        "Age of the oldest item",
        MetricType::Gauge,
    )
    .with_unit("seconds");
    age.push(labels(&[("workspace", "quote\"d")]), 1.5);
    age.push(labels(&[("workspace", "back\\slash")]), -2.25);
    age.push(labels(&[("workspace", "new\nline")]), f64::NAN);
    age.push(
        labels(&[("workspace", "ünïcødé ✓ 日本語 🦀")]),
        f64::INFINITY,
    );
    age.push(labels(&[("workspace", "")]), f64::NEG_INFINITY);
    age.push(labels(&[("workspace", &long_value)]), 1e-9);
    age.push(
        labels(&[("workspace", "\\\"\\n\"")]),
        9_007_199_254_740_993.0,
    );

    let mut items = MetricFamily::new("queue_items", "Items in the queue", MetricType::Gauge);
    items.push(labels(&[("workspace", "a"), ("state", "ready")]), 3.0);
    items.push(labels(&[("workspace", "a"), ("state", "stalled")]), 0.0);
    items.push(
        labels(&[("workspace", "b"), ("state", "ready")]),
        1_000_000.0,
    );

    vec![
        build,
        requests,
        MetricFamily::new(
            "exporter_errors",
            "Errors so far, none yet",
            MetricType::Counter,
        ),
        duration,
        age,
        MetricFamily::new("queue_empty", "A gauge with no samples", MetricType::Gauge),
        items,
        MetricFamily::new(
            "exporter_nothing",
            "An info family with no samples",
            MetricType::Info,
        ),
    ]
}

#[test]
fn representative_families_pass_the_strict_openmetrics_parser() {
    assert_valid_openmetrics(&body(&representative_families(), Format::OpenMetrics));
}

#[test]
fn representative_families_pass_promtool_without_lint_problems() {
    assert_valid_text(&body(&representative_families(), Format::Text));
}

#[test]
fn both_formats_carry_exactly_the_rendered_samples() {
    if !require_openmetrics_parser() {
        return;
    }
    let families = representative_families();
    let expected = expected_samples(&families);
    assert_eq!(
        parsed_samples(&body(&families, Format::OpenMetrics), Format::OpenMetrics),
        expected
    );
    assert_eq!(
        parsed_samples(&body(&families, Format::Text), Format::Text),
        expected
    );
}

#[test]
fn process_families_pass_both_validators() {
    let families = process_families();
    assert!(
        !families.is_empty(),
        "process metrics are readable on Linux"
    );
    assert_valid_openmetrics(&body(&families, Format::OpenMetrics));
    assert_valid_text(&body(&families, Format::Text));
}

#[test]
fn a_body_assembled_from_several_renders_is_valid() {
    let families = representative_families();
    let (first, rest) = families.split_at(3);
    for format in [Format::OpenMetrics, Format::Text] {
        let mut out = Vec::new();
        render(first, format, &mut out);
        render(rest, format, &mut out);
        render(&process_families(), format, &mut out);
        finish(format, &mut out);
        match format {
            Format::OpenMetrics => assert_valid_openmetrics(&out),
            Format::Text => assert_valid_text(&out),
        }
    }
}

// The validators must be able to fail, or every test above proves nothing.

// The validators must be able to fail: each rejects a body it should. They skip (one line)
// without their tool, so they catch the panic rather than use `#[should_panic]`.

#[test]
fn openmetrics_validator_rejects_a_body_without_eof() {
    if !require_openmetrics_parser() {
        return;
    }
    let mut out = Vec::new();
    render(&representative_families(), Format::OpenMetrics, &mut out);
    let message = panic_message(|| assert_valid_openmetrics(&out));
    assert!(message.contains("Missing # EOF"), "{message}");
}

#[test]
fn openmetrics_validator_rejects_text_format() {
    if !require_openmetrics_parser() {
        return;
    }
    let text = body(&representative_families(), Format::Text);
    let message = panic_message(|| assert_valid_openmetrics(&text));
    assert!(message.contains("OpenMetrics parser rejected"), "{message}");
}

#[test]
fn text_validator_rejects_openmetrics_info_type() {
    if !require_tool("promtool", "Debian package `prometheus`") {
        return;
    }
    let open_metrics = body(&representative_families(), Format::OpenMetrics);
    let message = panic_message(|| assert_valid_text(&open_metrics));
    assert!(
        message.contains("promtool check metrics rejected"),
        "{message}"
    );
}

#[test]
fn text_validator_fails_on_lint_problems() {
    if !require_tool("promtool", "Debian package `prometheus`") {
        return;
    }
    let message =
        panic_message(|| assert_valid_text(b"# TYPE undocumented gauge\nundocumented 1\n"));
    assert!(message.contains("no help text"), "{message}");
}

/// Label values with every kind of character, biased towards the ones that need escaping.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{0,40}",
        "[\\\\\"\n{}=, a-zé🦀]{0,16}",
        Just(String::new()),
    ]
}

/// Gauge values: anything, including NaN and both infinities.
fn gauge_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        -1e6..1e6f64,
        (-(1i64 << 53)..(1i64 << 53)).prop_map(|integer| integer as f64),
    ]
}

/// Counter values: what OpenMetrics allows a counter (non-negative, not NaN, +Inf included).
fn counter_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..1e20f64,
        (0u64..(1u64 << 60)).prop_map(|integer| integer as f64),
        Just(0.0),
        Just(f64::INFINITY),
        Just(f64::MAX),
    ]
}

proptest! {
    // Each case renders a few hundred samples into one body and runs each parser once on it:
    // spawning a parser per sample would take minutes.
    #![proptest_config(ProptestConfig {
        cases: 2,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_label_values_and_values_survive_both_formats(
        rows in prop::collection::vec((label_value(), gauge_value(), counter_value()), 150..=250)
    ) {
        let mut gauges = MetricFamily::new(
            "arbitrary_level",
            "Arbitrary \"level\" \\ values",
            MetricType::Gauge,
        );
        let mut counters =
            MetricFamily::new("arbitrary", "Arbitrary counter values", MetricType::Counter);
        let mut infos =
            MetricFamily::new("arbitrary_details", "Arbitrary info labels", MetricType::Info);
        for (index, (label, gauge, counter)) in rows.iter().enumerate() {
            // The index keeps every label set unique, as a family's series must be.
            let labels = vec![("index", index.to_string()), ("value", label.clone())];
            gauges.push(labels.clone(), *gauge);
            counters.push(labels.clone(), *counter);
            infos.push(labels, 1.0);
        }
        let families = [gauges, counters, infos];
        let expected = expected_samples(&families);

        if !require_openmetrics_parser() {
            return Ok(());
        }
        // parsed_samples runs the strict OpenMetrics parser, so this also validates the body.
        let open_metrics =
            parsed_samples(&body(&families, Format::OpenMetrics), Format::OpenMetrics);
        prop_assert_eq!(&open_metrics, &expected);

        let text = body(&families, Format::Text);
        assert_valid_text(&text);
        prop_assert_eq!(&parsed_samples(&text, Format::Text), &expected);
    }
}

#[test]
fn expected_samples_distinguish_values_and_labels() {
    // Guards the comparison itself: different values or labels must not compare equal.
    let mut first = MetricFamily::new("g", "h", MetricType::Gauge);
    first.push(labels(&[("l", "a")]), 1.0);
    let mut other_value = first.clone();
    other_value.samples[0].value = 2.0;
    let mut other_label = first.clone();
    other_label.samples[0].labels[0].1 = "b".into();
    let expected = expected_samples(std::slice::from_ref(&first));
    assert_ne!(expected, expected_samples(&[other_value]));
    assert_ne!(expected, expected_samples(&[other_label]));
}

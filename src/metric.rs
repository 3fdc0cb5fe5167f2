//! The format-neutral metric family model.
//!
//! [`crate::families`] builds these from a snapshot; [`crate::exposition`] renders them. Nothing
//! here knows Honcho or any wire format. Families and their samples are kept in the order they are
//! built, so output is deterministic when the builder iterates sorted maps.

/// The Prometheus/OpenMetrics type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A value that can go up and down.
    Gauge,
    /// A monotonically increasing count. The family name has no `_total`; samples get it.
    Counter,
    /// OpenMetrics `info`: the family name has no `_info`; samples get it, value always 1.
    /// Rendered as a gauge named `<name>_info` in text 0.0.4.
    Info,
}

/// One metric family: a name, its help text, its type and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// The family name, without the `_total` (counter) or `_info` (info) suffix.
    pub name: &'static str,
    /// Help text, one line, no trailing period (the OpenMetrics renderer writes it as given).
    pub help: &'static str,
    /// The family's type.
    pub kind: MetricType,
    /// The OpenMetrics unit (e.g. `seconds`); when set, `name` must end with `_<unit>`.
    pub unit: Option<&'static str>,
    /// The samples, in output order.
    pub samples: Vec<Sample>,
}

/// One sample of a family: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values, in output order. Values are raw (unescaped) strings.
    pub labels: Vec<(&'static str, String)>,
    /// The value; counters and gauges alike.
    pub value: f64,
}

impl MetricFamily {
    /// A family with no samples yet.
    pub fn new(name: &'static str, help: &'static str, kind: MetricType) -> Self {
        Self {
            name,
            help,
            kind,
            unit: None,
            samples: Vec::new(),
        }
    }

    /// Sets the OpenMetrics unit.
    pub fn with_unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Appends one sample.
    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push(Sample { labels, value });
    }
}

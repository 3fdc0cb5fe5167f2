//! Exposition: renders [`MetricFamily`] lists as OpenMetrics 1.0.0 or Prometheus text 0.0.4,
//! negotiates the format from `Accept`, and gzips. Pure: no I/O, no knowledge of Honcho.

use crate::metric::MetricFamily;

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0; charset=utf-8`
    OpenMetrics,
    /// `text/plain; version=0.0.4; charset=utf-8`
    Text,
}

/// Renders `families` in `format`, appending to `out`. Does not write OpenMetrics' `# EOF`
/// (see [`finish`]), so a body can be assembled from several renders.
pub fn render(_families: &[MetricFamily], _format: Format, _out: &mut Vec<u8>) {
    todo!("exposition helper")
}

/// Ends a body: `# EOF\n` for OpenMetrics, nothing for text.
pub fn finish(_format: Format, _out: &mut Vec<u8>) {
    todo!("exposition helper")
}

/// Gzips `body` (placeholder until the exposition module lands).
pub fn gzip(_body: &[u8]) -> Vec<u8> {
    todo!("exposition helper")
}

/// Whether `Accept-Encoding` allows gzip (placeholder until the exposition module lands).
pub fn accepts_gzip(_accept_encoding: Option<&str>) -> bool {
    todo!("exposition helper")
}

/// The negotiated format (placeholder until the exposition module lands).
pub fn negotiate(_accept: Option<&str>) -> Format {
    todo!("exposition helper")
}

impl Format {
    /// The exact Content-Type (placeholder until the exposition module lands).
    pub fn content_type(self) -> &'static str {
        todo!("exposition helper")
    }
}

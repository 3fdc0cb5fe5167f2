//! The vocabulary of Honcho's queue API as the exporter names it: the URL prefix generation,
//! the endpoint kinds (the `endpoint` label), the filters of a status call and the request
//! counts by endpoint and status code, the HTTP methods. Plain data: no I/O, no client state.

use std::collections::BTreeMap;

/// The URL prefix generation: `/v2` (Honcho 2.x, generation A) or `/v3` (B and C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiVersion {
    /// `/v2/workspaces/{id}/deriver/status`, `POST /v2/workspaces/list`.
    V2,
    /// `/v3/workspaces/{id}/queue/status`, `POST /v3/workspaces/list`, work-units.
    V3,
}

pub use crate::upstream::Endpoint;

/// Filters of a queue/status call (a configured scope). Empty = unfiltered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFilter {
    /// `observer_id` (matches dream rows only on 3.x).
    pub observer_id: Option<String>,
    /// `sender_id` (the observed peer).
    pub sender_id: Option<String>,
    /// `session_id`: a session NAME.
    pub session_id: Option<String>,
}

/// Counts of upstream requests by endpoint and status code (`error` when no response came).
pub type RequestCounts = BTreeMap<(Endpoint, String), u64>;

/// The HTTP methods the API is called with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Method {
    Get,
    /// `POST` with body `{}` (the list endpoints take filters in the body).
    PostEmptyJson,
}

impl ApiVersion {
    /// The first path segment of this generation's URLs.
    pub(super) fn segment(self) -> &'static str {
        match self {
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        }
    }
}

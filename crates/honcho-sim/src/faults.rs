//! Fault knobs: what can go wrong between the exporter and Honcho, settable at runtime
//! (`Simulator::set_faults`, `POST /_sim/faults`). A [`Faults`] value is a list of rules; each
//! request takes the first rule that matches its endpoint kind and workspace and still has
//! uses left.
//!
//! Owns: the fault vocabulary and the matching/counting of rules. The HTTP effects themselves
//! live in `server`.

use serde::{Deserialize, Serialize};

/// The endpoint kinds faults and request counts are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// `POST /v3/workspaces/list` (or `/v2/...`): discovery.
    List,
    /// `POST /v3/workspaces/{id}/sessions/list`.
    Sessions,
    /// `GET /v3/workspaces/{id}/queue/status` (or 2.x `deriver/status`).
    Status,
    /// `GET /v3/workspaces/{id}/queue/work-units`.
    WorkUnits,
    /// `GET /health`.
    Health,
    /// Anything else (404s, 405s, peer cards, `/metrics`).
    Other,
    /// The simulator's own `/_sim/...` endpoints.
    Admin,
}

impl EndpointKind {
    /// The snake_case name used in JSON and in [`super::RequestCounts`].
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::List => "list",
            EndpointKind::Sessions => "sessions",
            EndpointKind::Status => "status",
            EndpointKind::WorkUnits => "work_units",
            EndpointKind::Health => "health",
            EndpointKind::Other => "other",
            EndpointKind::Admin => "admin",
        }
    }
}

/// What a matching request gets instead of (or on top of) the normal answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// A 5xx: 500 with Honcho's `{"detail":"An unexpected error occurred"}`, or 502/503 as a
    /// proxy in front of it would answer.
    ServerError {
        /// 500, 502 or 503 (any 5xx is accepted).
        status: u16,
    },
    /// 429 with a `Retry-After: <seconds>` header.
    TooManyRequests {
        /// The `Retry-After` value.
        retry_after_seconds: u64,
    },
    /// Accept the request and never answer (until the client gives up or 10 minutes pass).
    Hang,
    /// Send the headers, then trickle the real body a few bytes per second.
    Slowloris {
        /// Bytes sent per second (at least 1).
        bytes_per_second: u32,
    },
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// 200 with the real body cut in the middle. `chunked: false`: `content-length` honest to
    /// the bytes sent (valid HTTP, invalid JSON); `chunked: true`: chunked encoding and the
    /// connection is closed mid-body.
    TruncatedJson {
        /// Use chunked encoding and break the connection instead of a short honest body.
        #[serde(default)]
        chunked: bool,
    },
    /// The real answer padded with `mebibytes` MiB of valid JSON (an extra `_padding` string).
    HugeBody {
        /// Size of the padding.
        mebibytes: u32,
    },
    /// work-units: `next_page` repeats the cursor just received.
    CursorLoop,
    /// work-units: `next_page` is always a fresh cursor, items empty.
    EndlessWalk,
    /// 401 `{"detail":"Invalid JWT"}`.
    InvalidJwt,
    /// After the first page of a work-units walk of the workspace, the workspace no longer
    /// exists: 200 empty pages / zeros, and gone from the workspace list.
    VanishMidWalk,
    /// Close the connection without answering.
    DropConnection,
    /// 404 `{"detail":"Not Found"}`: the route is missing on the server that answered (a
    /// rolling deploy or a proxy route sending this workspace to an older Honcho).
    RouteNotFound,
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only requests for this workspace (name); `None` = any.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Only this endpoint kind; `None` = any Honcho endpoint (never the admin endpoints).
    #[serde(default)]
    pub endpoint: Option<EndpointKind>,
    /// Apply to the next N matching requests, then stop; `None` = always.
    #[serde(default)]
    pub times: Option<u64>,
    /// Added latency before answering, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// The fault itself; `None` = latency only.
    #[serde(default)]
    pub action: Option<FaultAction>,
}

impl FaultRule {
    /// A rule applying `action` to every request.
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            workspace: None,
            endpoint: None,
            times: None,
            latency_ms: 0,
            action: Some(action),
        }
    }

    /// A rule that only adds latency.
    pub fn latency(latency_ms: u64) -> Self {
        FaultRule {
            workspace: None,
            endpoint: None,
            times: None,
            latency_ms,
            action: None,
        }
    }

    /// Restricts the rule to one workspace.
    pub fn for_workspace(mut self, workspace: impl Into<String>) -> Self {
        self.workspace = Some(workspace.into());
        self
    }

    /// Restricts the rule to one endpoint kind.
    pub fn for_endpoint(mut self, endpoint: EndpointKind) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Limits the rule to the next `times` matching requests.
    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    fn matches(&self, endpoint: EndpointKind, workspace: Option<&str>) -> bool {
        if endpoint == EndpointKind::Admin || self.times == Some(0) {
            return false;
        }
        if self.endpoint.is_some_and(|wanted| wanted != endpoint) {
            return false;
        }
        match &self.workspace {
            Some(wanted) => workspace == Some(wanted.as_str()),
            None => true,
        }
    }
}

/// The fault configuration: rules tried in order, first match wins. `Faults::default()` = none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// The rules.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Faults::default()
    }

    /// One rule.
    pub fn one(rule: FaultRule) -> Self {
        Faults { rules: vec![rule] }
    }

    /// Takes the first matching rule for this request (counting one use of it).
    pub(crate) fn take(
        &mut self,
        endpoint: EndpointKind,
        workspace: Option<&str>,
    ) -> Option<FaultRule> {
        let rule = self
            .rules
            .iter_mut()
            .find(|rule| rule.matches(endpoint, workspace))?;
        if let Some(times) = rule.times.as_mut() {
            *times -= 1;
        }
        Some(rule.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_limited_to_n_requests_stops_after_n() {
        let mut faults = Faults::one(FaultRule::new(FaultAction::InvalidJwt).times(2));
        assert!(faults.take(EndpointKind::Status, Some("w")).is_some());
        assert!(faults.take(EndpointKind::Status, Some("w")).is_some());
        assert!(faults.take(EndpointKind::Status, Some("w")).is_none());
    }

    #[test]
    fn a_rule_restricted_to_a_workspace_and_endpoint_spares_the_others() {
        let mut faults = Faults::one(
            FaultRule::new(FaultAction::Hang)
                .for_workspace("a")
                .for_endpoint(EndpointKind::WorkUnits),
        );
        assert!(faults.take(EndpointKind::Status, Some("a")).is_none());
        assert!(faults.take(EndpointKind::WorkUnits, Some("b")).is_none());
        assert!(faults.take(EndpointKind::WorkUnits, Some("a")).is_some());
        assert!(faults.take(EndpointKind::Admin, None).is_none());
    }

    #[test]
    fn faults_deserialize_from_the_admin_json() {
        let faults: Faults = serde_json::from_str(
            r#"{"rules":[{"endpoint":"status","times":3,"latency_ms":5,"action":{"kind":"too_many_requests","retry_after_seconds":7}}]}"#,
        )
        .expect("valid faults JSON");
        assert_eq!(
            faults.rules[0].action,
            Some(FaultAction::TooManyRequests {
                retry_after_seconds: 7
            })
        );
    }
}

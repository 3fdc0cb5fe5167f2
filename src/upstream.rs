//! The `endpoint`/`upstream` label type: which upstream call a health, an error or a request
//! count is about. A leaf: shared by the Honcho client, both sources, the snapshot and the
//! families, it imports nothing of theirs.

/// Which kind of upstream call, for the `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `workspaces/list`.
    Discovery,
    /// queue/status (or v2 deriver/status) without filters.
    Status,
    /// The queue/work-units walk.
    WorkUnits,
    /// A filtered status poll of a configured scope.
    Scope,
    /// The database source's cycle (`poll.source: postgres`), not an HTTP endpoint.
    Postgres,
}

impl Endpoint {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Discovery => "discovery",
            Endpoint::Status => "status",
            Endpoint::WorkUnits => "work_units",
            Endpoint::Scope => "scope",
            Endpoint::Postgres => "postgres",
        }
    }
}

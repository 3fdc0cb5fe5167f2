//! The HTTP client for Honcho's queue API, all three generations (see `shared/honcho-api.md`).
//!
//! Owns: building requests (paths per API version, the bearer token, the verbatim cursor),
//! retries with capped exponential backoff + jitter honouring `Retry-After` (429 and 5xx, held
//! across calls), a bound on the request rate and on requests in flight, the response size cap,
//! and counting requests per endpoint and status code. It does not aggregate (that is
//! [`crate::snapshot`]) and keeps no queue data between calls: the work-units walk hands each
//! page to the caller and drops it.
//!
//! # Rooms
//!
//! - `client`: [`Client`] and its one builder ([`Client::from_settings`]: the in-flight cap,
//!   TLS, token), URLs, request counts.
//! - `calls`: workspace discovery and queue/status, one logical request each.
//! - `walk`: the work-units walk ([`Client::walk_work_units`], [`WalkOutcome`]).
//! - `retry`: one logical request: its in-flight slot, retries inside its budget, backoff.
//! - `attempt`: one HTTP exchange, the body read within the size cap, transport errors.
//! - `retry_after`: the `Retry-After` header and the hold it sets across calls.
//! - `rate_limit`: the bound on the request rate.
//! - `token`: the bearer token, re-read from its file on rotation.
//! - `busy`: Honcho busy time per job ([`measure_busy`]).
//! - `decode`: JSON bodies into [`types`], error details.
//! - `endpoint`: the API's vocabulary ([`ApiVersion`], [`Endpoint`], [`StatusFilter`]).
//!
//! The rooms depend in one direction: `calls` and `walk` → `retry` → `attempt` → `client` (the
//! shared state) → `token`, `rate_limit`, `retry_after`; `client` calls into none of them.
//! - [`types`]: the response types; `error`: [`UpstreamError`] with its bounded `reason()`.

mod attempt;
mod busy;
mod calls;
mod client;
mod decode;
mod endpoint;
mod error;
mod rate_limit;
mod retry;
mod retry_after;
#[cfg(test)]
mod test_support;
mod token;
pub mod types;
mod walk;

pub use busy::measure_busy;
pub use client::{Client, ClientBuildError};
pub use decode::decode;
use endpoint::Method;
pub use endpoint::{ApiVersion, Endpoint, RequestCounts, StatusFilter};
pub use error::UpstreamError;
pub use retry::backoff_delay;
pub use token::TokenFileError;
pub use walk::WalkOutcome;

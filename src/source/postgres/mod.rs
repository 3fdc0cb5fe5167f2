//! The database source (`poll.source: postgres`): Honcho's queue read straight from its Postgres in
//! one read-only pass per cycle, for every Honcho version (2.x and 3.x schemas), giving what the
//! generation-C API gives — the stalled/ready split and the work-unit numbers included.
//!
//! Rooms, in the order of the data path:
//! - [`queries`]: the SQL text (the cycle query classifies and aggregates in the database), its
//!   bind parameters, and the pure evaluation of the schema check.
//! - [`connection`]: URL options, TLS (rustls, `ring`), connect, schema check, the cycle's
//!   read-only transaction. The only place that talks to the database.
//! - [`mapping`]: pure aggregate rows → per-workspace results, in the same `snapshot` types (and
//!   through the same `summarize_status`) the API path uses.
//! - [`source`]: the poll loop: reconnects, staleness, self-metrics, publication.
//! - [`error`]: the error taxonomy with bounded reasons.
//!
//! Never reads `queue.payload` or `messages.content`: the role of `deploy/postgres/grant.sql`
//! cannot, and every test runs as that role.

pub mod accumulator;
pub mod connection;
pub mod error;
pub mod mapping;
pub mod queries;
pub mod source;

pub use error::PostgresError;
pub use source::PostgresSource;

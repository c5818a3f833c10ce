//! Domain types: raw strings from the wire become these once, at the boundary,
//! and inner code never re-checks them. Nothing here knows about HTTP or SQL.

mod access;
mod audit;
mod event;
mod ids;
mod interval;
mod problem;
mod range;
mod timestamp;

pub use access::{AccessGrant, Grant, Permission, Role};
pub use audit::{AuditAction, AuditDecodeError, AuditRecord, Outcome, Transfer};
pub use event::{Catalog, Component, Event, EventKind, User};
pub use ids::{EventId, LoginCodeId, Name, OpaqueId, OrgId, TextError, UserId};
pub use interval::{Buckets, Grid, Interval, InvalidInterval, TooManyBuckets, MAX_BUCKETS};
pub use problem::Problem;
pub use range::{DateRange, RangeError};
pub use timestamp::Timestamp;

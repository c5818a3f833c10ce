//! A usage event, as validated by ingestion and stored by every backend.

use super::{EventId, Name, OpaqueId, OrgId, Timestamp, UserId};
use std::fmt;
use std::str::FromStr;

/// What happened to a component. The discriminants are the stored codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The component was looked at in a catalog.
    View = 1,
    /// The component's files were downloaded.
    Download = 2,
    /// The component was placed into a design.
    Place = 3,
}

impl EventKind {
    /// Every kind, in stored-code order.
    pub const ALL: [EventKind; 3] = [EventKind::View, EventKind::Download, EventKind::Place];

    /// The wire and CSV name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "View",
            EventKind::Download => "Download",
            EventKind::Place => "Place",
        }
    }

    /// The integer kept in the narrow event row.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// Reads a stored code back; `None` only if the store was tampered with.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| i64::from(k.code()) == code)
    }
}

impl FromStr for EventKind {
    type Err = ();

    /// Exact, case-sensitive names only.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A catalog a component belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Opaque catalog id.
    pub id: OpaqueId,
    /// Current display name.
    pub display_name: Name,
}

/// The component an event is about, with the names current when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Opaque component id.
    pub id: OpaqueId,
    /// Display name.
    pub display_name: Name,
    /// Catalogs it belongs to (may be empty).
    pub catalogs: Vec<Catalog>,
    /// Category name, if any.
    pub category: Option<Name>,
    /// Manufacturer name, if any.
    pub manufacturer: Option<Name>,
}

/// The user who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Opaque user id.
    pub id: UserId,
    /// Email address (bounded in length, not otherwise interpreted).
    pub email: Name,
}

/// One validated usage event. Built only by ingestion's parser or by code
/// that constructs the parts from already-validated types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Idempotency key.
    pub id: EventId,
    /// Owning organization.
    pub organization: OrgId,
    /// When it happened.
    pub timestamp: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// To which component.
    pub component: Component,
    /// By whom.
    pub user: User,
    /// Reporting application and version, if known.
    pub application: Option<Name>,
    /// Project it happened in, if any.
    pub project_id: Option<OpaqueId>,
}

//! Who may download an organization's analytics.

use super::{OrgId, UserId};
use std::fmt;

/// The organization-administrator roles that allow downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `Account Administrator`
    AccountAdministrator,
    /// `Co-Administrator`
    CoAdministrator,
    /// `CONNECT Services Administrator`
    ConnectServicesAdministrator,
}

/// Organization-level permissions that allow downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `View Analytics`
    ViewAnalytics,
}

impl Role {
    /// Every role, for parsing and listing.
    pub const ALL: [Role; 3] = [
        Role::AccountAdministrator,
        Role::CoAdministrator,
        Role::ConnectServicesAdministrator,
    ];

    /// The name used in the CLI and the store.
    pub fn name(self) -> &'static str {
        match self {
            Role::AccountAdministrator => "Account Administrator",
            Role::CoAdministrator => "Co-Administrator",
            Role::ConnectServicesAdministrator => "CONNECT Services Administrator",
        }
    }

    /// Exact name lookup.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl Permission {
    /// Every permission, for parsing and listing.
    pub const ALL: [Permission; 1] = [Permission::ViewAnalytics];

    /// The name used in the CLI and the store.
    pub fn name(self) -> &'static str {
        match self {
            Permission::ViewAnalytics => "View Analytics",
        }
    }

    /// Exact name lookup.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// A role or a permission: the two things that can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// An administrator role.
    Role(Role),
    /// An organization-level permission.
    Permission(Permission),
}

impl Grant {
    /// Stored kind column: `role` or `permission`.
    pub fn kind(self) -> &'static str {
        match self {
            Grant::Role(_) => "role",
            Grant::Permission(_) => "permission",
        }
    }

    /// Stored name column.
    pub fn name(self) -> &'static str {
        match self {
            Grant::Role(r) => r.name(),
            Grant::Permission(p) => p.name(),
        }
    }

    /// Whether holding this allows erasing a user's data in the
    /// organization: the two organization-administrator roles only, not
    /// the service administrator role and not `View Analytics`.
    pub fn allows_erasure(self) -> bool {
        matches!(
            self,
            Grant::Role(Role::AccountAdministrator | Role::CoAdministrator)
        )
    }

    /// Reads a stored (kind, name) pair back.
    pub fn from_stored(kind: &str, name: &str) -> Option<Self> {
        match kind {
            "role" => Role::parse(name).map(Grant::Role),
            "permission" => Permission::parse(name).map(Grant::Permission),
            _ => None,
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_organization_administrators_may_erase() {
        let table = [
            (Grant::Role(Role::AccountAdministrator), true),
            (Grant::Role(Role::CoAdministrator), true),
            (Grant::Role(Role::ConnectServicesAdministrator), false),
            (Grant::Permission(Permission::ViewAnalytics), false),
        ];
        for (grant, allowed) in table {
            assert_eq!(grant.allows_erasure(), allowed, "{grant}");
        }
    }
}

/// One row of the access table: `user` holds `grant` in `org`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessGrant {
    /// The organization the grant is scoped to.
    pub org: OrgId,
    /// The user holding it.
    pub user: UserId,
    /// What is held.
    pub grant: Grant,
}

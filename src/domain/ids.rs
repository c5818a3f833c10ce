//! Identifiers and names. The library's ids are usually UUIDs, but the
//! contract makes them opaque strings, so nothing here depends on their shape.

use std::fmt;
use uuid::Uuid;

/// Why a string was refused as an id or a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Missing or empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than the limit that protects the store.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// Contains a NUL or other control character that no id needs.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// Contains U+0000, which no store can hold as text.
    #[error("must not contain U+0000")]
    Nul,
}

fn check(s: &str, max_chars: usize, allow_controls: bool) -> Result<(), TextError> {
    if s.is_empty() {
        return Err(TextError::Empty);
    }
    if s.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    if !allow_controls && s.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter);
    }
    if s.contains('\0') {
        return Err(TextError::Nul);
    }
    Ok(())
}

macro_rules! opaque_string {
    ($(#[$doc:meta])* $name:ident, $max:expr, $controls:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Accepts a non-empty string within the length limit.
            pub fn parse(s: impl Into<String>) -> Result<Self, TextError> {
                let s = s.into();
                check(&s, Self::MAX_CHARS, $controls)?;
                Ok(Self(s))
            }

            /// The value as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

opaque_string!(
    /// An organization id: the first key of every table and every query.
    OrgId, 256, false
);
opaque_string!(
    /// A user id, as the `sub` claim of a token or `user.id` of an event.
    UserId, 256, false
);
opaque_string!(
    /// The id (`jti`) of a one-time sign-in code: what the store remembers
    /// once the code is redeemed, so that it is redeemed only once.
    LoginCodeId, 64, false
);
opaque_string!(
    /// Any other opaque id: component, catalog, project.
    OpaqueId, 256, false
);
opaque_string!(
    /// A human-readable name (component, catalog, category, manufacturer,
    /// application) or an email. Control characters other than U+0000 are
    /// allowed because names come from users and the CSV encoder quotes
    /// them correctly; U+0000 is refused because PostgreSQL cannot store it.
    Name, 1024, true
);

impl Name {
    /// The empty name: what an erased user's email becomes. Never the
    /// result of parsing, so no event can claim it.
    pub fn erased() -> Self {
        Self(String::new())
    }
}

/// An event's own id: a UUID, and the idempotency key of ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(Uuid);

impl EventId {
    /// Parses the hyphenated UUID form (any case).
    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        Uuid::try_parse(s).map(Self)
    }

    /// Wraps a UUID read back from a store or generated for demo data.
    pub fn from_uuid(u: Uuid) -> Self {
        Self(u)
    }

    /// The UUID; stores keep its 16 bytes so that byte order is id order.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl serde::Serialize for EventId {
    /// The hyphenated form, as the wire carries it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_opaque_but_bounded() {
        assert!(OrgId::parse("not-a-uuid, any text").is_ok());
        assert_eq!(OrgId::parse(""), Err(TextError::Empty));
        assert_eq!(OrgId::parse("x".repeat(257)), Err(TextError::TooLong(256)));
        assert!(OrgId::parse("é".repeat(256)).is_ok());
        assert_eq!(UserId::parse("a\u{0}b"), Err(TextError::ControlCharacter));
        assert!(Name::parse("line\nbreak").is_ok());
        assert_eq!(Name::parse("a\u{0}b"), Err(TextError::Nul));
        assert_eq!(Name::parse("n".repeat(1025)), Err(TextError::TooLong(1024)));
    }
}

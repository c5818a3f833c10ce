//! One wire event (a JSON value) → a domain [`Event`], checking every field
//! and reporting every problem with its JSON path.

use crate::domain::Problem;
use crate::domain::{
    Catalog, Component, Event, EventId, EventKind, Name, OpaqueId, OrgId, Timestamp, User, UserId,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Longest accepted email, in characters (RFC 5321's practical limit).
const MAX_EMAIL_CHARS: usize = 320;
/// Most catalogs one component may list.
const MAX_CATALOGS: usize = 100;

pub(crate) fn missing(target: &str) -> Problem {
    Problem {
        code: "MissingRequiredProperty",
        message: "Required property is missing.".into(),
        target: target.into(),
    }
}

pub(crate) fn invalid(target: &str, message: &str) -> Problem {
    Problem {
        code: "InvalidValue",
        message: message.into(),
        target: target.into(),
    }
}

/// Collects problems while reading one object.
struct Reader<'a> {
    object: &'a Map<String, Value>,
    path: String,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Reader<'a> {
    fn target(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// A required or optional string; `null` counts as absent.
    fn string(&mut self, key: &str, required: bool) -> Option<&'a str> {
        match self.object.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.problems.push(missing(&self.target(key)));
                }
                None
            }
            Some(Value::String(s)) if s.contains('\0') => {
                self.problems.push(invalid(
                    &self.target(key),
                    &format!("Property '{key}' must not contain U+0000."),
                ));
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.problems.push(invalid(
                    &self.target(key),
                    &format!("Property '{key}' must be a string."),
                ));
                None
            }
        }
    }

    fn parsed<T, E>(
        &mut self,
        key: &str,
        required: bool,
        parse: impl FnOnce(&str) -> Result<T, E>,
        rule: &str,
    ) -> Option<T> {
        let s = self.string(key, required)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(_) => {
                self.problems.push(invalid(
                    &self.target(key),
                    &format!("Property '{key}' {rule}."),
                ));
                None
            }
        }
    }

    fn id(&mut self, key: &str) -> Option<OpaqueId> {
        self.parsed(
            key,
            true,
            |s| OpaqueId::parse(s),
            "must be a non-empty string of at most 256 characters without control characters",
        )
    }

    fn name(&mut self, key: &str, required: bool) -> Option<Name> {
        self.parsed(
            key,
            required,
            |s| Name::parse(s),
            "must be a non-empty string of at most 1024 characters",
        )
    }

    fn object(&mut self, key: &str) -> Option<Reader<'_>> {
        match self.object.get(key) {
            None | Some(Value::Null) => {
                self.problems.push(missing(&self.target(key)));
                None
            }
            Some(Value::Object(o)) => Some(Reader {
                object: o,
                path: self.target(key),
                problems: self.problems,
            }),
            Some(_) => {
                self.problems.push(invalid(
                    &self.target(key),
                    &format!("Property '{key}' must be an object."),
                ));
                None
            }
        }
    }
}

/// Validates one event at `path` (e.g. `events[3]`).
pub fn parse_event(value: &Value, path: &str) -> Result<Event, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(object) = value.as_object() else {
        return Err(vec![invalid(path, "Event must be a JSON object.")]);
    };
    let mut r = Reader {
        object,
        path: path.to_owned(),
        problems: &mut problems,
    };
    let id = r.parsed("id", true, EventId::parse, "must be a UUID");
    let organization = r.parsed(
        "organizationId",
        true,
        |s| OrgId::parse(s),
        "must be a non-empty string of at most 256 characters without control characters",
    );
    let timestamp = r.parsed(
        "timestamp",
        true,
        Timestamp::parse,
        "format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'",
    );
    let kind = r.parsed(
        "event",
        true,
        |s| s.parse::<EventKind>(),
        "must be one of View, Download, Place",
    );
    let application = r.name("application", false);
    let project_id = if matches!(object.get("projectId"), None | Some(Value::Null)) {
        None
    } else {
        r.id("projectId")
    };
    let component = r
        .object("component")
        .and_then(|mut c| parse_component(&mut c));
    let user = r.object("user").and_then(|mut u| {
        let id = u.parsed(
            "id",
            true,
            |s| UserId::parse(s),
            "must be a non-empty string of at most 256 characters without control characters",
        );
        let email = u.parsed(
            "email",
            true,
            |s| {
                if s.chars().count() <= MAX_EMAIL_CHARS {
                    Name::parse(s)
                } else {
                    Err(crate::domain::TextError::TooLong(MAX_EMAIL_CHARS))
                }
            },
            "must be a non-empty string of at most 320 characters",
        );
        Some(User {
            id: id?,
            email: email?,
        })
    });
    match (id, organization, timestamp, kind, component, user) {
        (
            Some(id),
            Some(organization),
            Some(timestamp),
            Some(kind),
            Some(component),
            Some(user),
        ) if problems.is_empty() => Ok(Event {
            id,
            organization,
            timestamp,
            kind,
            component,
            user,
            application,
            project_id,
        }),
        _ => Err(problems),
    }
}

fn parse_component(c: &mut Reader<'_>) -> Option<Component> {
    let id = c.id("id");
    let display_name = c.name("displayName", true);
    let category = c.name("category", false);
    let manufacturer = c.name("manufacturer", false);
    let catalogs = match c.object.get("catalogs") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_CATALOGS => {
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let path = format!("{}[{i}]", c.target("catalogs"));
                match item.as_object() {
                    Some(o) => {
                        let mut r = Reader {
                            object: o,
                            path,
                            problems: c.problems,
                        };
                        match (r.id("id"), r.name("displayName", true)) {
                            (Some(id), Some(display_name)) => {
                                out.push(Catalog { id, display_name })
                            }
                            _ => ok = false,
                        }
                    }
                    None => {
                        c.problems
                            .push(invalid(&path, "Catalog must be an object."));
                        ok = false;
                    }
                }
            }
            ok.then_some(out)
        }
        Some(_) => {
            c.problems.push(invalid(
                &c.target("catalogs"),
                "Property 'catalogs' must be an array of at most 100 catalogs.",
            ));
            None
        }
    };
    Some(Component {
        id: id?,
        display_name: display_name?,
        catalogs: catalogs?,
        category,
        manufacturer,
    })
}

/// The wire event as typed structs borrowing from the body: the fast path.
/// A body that does not fit these types, or whose values fail validation,
/// goes through [`parse_event`] instead, which names every problem.
///
/// These types refuse unknown fields, and serde refuses a repeated field:
/// so a body they accept has no repeated key anywhere, and the separate
/// repeated-key pass is needed only on the slow path. A body with fields
/// of its own is valid, but takes the slow path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FastEvent<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    organization_id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    component: FastComponent<'a>,
    #[serde(borrow)]
    user: FastUser<'a>,
    #[serde(default, borrow)]
    application: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    project_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FastComponent<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    display_name: Cow<'a, str>,
    #[serde(default, borrow)]
    catalogs: Option<Vec<FastCatalog<'a>>>,
    #[serde(default, borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    manufacturer: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FastCatalog<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    display_name: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastUser<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    email: Cow<'a, str>,
}

fn name(s: Cow<'_, str>) -> Option<Name> {
    Name::parse(s.into_owned()).ok()
}

fn opaque(s: Cow<'_, str>) -> Option<OpaqueId> {
    OpaqueId::parse(s.into_owned()).ok()
}

impl FastEvent<'_> {
    /// The domain event, or `None` if any value is invalid (the caller then
    /// re-parses through [`parse_event`] to report why).
    pub fn into_event(self) -> Option<Event> {
        let c = self.component;
        let catalogs = c.catalogs.unwrap_or_default();
        if catalogs.len() > MAX_CATALOGS || self.user.email.chars().count() > MAX_EMAIL_CHARS {
            return None;
        }
        Some(Event {
            id: EventId::parse(&self.id).ok()?,
            organization: OrgId::parse(self.organization_id.into_owned()).ok()?,
            timestamp: Timestamp::parse(&self.timestamp).ok()?,
            kind: self.event.parse().ok()?,
            component: Component {
                id: opaque(c.id)?,
                display_name: name(c.display_name)?,
                catalogs: catalogs
                    .into_iter()
                    .map(|k| {
                        Some(Catalog {
                            id: opaque(k.id)?,
                            display_name: name(k.display_name)?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
                category: c.category.map(name).map_or(Some(None), |n| n.map(Some))?,
                manufacturer: c
                    .manufacturer
                    .map(name)
                    .map_or(Some(None), |n| n.map(Some))?,
            },
            user: User {
                id: UserId::parse(self.user.id.into_owned()).ok()?,
                email: name(self.user.email)?,
            },
            application: self
                .application
                .map(name)
                .map_or(Some(None), |n| n.map(Some))?,
            project_id: self
                .project_id
                .map(opaque)
                .map_or(Some(None), |n| n.map(Some))?,
        })
    }
}

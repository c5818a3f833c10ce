//! Property tests of the event parsers: whatever the bytes, the answer is
//! events or the documented problems, never a panic; and every valid
//! event survives its wire form unchanged.

use super::{parse_json, parse_ndjson, to_wire, BatchError};
use crate::domain::{
    Catalog, Component, Event, EventId, EventKind, Name, OpaqueId, OrgId, Problem, Timestamp, User,
    UserId,
};
use proptest::prelude::*;
use serde_json::Value;

/// The problem codes an ingestion 422 may carry (docs/api.md).
const CODES: [&str; 3] = ["InvalidJson", "MissingRequiredProperty", "InvalidValue"];

fn documented(result: &Result<Vec<Event>, BatchError>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) | Err(BatchError::TooManyEvents(_)) => Ok(()),
        Err(BatchError::Invalid(problems)) => {
            prop_assert!(!problems.is_empty());
            for Problem {
                code,
                message,
                target,
            } in problems
            {
                prop_assert!(CODES.contains(code), "{code}");
                prop_assert!(message.ends_with('.'), "{message}");
                prop_assert!(
                    target == "body" || target == "events" || target.starts_with("events["),
                    "{target}"
                );
            }
            Ok(())
        }
    }
}

/// JSON values built from the event's own keys, so parsing goes deep.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "id",
        "organizationId",
        "timestamp",
        "event",
        "component",
        "displayName",
        "catalogs",
        "category",
        "manufacturer",
        "user",
        "email",
        "application",
        "projectId",
        "events",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 \u{0}\u{7}.:-]{0,12}".prop_map(Value::from),
        Just(Value::from("2024-01-01T00:00:00.000Z")),
        Just(Value::from("View")),
        Just(Value::from("8c6f7d1c-3d7e-4a36-9a4e-1a2b3c4d5e6f")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((key.clone(), inner), 0..9).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\u{0}]{{1,{max}}}"))
        .unwrap_or_else(|_| unreachable!("a valid pattern"))
}

fn id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._~é漢-]{1,40}"
}

fn parsed<T, E>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|_| unreachable!("generated within the rules"))
}

/// Any valid event.
fn event() -> impl Strategy<Value = Event> {
    let catalogs = prop::collection::vec((id(), text(30)), 0..4);
    (
        any::<u128>(),
        (id(), 0i64..4_102_444_800_000, 0usize..3),
        (
            id(),
            text(40),
            catalogs,
            proptest::option::of(text(20)),
            proptest::option::of(text(20)),
        ),
        (id(), text(40)),
        (proptest::option::of(text(30)), proptest::option::of(id())),
    )
        .prop_map(
            |(
                uuid,
                (org, ts, kind),
                (cid, cname, catalogs, category, manufacturer),
                (uid, email),
                (app, project),
            )| Event {
                id: EventId::from_uuid(uuid::Uuid::from_u128(uuid)),
                organization: parsed(OrgId::parse(org)),
                timestamp: Timestamp::from_millis(ts),
                kind: EventKind::ALL[kind],
                component: Component {
                    id: parsed(OpaqueId::parse(cid)),
                    display_name: parsed(Name::parse(cname)),
                    catalogs: catalogs
                        .into_iter()
                        .map(|(id, name)| Catalog {
                            id: parsed(OpaqueId::parse(id)),
                            display_name: parsed(Name::parse(name)),
                        })
                        .collect(),
                    category: category.map(|c| parsed(Name::parse(c))),
                    manufacturer: manufacturer.map(|m| parsed(Name::parse(m))),
                },
                user: User {
                    id: parsed(UserId::parse(uid)),
                    email: parsed(Name::parse(email)),
                },
                application: app.map(|a| parsed(Name::parse(a))),
                project_id: project.map(|p| parsed(OpaqueId::parse(p))),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_give_events_or_documented_problems(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        documented(&parse_json(&bytes))?;
        documented(&parse_ndjson(&bytes))?;
    }

    #[test]
    fn arbitrary_json_gives_events_or_documented_problems(events in prop::collection::vec(json_value(), 0..6)) {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap_or_default();
        documented(&parse_json(&body))?;
        let lines: Vec<u8> = events.iter().flat_map(|e| {
            let mut line = serde_json::to_vec(e).unwrap_or_default();
            line.push(b'\n');
            line
        }).collect();
        documented(&parse_ndjson(&lines))?;
    }

    #[test]
    fn valid_events_survive_their_wire_form(events in prop::collection::vec(event(), 1..5)) {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events.iter().map(to_wire).collect::<Vec<_>>() })).unwrap_or_default();
        prop_assert_eq!(parse_json(&body).ok(), Some(events.clone()));
        let lines: String = events.iter().map(|e| format!("{}\n", to_wire(e))).collect();
        prop_assert_eq!(parse_ndjson(lines.as_bytes()).ok(), Some(events));
    }
}

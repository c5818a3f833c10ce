//! Ingestion's boundary: request bodies (JSON or NDJSON) → validated
//! [`Event`]s, or every problem found. Shared by the HTTP operation, the
//! `import` command and the demo, so all three accept exactly the same input.

mod event;
#[cfg(test)]
mod properties;
mod repeated;
mod wire;

pub use event::{parse_event, FastEvent};
pub use wire::to_wire;

use crate::domain::Event;
use crate::domain::Problem;
use serde_json::Value;

/// Most events one request may carry.
pub const MAX_EVENTS: usize = 10_000;
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Why a body was refused as a whole or in part.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchError {
    /// More than [`MAX_EVENTS`] events.
    TooManyEvents(usize),
    /// Malformed body or invalid events: one detail per problem.
    Invalid(Vec<Problem>),
}

/// The JSON body as the fast path reads it (strict, as [`FastEvent`]).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FastBatch<'a> {
    #[serde(borrow)]
    events: Vec<FastEvent<'a>>,
}

/// Parses `{"events":[...]}`: typed and borrowing when the body is well
/// formed (the common case: one pass, which also rules out repeated keys),
/// else checked for repeated keys and read through `serde_json::Value` with
/// a detail per problem.
pub fn parse_json(body: &[u8]) -> Result<Vec<Event>, BatchError> {
    if let Ok(batch) = serde_json::from_slice::<FastBatch<'_>>(body) {
        if batch.events.len() > MAX_EVENTS {
            return Err(BatchError::TooManyEvents(batch.events.len()));
        }
        let events: Option<Vec<Event>> = batch
            .events
            .into_iter()
            .map(FastEvent::into_event)
            .collect();
        if let Some(events) = events {
            return Ok(events);
        }
    }
    refuse_repeated_keys(body, "")?;
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        BatchError::Invalid(vec![malformed(
            "body",
            &format!("Request body is not valid JSON: {}.", describe(&e)),
        )])
    })?;
    let Some(events) = doc.get("events") else {
        return Err(BatchError::Invalid(vec![event::missing("events")]));
    };
    let Some(items) = events.as_array() else {
        return Err(BatchError::Invalid(vec![event::invalid(
            "events",
            "Property 'events' must be an array.",
        )]));
    };
    if items.len() > MAX_EVENTS {
        return Err(BatchError::TooManyEvents(items.len()));
    }
    gather(
        items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_event(v, &format!("events[{i}]"))),
    )
}

/// Parses one JSON event per line; blank lines are skipped, and `events[i]`
/// in details is the 0-based line index, so it points at the line.
pub fn parse_ndjson(body: &[u8]) -> Result<Vec<Event>, BatchError> {
    let lines: Vec<(usize, &[u8])> = body
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    if lines.len() > MAX_EVENTS {
        return Err(BatchError::TooManyEvents(lines.len()));
    }
    gather(
        lines
            .into_iter()
            .map(|(i, line)| parse_line(line, i + 1, || format!("events[{i}]"))),
    )
}

/// One NDJSON line (number `line_no`, 1-based) → an event: typed and
/// borrowing when it is well formed (one pass, as in [`parse_json`]), else
/// checked for repeated keys and read through `serde_json::Value` with a
/// detail per problem under `target()` (only built on that slow path).
/// Shared by `POST …/events` and `catalytics import`.
pub fn parse_line(
    line: &[u8],
    line_no: usize,
    target: impl FnOnce() -> String,
) -> Result<Event, Vec<Problem>> {
    if let Some(event) = serde_json::from_slice::<FastEvent<'_>>(line)
        .ok()
        .and_then(FastEvent::into_event)
    {
        return Ok(event);
    }
    let target = target();
    if let Err(BatchError::Invalid(problems)) = refuse_repeated_keys(line, &target) {
        return Err(problems);
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(value) => parse_event(&value, &target),
        Err(e) => Err(vec![malformed(
            &target,
            &format!("Line {line_no} is not valid JSON: {}.", describe(&e)),
        )]),
    }
}

/// A repeated key anywhere in `json` is refused, with its path under
/// `root`; malformed JSON is left for the parser to describe.
fn refuse_repeated_keys(json: &[u8], root: &str) -> Result<(), BatchError> {
    match repeated::repeated_keys(json, root) {
        Ok(paths) if !paths.is_empty() => Err(BatchError::Invalid(
            paths
                .into_iter()
                .map(|path| {
                    let key = path.rsplit('.').next().unwrap_or(&path).to_owned();
                    Problem::invalid(path, format!("Property '{key}' must appear only once."))
                })
                .collect(),
        )),
        _ => Ok(()),
    }
}

/// All events, or every detail of every invalid one.
fn gather(
    results: impl Iterator<Item = Result<Event, Vec<Problem>>>,
) -> Result<Vec<Event>, BatchError> {
    let mut events = Vec::new();
    let mut details = Vec::new();
    for result in results {
        match result {
            Ok(e) => events.push(e),
            Err(mut d) => details.append(&mut d),
        }
    }
    if details.is_empty() {
        Ok(events)
    } else {
        Err(BatchError::Invalid(details))
    }
}

fn malformed(target: &str, message: &str) -> Problem {
    Problem {
        code: "InvalidJson",
        message: message.to_owned(),
        target: target.to_owned(),
    }
}

/// serde_json's position without its internal wording.
fn describe(e: &serde_json::Error) -> String {
    format!("{} at line {} column {}", category(e), e.line(), e.column())
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_malformed_ndjson_lines_by_index() {
        let body = b"{\"id\": 1}\n\nnot json\n";
        let Err(BatchError::Invalid(details)) = parse_ndjson(body) else {
            panic!("expected details")
        };
        assert!(details
            .iter()
            .any(|d| d.target == "events[2]" && d.code == "InvalidJson"));
        assert!(details.iter().any(|d| d.target.starts_with("events[0].")));
    }

    #[test]
    fn counts_events_before_validating_them() {
        let body = "{}\n".repeat(MAX_EVENTS + 1);
        assert_eq!(
            parse_ndjson(body.as_bytes()),
            Err(BatchError::TooManyEvents(MAX_EVENTS + 1))
        );
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use crate::demo::DemoLibrary;
    use crate::domain::Timestamp;

    #[test]
    fn well_formed_events_take_the_fast_path_and_agree_with_the_slow_one() {
        let library = DemoLibrary::generate(3, 20, 5);
        for e in library.events(3, 200, 10, Timestamp::now()).flatten() {
            let line = serde_json::to_vec(&to_wire(&e)).unwrap();
            let fast = serde_json::from_slice::<FastEvent<'_>>(&line).map(FastEvent::into_event);
            assert_eq!(
                fast.as_ref().ok().cloned().flatten().as_ref(),
                Some(&e),
                "{fast:?}"
            );
            let slow = parse_event(&serde_json::from_slice(&line).unwrap(), "events[0]").unwrap();
            assert_eq!(slow, e);
        }
    }
}

#[cfg(test)]
mod repeated_key_tests {
    use super::*;
    use crate::demo::DemoLibrary;
    use crate::domain::Timestamp;
    use serde_json::json;

    /// `object`'s JSON with `extra` (`"k":v,…`) as its first members.
    fn splice(object: &Value, extra: &str) -> String {
        let text = object.to_string();
        format!("{{{extra},{}", &text[1..])
    }

    /// The wire text of `e` with `extra` spliced into the object at `at`
    /// (`""`, `"component"`, `"catalog"` or `"user"`).
    fn event_text(e: &Event, at: &str, extra: &str) -> String {
        let wire = to_wire(e);
        let placeholder = |v: &mut Value| std::mem::replace(v, json!("\u{1}spliced"));
        let mut event = wire.clone();
        let inner = match at {
            "" => return splice(&wire, extra),
            "component" => splice(&placeholder(&mut event["component"]), extra),
            "catalog" => splice(&placeholder(&mut event["component"]["catalogs"][0]), extra),
            "user" => splice(&placeholder(&mut event["user"]), extra),
            _ => unreachable!("a known place"),
        };
        event.to_string().replace("\"\\u0001spliced\"", &inner)
    }

    fn sample() -> Event {
        let library = DemoLibrary::generate(1, 20, 5);
        library
            .events(1, 50, 5, Timestamp::now())
            .flatten()
            .find(|e| !e.component.catalogs.is_empty())
            .unwrap_or_else(|| unreachable!("the demo puts components in catalogs"))
    }

    #[test]
    fn repeated_keys_are_refused_on_every_path_and_unknown_fields_accepted() {
        let e = sample();
        let repeated = [
            (
                "",
                r#""organizationId":"other""#,
                "events[0].organizationId",
            ),
            ("", r#""note":1,"note":2"#, "events[0].note"),
            (
                "component",
                r#""displayName":"X""#,
                "events[0].component.displayName",
            ),
            ("component", r#""x":[],"x":{}"#, "events[0].component.x"),
            (
                "catalog",
                r#""id":"other""#,
                "events[0].component.catalogs[0].id",
            ),
            ("user", r#""email":"a@b""#, "events[0].user.email"),
            ("user", r#""\u0069d":"u""#, "events[0].user.id"),
        ];
        for (at, extra, path) in repeated {
            let line = event_text(&e, at, extra);
            let key = path.rsplit('.').next().unwrap_or(path);
            let expected = BatchError::Invalid(vec![Problem::invalid(
                path.to_owned(),
                format!("Property '{key}' must appear only once."),
            )]);
            let body = format!(r#"{{"events":[{line}]}}"#);
            assert_eq!(parse_json(body.as_bytes()), Err(expected), "{body}");
            let Err(BatchError::Invalid(problems)) = parse_ndjson(line.as_bytes()) else {
                panic!("{line} was accepted")
            };
            assert_eq!(problems.len(), 1, "{line}");
            assert_eq!(problems[0].target, path, "{line}");
        }
        let body = format!(r#"{{"events":[],"events":[{}]}}"#, to_wire(&e));
        let Err(BatchError::Invalid(problems)) = parse_json(body.as_bytes()) else {
            panic!("{body} was accepted")
        };
        assert_eq!(problems[0].target, "events");

        for at in ["", "component", "catalog", "user"] {
            let line = event_text(&e, at, r#""note":{"a":1,"b":[1]}"#);
            let body = format!(r#"{{"sentAt":1,"events":[{line}]}}"#);
            assert_eq!(parse_json(body.as_bytes()), Ok(vec![e.clone()]), "{body}");
            assert_eq!(parse_ndjson(line.as_bytes()), Ok(vec![e.clone()]), "{line}");
        }
    }
}

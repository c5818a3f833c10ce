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

/// The JSON body as the fast path reads it.
#[derive(serde::Deserialize)]
struct FastBatch<'a> {
    #[serde(borrow)]
    events: Vec<FastEvent<'a>>,
}

/// Parses `{"events":[...]}`: typed and borrowing when the body is well
/// formed (the common case), through `serde_json::Value` with a detail per
/// problem otherwise.
pub fn parse_json(body: &[u8]) -> Result<Vec<Event>, BatchError> {
    refuse_repeated_keys(body, "")?;
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
/// borrowing when it is well formed, else through `serde_json::Value` with a
/// detail per problem under `target()` (only built on that slow path).
/// Shared by `POST …/events` and `catalytics import`.
pub fn parse_line(
    line: &[u8],
    line_no: usize,
    target: impl FnOnce() -> String,
) -> Result<Event, Vec<Problem>> {
    let target = target();
    if let Err(BatchError::Invalid(problems)) = refuse_repeated_keys(line, &target) {
        return Err(problems);
    }
    if let Some(event) = serde_json::from_slice::<FastEvent<'_>>(line)
        .ok()
        .and_then(FastEvent::into_event)
    {
        return Ok(event);
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

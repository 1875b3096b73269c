//! The formats for people: `-o text` (one aligned line per change) and `-o name`
//! (`kind.group/name`, as `kubectl get -o name`).
//!
//! A text line is `TIME TYPE KIND NAMESPACE/NAME NOTES`:
//!
//! ```text
//! 19:02:11.204Z ADDED   pod             shop/web-7d9c-x2   initial
//! 19:02:13.870Z UPDATED deployment.apps shop/web           spec.replicas: 2 → 3 by kubectl
//! 19:02:14.002Z DELETED configmap       payments/settings
//! ```
//!
//! NOTES are `initial`, `resync`, the workload, then for a diffed UPDATED what changed
//! (`path: old → new`, `+path: new`, `-path`; at most [`CHANGES_SHOWN`] of them, long values
//! cut), then `by MANAGER` (the field manager of `changedBy`, with `?` when it is a guess).
//!
//! The time is the time of day (UTC, as the JSON timestamps and the log lines on stderr) at
//! which faro received the change. KIND is written as kubectl writes resource references: the lowercased kind,
//! with the group for other groups than the core one. Columns are as wide as the widest value
//! seen so far (within limits): a stream cannot know the widths of lines to come, so a longer
//! name widens the column from then on. Colours (time dimmed, the type green, yellow or red)
//! only when asked for: on a terminal without `NO_COLOR`.

use std::time::UNIX_EPOCH;

use faro::{Event, EventType};

/// Columns never grow past these widths (a long name then just pushes the notes right).
const KIND_MAX: usize = 40;
const NAME_MAX: usize = 60;

/// Changes of a diff shown on a line; more are counted.
pub const CHANGES_SHOWN: usize = 4;
/// Values longer than this are cut.
const VALUE_MAX: usize = 40;

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";

/// Renders text lines, remembering column widths and the last time stamp.
#[derive(Debug, Default)]
pub struct TextLines {
    color: bool,
    kind_width: usize,
    name_width: usize,
    /// The rendered seconds part of the last time stamp, by whole second.
    clock: Option<(u64, String)>,
}

impl TextLines {
    /// A renderer; `color` adds ANSI colours.
    pub fn new(color: bool) -> TextLines {
        TextLines {
            color,
            kind_width: 10,
            name_width: 24,
            clock: None,
        }
    }

    /// Appends the text line of `event`.
    pub fn render(&mut self, event: &Event, out: &mut Vec<u8>) {
        let start = out.len();
        let (secs, millis) = match event.observed().duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs(), d.subsec_millis()),
            Err(_) => (0, 0),
        };
        if self.clock.as_ref().is_none_or(|(at, _)| *at != secs) {
            self.clock = Some((secs, time_of_day(secs)));
        }
        let clock = self.clock.as_ref().map_or("", |(_, text)| text.as_str());
        let kind = reference_kind(event);
        let name = clean(&match event.namespace() {
            Some(ns) => format!("{ns}/{}", event.name()),
            None => event.name().to_owned(),
        });
        let notes = clean(&notes(event));
        let changes = changes(event, self.color);
        self.kind_width = self.kind_width.max(kind.len()).min(KIND_MAX);
        if !notes.is_empty() || !changes.is_empty() {
            self.name_width = self.name_width.max(name.len()).min(NAME_MAX);
        }
        let (dim, type_color, reset) = if self.color {
            let color = match event.event_type() {
                EventType::Added => "\x1b[32m",
                EventType::Updated => "\x1b[33m",
                EventType::Deleted => "\x1b[31m",
            };
            (DIM, color, RESET)
        } else {
            ("", "", "")
        };
        let mut line = format!(
            "{dim}{clock}.{millis:03}Z{reset} {type_color}{:<7}{reset} {kind:<kind_width$} ",
            event.event_type().as_str(),
            kind_width = self.kind_width,
        );
        if notes.is_empty() && changes.is_empty() {
            line.push_str(&name);
        } else {
            line.push_str(&format!(
                "{name:<name_width$}",
                name_width = self.name_width
            ));
            if !notes.is_empty() {
                line.push_str(&format!(" {dim}{notes}{reset}"));
            }
            if !changes.is_empty() {
                line.push(' ');
                line.push_str(&changes);
            }
        }
        push_line(out, start, &line);
    }
}

/// Appends `kind.group/name` of `event`, as `kubectl get -o name` prints it.
pub fn render_name(event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    push_line(
        out,
        start,
        &format!("{}/{}", reference_kind(event), clean(event.name())),
    );
}

fn push_line(out: &mut Vec<u8>, start: usize, line: &str) {
    debug_assert_eq!(out.len(), start);
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

/// Names and labels are DNS-safe, but a hostile server could send control characters: every
/// value from the server goes through here, so that an event is one line and the only escape
/// sequences are ours.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// `pod`, `deployment.apps`: the lowercased kind, with the group when it is not core.
fn reference_kind(event: &Event) -> String {
    let kind = event.kind();
    let kind = if kind.is_empty() {
        event.gvr().resource.clone()
    } else {
        kind.to_ascii_lowercase()
    };
    let group = &event.gvr().group;
    clean(&if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    })
}

/// What else there is to say: `initial`, `resync`, the workload.
fn notes(event: &Event) -> String {
    let mut notes = Vec::new();
    if event.initial() {
        notes.push("initial".to_owned());
    }
    if event.resync() {
        notes.push("resync".to_owned());
    }
    if let Some(w) = event.workload() {
        if w.name == w.id {
            notes.push(format!("workload={}", w.id));
        } else {
            notes.push(format!("workload={} ({})", w.id, w.name));
        }
    }
    notes.join(" ")
}

/// What changed (for a diffed UPDATED) and who changed it, coloured with `color`.
fn changes(event: &Event, color: bool) -> String {
    let paint = |colour: &str, text: &str| {
        if color {
            format!("{colour}{text}{RESET}")
        } else {
            text.to_owned()
        }
    };
    let mut parts = Vec::new();
    if let Some(ops) = event.diff().and_then(|d| faro::diff::parse_ops(d).ok()) {
        if ops.is_empty() {
            parts.push(paint(DIM, "(no change)"));
        }
        for op in ops.iter().take(CHANGES_SHOWN) {
            let path = clean(&faro::diff::dotted(&op.path));
            let value = |v: &Option<serde_json::Value>| v.as_ref().map(short).unwrap_or_default();
            parts.push(match op.op {
                faro::diff::Op::Replace => format!(
                    "{path}: {} → {}",
                    paint(RED, &value(&op.old)),
                    paint(GREEN, &value(&op.value))
                ),
                faro::diff::Op::Add => {
                    format!(
                        "{}: {}",
                        paint(GREEN, &format!("+{path}")),
                        paint(GREEN, &value(&op.value))
                    )
                }
                faro::diff::Op::Remove => paint(RED, &format!("-{path}")),
            });
        }
        if ops.len() > CHANGES_SHOWN {
            parts.push(paint(
                DIM,
                &format!("(+{} more)", ops.len() - CHANGES_SHOWN),
            ));
        }
    }
    let mut text = parts.join(", ");
    if let Some(by) = event.changed_by() {
        if !text.is_empty() {
            text.push(' ');
        }
        let guess = if by.ambiguous { "?" } else { "" };
        text.push_str(&paint(CYAN, &format!("by {}{guess}", clean(&by.manager))));
    }
    text
}

/// A value as a line shows it: strings bare (quoted when empty or with spaces), the rest as
/// compact JSON, cut at [`VALUE_MAX`] characters.
fn short(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
            s.clone()
        }
        other => other.to_string(),
    };
    let text = clean(&text);
    if text.chars().count() > VALUE_MAX {
        let cut: String = text.chars().take(VALUE_MAX - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// `HH:MM:SS` of `secs` since the epoch, in UTC: the clock of the JSON timestamps and of the
/// log lines on stderr, which share the terminal.
fn time_of_day(secs: u64) -> String {
    let of_day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Whether people want colours on a terminal: not with `NO_COLOR` set to anything
/// (no-color.org) or `TERM=dumb`.
pub fn colours_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_the_server_are_dropped() {
        assert_eq!(clean("a\rb\x07c\x1b[31md\n"), "abc[31md");
    }

    #[test]
    fn the_time_of_day_is_utc() {
        assert_eq!(time_of_day(0), "00:00:00");
        // 2026-12-02T18:31:02Z
        assert_eq!(time_of_day(1_796_236_262), "18:31:02");
    }
}

//! JSON diffs between two versions of an object, as RFC 6902 patch operations.
//!
//! [`diff`] (or [`write_diff`], which renders straight into a buffer) compares two JSON values
//! and yields `add`, `remove` and `replace` operations whose paths are JSON pointers escaped
//! per RFC 6901 (`~0` for `~`, `~1` for `/`). A `replace` and a `remove` also carry the old
//! value as an `old` member; RFC 6902 §4 says members an operation does not define are
//! ignored, so the list stays an applicable patch.
//!
//! The rules, chosen to be read by people first and applied by tools second:
//! - objects are compared key by key, recursively;
//! - arrays of the same length are compared element by element; arrays whose length changed
//!   are replaced whole. Index-shifting patches (`remove /spec/containers/0` followed by
//!   `add ...`) are hard to read and easy to misapply, and Kubernetes lists rarely change
//!   length and content in one write;
//! - `metadata.resourceVersion`, `metadata.managedFields` and `metadata.generation` are always
//!   left out (they change on every write, or with every spec change, and say nothing the
//!   other operations do not), and so are a top-level `kind` and `apiVersion` (fixed for a
//!   resource, and missing from list items of built-in types); so is everything under a path
//!   given to
//!   [`DiffOptions::ignore`]; values added or replaced are shown without ignored members too;
//! - with [`DiffOptions::redact`], every value and old value is `"<redacted>"`: the paths that
//!   changed are shown, their contents are not (faro does this for Secrets, always).
//!
//! ```
//! use faro::diff::{diff, DiffOptions, Op};
//! use serde_json::json;
//!
//! let old = json!({"spec": {"replicas": 2}, "metadata": {"resourceVersion": "1"}});
//! let new = json!({"spec": {"replicas": 3}, "metadata": {"resourceVersion": "2"}});
//! let ops = diff(&old, &new, &DiffOptions::new());
//! assert_eq!(ops.len(), 1);
//! assert_eq!(ops[0].op, Op::Replace);
//! assert_eq!(ops[0].path, "/spec/replicas");
//! assert_eq!(ops[0].value, Some(json!(3)));
//! assert_eq!(ops[0].old, Some(json!(2)));
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Paths never diffed: they change on every write (or every spec change) and say nothing the
/// other operations do not.
/// `kind` and `apiVersion` are the stream's, and list items of built-in types lack them.
const ALWAYS_IGNORED: [&str; 5] = [
    "/metadata/resourceVersion",
    "/metadata/managedFields",
    "/metadata/generation",
    "/kind",
    "/apiVersion",
];

/// What redacted values are shown as.
pub const REDACTED: &str = "<redacted>";

/// How [`diff`] compares: which paths it leaves out and whether it shows values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct DiffOptions {
    /// Ignored paths, as canonically escaped JSON pointers.
    ignore: Vec<String>,
    redact: bool,
}

/// A JSON pointer that [`DiffOptions::ignore`] cannot take.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid JSON pointer {pointer:?}: {reason} (a pointer looks like /status or /metadata/labels/app)"
)]
pub struct DiffError {
    /// The pointer as given.
    pub pointer: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl DiffOptions {
    /// Compare everything but the paths always left out; show values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves out `pointer` (an RFC 6901 JSON pointer such as `/status` or
    /// `/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration`) and
    /// everything under it.
    pub fn ignore(mut self, pointer: &str) -> Result<Self, DiffError> {
        let segments = parse_pointer(pointer)?;
        let canonical: String = segments
            .iter()
            .map(|s| format!("/{}", escape_segment(s)))
            .collect();
        if !self.ignore.contains(&canonical) {
            self.ignore.push(canonical);
        }
        Ok(self)
    }

    /// Shows `"<redacted>"` for every value and old value.
    pub fn redact(mut self, redact: bool) -> Self {
        self.redact = redact;
        self
    }

    /// Whether values are redacted.
    pub fn is_redacted(&self) -> bool {
        self.redact
    }

    /// The ignored paths given to [`ignore`](Self::ignore), canonically escaped.
    pub fn ignored(&self) -> impl Iterator<Item = &str> {
        self.ignore.iter().map(String::as_str)
    }

    fn ignores(&self, path: &str) -> bool {
        ALWAYS_IGNORED
            .iter()
            .copied()
            .chain(self.ignored())
            .any(|ignored| under(path, ignored))
    }

    /// Whether some ignored path lies strictly below `path`.
    fn ignores_below(&self, path: &str) -> bool {
        ALWAYS_IGNORED
            .iter()
            .copied()
            .chain(self.ignored())
            .any(|ignored| ignored.len() > path.len() && under(ignored, path))
    }
}

/// Whether `path` is `prefix` or lies below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The unescaped reference tokens of an RFC 6901 pointer.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, DiffError> {
    let error = |reason| DiffError {
        pointer: pointer.to_owned(),
        reason,
    };
    if pointer.is_empty() {
        return Err(error("it would ignore the whole object"));
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(error("it must start with /"));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(error("~ must be followed by 0 or 1")),
                    },
                    c => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// Escapes one reference token for a JSON pointer (RFC 6901 §3: `~` → `~0`, `/` → `~1`).
pub fn escape_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains(['~', '/']) {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// A JSON pointer as people read paths: `/spec/template/spec/containers/0/image` →
/// `spec.template.spec.containers[0].image`, `/metadata/labels/app.kubernetes.io~1name` →
/// `metadata.labels["app.kubernetes.io/name"]`. A segment of digits is shown as an index.
pub fn dotted(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return if path.is_empty() {
            ".".to_owned()
        } else {
            path.to_owned()
        };
    };
    let mut out = String::with_capacity(path.len() + 4);
    for token in rest.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        let plain = !token.is_empty()
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !token.starts_with('-');
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&token);
            out.push(']');
        } else if plain {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        } else {
            out.push('[');
            out.push_str(&Value::String(token).to_string());
            out.push(']');
        }
    }
    out
}

/// An operation's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A member or element that was not there.
    Add,
    /// A member that is gone.
    Remove,
    /// A value that changed.
    Replace,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
        })
    }
}

/// One operation of a diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffOp {
    /// What happened at `path`.
    pub op: Op,
    /// Where, as an RFC 6901 JSON pointer.
    pub path: String,
    /// The new value (`add`, `replace`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
    /// The old value (`replace`, `remove`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub old: Option<Value>,
}

/// A member that is there is `Some`, even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The operations that turn `old` into `new`, with the rules of the [module](self).
pub fn diff(old: &Value, new: &Value, options: &DiffOptions) -> Vec<DiffOp> {
    let mut out = Vec::new();
    write_diff(old, new, options, &mut out);
    parse_ops(std::str::from_utf8(&out).unwrap_or("[]")).unwrap_or_default()
}

/// Parses a diff as faro writes it (the `diff` member of an event line).
pub fn parse_ops(json: &str) -> Result<Vec<DiffOp>, serde_json::Error> {
    serde_json::from_str(json)
}

/// Appends the diff from `old` to `new` to `out` as a compact JSON array: exactly what an
/// event line carries as `diff`.
pub fn write_diff(old: &Value, new: &Value, options: &DiffOptions, out: &mut Vec<u8>) {
    Writer::start(options, out).compare(old, new);
    out.push(b']');
}

/// [`write_diff`] for two JSON texts, parsing only what differs: members whose text is the
/// same in both are skipped unparsed (a server serializes an unchanged member to the same
/// bytes), so the cost follows the size of the change more than the size of the object. The
/// result is the same as [`write_diff`] on the parsed values.
pub fn write_diff_str(
    old: &str,
    new: &str,
    options: &DiffOptions,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    if let Err(e) = Writer::start(options, out).compare_raw(old.trim(), new.trim()) {
        out.truncate(start);
        return Err(e);
    }
    out.push(b']');
    Ok(())
}

struct Writer<'a> {
    options: &'a DiffOptions,
    out: &'a mut Vec<u8>,
    /// The escaped pointer of the value being compared.
    path: String,
    first: bool,
}

impl<'a> Writer<'a> {
    /// A writer that has opened the array in `out`.
    fn start(options: &'a DiffOptions, out: &'a mut Vec<u8>) -> Writer<'a> {
        out.push(b'[');
        Writer {
            options,
            out,
            path: String::new(),
            first: true,
        }
    }

    fn compare(&mut self, old: &Value, new: &Value) {
        match (old, new) {
            (Value::Object(old), Value::Object(new)) => {
                for (key, before) in old {
                    let len = self.enter(key);
                    if !self.options.ignores(&self.path) {
                        match new.get(key) {
                            Some(after) => self.compare(before, after),
                            None => self.op(Op::Remove, None, Some(before)),
                        }
                    }
                    self.path.truncate(len);
                }
                for (key, after) in new {
                    if old.contains_key(key) {
                        continue;
                    }
                    let len = self.enter(key);
                    if !self.options.ignores(&self.path) {
                        self.op(Op::Add, Some(after), None);
                    }
                    self.path.truncate(len);
                }
            }
            (Value::Array(old), Value::Array(new)) if old.len() == new.len() => {
                for (index, (before, after)) in old.iter().zip(new).enumerate() {
                    let len = self.path.len();
                    push_index(&mut self.path, index);
                    if !self.options.ignores(&self.path) {
                        self.compare(before, after);
                    }
                    self.path.truncate(len);
                }
            }
            (old, new) if old == new => {}
            // Ignored members below a replaced value are left out of both sides; if that
            // leaves them equal, nothing that is compared changed.
            (old, new) => {
                if self.options.ignores_below(&self.path) {
                    let (old, new) = (self.without_ignored(old), self.without_ignored(new));
                    if old != new {
                        self.op(Op::Replace, Some(&new), Some(&old));
                    }
                } else {
                    self.op(Op::Replace, Some(new), Some(old));
                }
            }
        }
    }

    /// Compares two JSON texts (each one value, without surrounding whitespace).
    fn compare_raw(&mut self, o: &str, n: &str) -> Result<(), serde_json::Error> {
        if o == n {
            return Ok(());
        }
        match (o.as_bytes().first(), n.as_bytes().first()) {
            (Some(b'{'), Some(b'{')) => {
                // Borrowed keys fail on escaped ones: then compare this level as values.
                let (Ok(old), Ok(new)) = (
                    serde_json::from_str::<BTreeMap<&str, &RawValue>>(o),
                    serde_json::from_str::<BTreeMap<&str, &RawValue>>(n),
                ) else {
                    return self.compare_parsed(o, n);
                };
                for (key, before) in &old {
                    let len = self.enter(key);
                    if !self.options.ignores(&self.path) {
                        match new.get(key) {
                            Some(after) => self.compare_raw(before.get(), after.get())?,
                            None => {
                                let before: Value = serde_json::from_str(before.get())?;
                                self.op(Op::Remove, None, Some(&before));
                            }
                        }
                    }
                    self.path.truncate(len);
                }
                for (key, after) in &new {
                    if old.contains_key(key) {
                        continue;
                    }
                    let len = self.enter(key);
                    if !self.options.ignores(&self.path) {
                        let after: Value = serde_json::from_str(after.get())?;
                        self.op(Op::Add, Some(&after), None);
                    }
                    self.path.truncate(len);
                }
                Ok(())
            }
            (Some(b'['), Some(b'[')) => {
                let old: Vec<&RawValue> = serde_json::from_str(o)?;
                let new: Vec<&RawValue> = serde_json::from_str(n)?;
                if old.len() != new.len() {
                    return self.compare_parsed(o, n);
                }
                for (index, (before, after)) in old.iter().zip(&new).enumerate() {
                    let len = self.path.len();
                    push_index(&mut self.path, index);
                    if !self.options.ignores(&self.path) {
                        self.compare_raw(before.get(), after.get())?;
                    }
                    self.path.truncate(len);
                }
                Ok(())
            }
            _ => self.compare_parsed(o, n),
        }
    }

    fn compare_parsed(&mut self, old: &str, new: &str) -> Result<(), serde_json::Error> {
        let old: Value = serde_json::from_str(old)?;
        let new: Value = serde_json::from_str(new)?;
        self.compare(&old, &new);
        Ok(())
    }

    /// Appends `/key` to the path; returns the length to truncate back to.
    fn enter(&mut self, key: &str) -> usize {
        let len = self.path.len();
        self.path.push('/');
        self.path.push_str(&escape_segment(key));
        len
    }

    fn op(&mut self, op: Op, value: Option<&Value>, old: Option<&Value>) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.extend_from_slice(b"{\"op\":\"");
        self.out.extend_from_slice(op.to_string().as_bytes());
        self.out.extend_from_slice(b"\",\"path\":");
        let _ = serde_json::to_writer(&mut *self.out, self.path.as_str());
        if let Some(value) = value {
            self.out.extend_from_slice(b",\"value\":");
            self.value(value);
        }
        if let Some(old) = old {
            self.out.extend_from_slice(b",\"old\":");
            self.value(old);
        }
        self.out.push(b'}');
    }

    fn value(&mut self, value: &Value) {
        if self.options.redact {
            self.out.extend_from_slice(b"\"<redacted>\"");
        } else if self.options.ignores_below(&self.path) {
            let stripped = self.without_ignored(value);
            let _ = serde_json::to_writer(&mut *self.out, &stripped);
        } else {
            let _ = serde_json::to_writer(&mut *self.out, value);
        }
    }

    /// `value` (found at the current path) without the ignored members below it.
    fn without_ignored(&self, value: &Value) -> Value {
        let mut value = value.clone();
        let mut path = self.path.clone();
        strip(&mut value, &mut path, self.options);
        value
    }
}

/// Removes from `value` (found at `path`) every member under an ignored path.
fn strip(value: &mut Value, path: &mut String, options: &DiffOptions) {
    if !options.ignores_below(path) {
        return;
    }
    match value {
        Value::Object(map) => {
            map.retain(|key, child| {
                let len = path.len();
                path.push('/');
                path.push_str(&escape_segment(key));
                let keep = !options.ignores(path);
                if keep {
                    strip(child, path, options);
                }
                path.truncate(len);
                keep
            });
        }
        Value::Array(items) => {
            // An element cannot be taken out without shifting the others; its ignored members
            // can.
            for (index, child) in items.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, index);
                if options.ignores(path) {
                    *child = Value::Null;
                } else {
                    strip(child, path, options);
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Appends `/index` to a pointer.
fn push_index(path: &mut String, index: usize) {
    use std::fmt::Write as _;
    let _ = write!(path, "/{index}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(old: Value, new: Value, options: &DiffOptions) -> Value {
        let mut out = Vec::new();
        write_diff(&old, &new, options, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn replace_add_remove_with_old_values() {
        let old = json!({"spec": {"replicas": 2, "paused": true}, "metadata": {"name": "a"}});
        let new =
            json!({"spec": {"replicas": 3, "strategy": "Recreate"}, "metadata": {"name": "a"}});
        assert_eq!(
            ops(old, new, &DiffOptions::new()),
            json!([
                {"op": "remove", "path": "/spec/paused", "old": true},
                {"op": "replace", "path": "/spec/replicas", "value": 3, "old": 2},
                {"op": "add", "path": "/spec/strategy", "value": "Recreate"},
            ])
        );
    }

    #[test]
    fn arrays_element_wise_when_lengths_match_else_whole() {
        let old = json!({"c": [{"image": "a:1"}, {"image": "b:1"}]});
        let new = json!({"c": [{"image": "a:1"}, {"image": "b:2"}]});
        assert_eq!(
            ops(old.clone(), new, &DiffOptions::new()),
            json!([{"op": "replace", "path": "/c/1/image", "value": "b:2", "old": "b:1"}])
        );
        let longer = json!({"c": [{"image": "a:1"}, {"image": "b:1"}, {"image": "c:1"}]});
        assert_eq!(
            ops(old.clone(), longer.clone(), &DiffOptions::new()),
            json!([{"op": "replace", "path": "/c", "value": longer["c"], "old": old["c"]}])
        );
    }

    #[test]
    fn always_ignored_and_user_ignored_paths() {
        let old = json!({"metadata": {"resourceVersion": "1", "generation": 1, "managedFields": [],
            "labels": {"a": "1"}}, "status": {"ready": 1}});
        let new = json!({"metadata": {"resourceVersion": "2", "generation": 2, "managedFields": [{}],
            "labels": {"a": "1"}}, "status": {"ready": 2}});
        let only_status = json!([{"op": "replace", "path": "/status/ready", "value": 2, "old": 1}]);
        assert_eq!(
            ops(old.clone(), new.clone(), &DiffOptions::new()),
            only_status
        );
        let options = DiffOptions::new().ignore("/status").unwrap();
        assert_eq!(ops(old.clone(), new.clone(), &options), json!([]));
        // A prefix on whole segments only: /stat does not ignore /status.
        let options = DiffOptions::new().ignore("/stat").unwrap();
        assert_eq!(ops(old, new, &options), only_status);
    }

    #[test]
    fn ignored_members_are_left_out_of_added_values() {
        let options = DiffOptions::new()
            .ignore("/metadata/annotations/last~1applied")
            .unwrap();
        let old = json!({"metadata": {"name": "a"}});
        let new =
            json!({"metadata": {"name": "a", "annotations": {"last/applied": "{}", "x": "1"}}});
        assert_eq!(
            ops(old, new, &options),
            json!([{"op": "add", "path": "/metadata/annotations", "value": {"x": "1"}}])
        );
        // A replaced value that differs only below an ignored path is no change.
        let old = json!({"a": [{"x": 1, "t": 1}]});
        let new = json!({"a": [{"x": 1, "t": 2}, {"x": 2}]});
        let options = DiffOptions::new().ignore("/a/0/t").unwrap();
        assert_eq!(
            ops(old, new, &options),
            json!([{"op": "replace", "path": "/a", "value": [{"x": 1}, {"x": 2}], "old": [{"x": 1}]}])
        );
    }

    #[test]
    fn pointers_are_escaped_and_redaction_hides_values() {
        let old = json!({"metadata": {"labels": {"app.kubernetes.io/name": "a", "x~y": "1"}}});
        let new = json!({"metadata": {"labels": {"app.kubernetes.io/name": "b"}}});
        let options = DiffOptions::new().redact(true);
        assert_eq!(
            ops(old, new, &options),
            json!([
                {"op": "replace", "path": "/metadata/labels/app.kubernetes.io~1name",
                 "value": "<redacted>", "old": "<redacted>"},
                {"op": "remove", "path": "/metadata/labels/x~0y", "old": "<redacted>"},
            ])
        );
    }

    #[test]
    fn bad_pointers_are_refused() {
        for bad in ["", "status", "/a~2", "/a~"] {
            let err = DiffOptions::new().ignore(bad).unwrap_err();
            assert_eq!(err.pointer, bad);
        }
        let options = DiffOptions::new().ignore("/a~1b/c~0d").unwrap();
        assert_eq!(options.ignored().collect::<Vec<_>>(), ["/a~1b/c~0d"]);
    }

    #[test]
    fn dotted_paths_read_like_kubectl() {
        assert_eq!(dotted("/spec/replicas"), "spec.replicas");
        assert_eq!(
            dotted("/spec/template/spec/containers/0/image"),
            "spec.template.spec.containers[0].image"
        );
        assert_eq!(
            dotted("/metadata/labels/app.kubernetes.io~1name"),
            r#"metadata.labels["app.kubernetes.io/name"]"#
        );
        assert_eq!(dotted("/0"), "[0]");
        assert_eq!(dotted(""), ".");
    }

    #[test]
    fn diff_and_parse_ops_agree_with_write_diff() {
        let old = json!({"a": 1, "b": {"c": [1, 2]}});
        let new = json!({"a": 2, "b": {"c": [1, 3]}, "d": null});
        let parsed = diff(&old, &new, &DiffOptions::new());
        assert_eq!(
            parsed,
            vec![
                DiffOp {
                    op: Op::Replace,
                    path: "/a".into(),
                    value: Some(json!(2)),
                    old: Some(json!(1))
                },
                DiffOp {
                    op: Op::Replace,
                    path: "/b/c/1".into(),
                    value: Some(json!(3)),
                    old: Some(json!(2))
                },
                DiffOp {
                    op: Op::Add,
                    path: "/d".into(),
                    value: Some(Value::Null),
                    old: None
                },
            ]
        );
    }
}

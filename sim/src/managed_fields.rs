//! `metadata.managedFields` as kube-apiserver's field manager keeps them
//! (`k8s.io/apimachinery/pkg/util/managedfields/internal`, on top of structured-merge-diff;
//! the field sets themselves are computed in [`crate::fieldset`]).
//!
//! - **Update** (create, PUT, and the json, merge and strategic-merge patches): the writer comes
//!   to own what it added or changed (`Added ∪ Modified`); every other entry loses those fields
//!   and every entry loses what was removed; an entry left empty is dropped. The writer's entry
//!   for the same (manager, operation, apiVersion, subresource) is merged into, and its `time`
//!   advances only when the write gave it something.
//! - **Apply** (server-side apply): the applier owns exactly its configuration's fields; fields
//!   it owned before and nobody owns any more are removed from the object; changing a field
//!   another manager owns is a 409 conflict unless `force=true`, which takes it over. The
//!   `kubectl` applier may take over fields its client-side apply (`last-applied-configuration`)
//!   still matches, and keeps that annotation in sync, as the apiserver's last-applied
//!   managers do.
//! - A manager is the `fieldManager` query parameter, else the User-Agent up to its first `/`
//!   (128 bytes at most, unprintable characters dropped).
//! - A request body's own `managedFields` replace the stored ones when they decode (`[]` or
//!   `[{}]` clear them); subresource writes and applies ignore them. At most 10 Update entries
//!   are kept: older ones merge into `ancient-changes`. Entries are sorted as the apiserver
//!   sorts them (operation, time, manager, apiVersion, subresource).

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::fieldset::{self, FieldSet, Path, Scope, Typing};
use crate::object::rfc3339_seconds;
use crate::registry::ResourceInfo;
use crate::status::ApiError;

/// Longest field manager name (`validation.FieldManagerMaxLength`).
pub const MAX_MANAGER_LEN: usize = 128;

/// The last-applied annotation of client-side apply.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Update entries kept before the oldest are merged (`DefaultMaxUpdateManagers`).
const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager older updates are merged into.
const ANCIENT: &str = "ancient-changes";

/// `Update` or `Apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply (sorts first, as "Apply" < "Update").
    Apply,
    /// Every other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who writes: the manager, the apiVersion the request used and its subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// Manager name.
    pub manager: String,
    /// `v1`, `apps/v1`, … (the main resource's version).
    pub api_version: String,
    /// `status`, `scale`, or None for the main resource.
    pub subresource: Option<String>,
}

impl Writer {
    /// A writer of the main resource of `info`.
    pub fn new(manager: &str, info: &ResourceInfo) -> Writer {
        Writer {
            manager: manager.to_string(),
            api_version: info.api_version(),
            subresource: None,
        }
    }

    /// The same writer through a subresource.
    pub fn through(mut self, subresource: Option<&str>) -> Writer {
        self.subresource = subresource.map(str::to_string);
        self
    }

    fn scope(&self, info: &ResourceInfo) -> Scope {
        match self.subresource.as_deref() {
            Some("status") => Scope::Status,
            Some("scale") => Scope::Scale,
            _ => Scope::Main {
                ignore_status: info.subresource("status").is_some(),
            },
        }
    }
}

/// How a store write treats managedFields.
#[derive(Debug, Clone, Copy)]
pub enum Manage<'a> {
    /// Record an Update by this writer.
    Update(&'a Writer),
    /// The object already carries its final managedFields (server-side apply).
    Given,
    /// A create whose managedFields are these, shared with the other objects of a bulk load
    /// (kept out of each object's `Value`, so a load costs no memory for them).
    Shared(&'a std::sync::Arc<Value>),
}

/// The typing of a resource's objects.
pub fn typing(info: &ResourceInfo) -> Typing {
    Typing {
        builtin: info.crd.is_none(),
    }
}

/// The field manager of a request: `fieldManager`, else derived from the User-Agent
/// (`managerOrUserAgent` / `prefixFromUserAgent` in the apiserver's handlers). `what` names
/// the options kind for errors (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
pub fn manager_name(
    field_manager: Option<&str>,
    user_agent: &str,
    what: &str,
) -> Result<String, ApiError> {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        let invalid = |detail: String| {
            ApiError::new(
                422,
                "Invalid",
                format!("{what}.meta.k8s.io \"\" is invalid: fieldManager: {detail}"),
            )
            .with_details(json!({"group": "meta.k8s.io", "kind": what, "causes": [
                {"reason": "FieldValueInvalid", "message": detail, "field": "fieldManager"}]}))
        };
        if m.len() > MAX_MANAGER_LEN {
            return Err(invalid(format!(
                "Too long: may not be more than {MAX_MANAGER_LEN} bytes"
            )));
        }
        if let Some((i, c)) = m.char_indices().find(|(_, c)| !is_printable(*c)) {
            return Err(invalid(format!(
                "Invalid value: {m:?}: invalid character {} (at position {i})",
                unicode_name(c)
            )));
        }
        return Ok(m.to_string());
    }
    let prefix = user_agent.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| is_printable(*c)) {
        if out.len() + c.len_utf8() > MAX_MANAGER_LEN {
            break;
        }
        out.push(c);
    }
    Ok(out)
}

/// Go's `unicode.IsPrint` for the characters that matter here: no control characters, and
/// no space but the ASCII one.
fn is_printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace())
}

fn unicode_name(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// One decoded managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Manager name.
    pub manager: String,
    /// Update or Apply.
    pub operation: Operation,
    /// apiVersion of the write.
    pub api_version: String,
    /// Subresource, `""` for the main resource.
    pub subresource: String,
    /// RFC 3339 time, if any.
    pub time: Option<String>,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    /// The identity the apiserver keys entries by (`BuildManagerIdentifier`): appliers are
    /// one entry whatever apiVersion they apply with.
    fn identity(&self) -> String {
        identity(
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
        )
    }

    fn is(&self, w: &Writer, op: Operation) -> bool {
        self.manager == w.manager
            && self.operation == op
            && (op == Operation::Apply || self.api_version == w.api_version)
            && self.subresource == w.subresource.as_deref().unwrap_or("")
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation.as_str()));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_json());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    /// How the apiserver names this manager in conflict messages (`printManager`).
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// The JSON identity of a manager, field order as `metav1.ManagedFieldsEntry`.
fn identity(manager: &str, op: Operation, api_version: &str, subresource: &str) -> String {
    let mut s = format!(
        "{{\"manager\":{},\"operation\":\"{}\"",
        json!(manager),
        op.as_str()
    );
    if op == Operation::Update && !api_version.is_empty() {
        s.push_str(&format!(",\"apiVersion\":{}", json!(api_version)));
    }
    if !subresource.is_empty() {
        s.push_str(&format!(",\"subresource\":{}", json!(subresource)));
    }
    s.push('}');
    s
}

/// Decodes `metadata.managedFields` (`DecodeManagedFields`): an error for a malformed entry.
pub fn decode(list: &Value) -> Result<Vec<Entry>, String> {
    let Some(items) = list.as_array() else {
        return Err("managedFields must be a list".into());
    };
    let mut out: Vec<Entry> = Vec::with_capacity(items.len());
    for it in items {
        let s = |k: &str| it.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if s("fieldsType") != "FieldsV1" {
            return Err(format!("invalid fieldsType {:?}", s("fieldsType")));
        }
        let operation = match s("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => {
                return Err(format!(
                    "operation must be `Apply` or `Update`, got {other:?}"
                ));
            }
        };
        let fields = FieldSet::from_json(it.get("fieldsV1").unwrap_or(&json!({})))?;
        let e = Entry {
            manager: s("manager"),
            operation,
            api_version: s("apiVersion"),
            subresource: s("subresource"),
            time: it.get("time").and_then(Value::as_str).map(str::to_string),
            fields,
        };
        if out.iter().any(|o| o.identity() == e.identity()) {
            return Err(format!("duplicate entry for manager {}", e.identity()));
        }
        out.push(e);
    }
    Ok(out)
}

/// Encodes entries in the apiserver's order; None when there are none.
pub fn encode(mut entries: Vec<Entry>) -> Option<Value> {
    sort_entries(&mut entries);
    encode_sorted(&entries)
}

/// Drops empty entries and sorts the rest as the apiserver does (operation, time, manager,
/// apiVersion, subresource).
pub fn sort_entries(entries: &mut Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    let secs = |e: &Entry| {
        e.time
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    if entries.len() > 1 {
        entries.sort_by_cached_key(|e| {
            (
                e.operation,
                secs(e),
                e.manager.clone(),
                e.api_version.clone(),
                e.subresource.clone(),
            )
        });
    }
}

/// Encodes entries [`sort_entries`] sorted; None when there are none.
pub fn encode_sorted(entries: &[Entry]) -> Option<Value> {
    if entries.is_empty() {
        return None;
    }
    Some(Value::Array(entries.iter().map(Entry::to_json).collect()))
}

fn stored_entries(obj: &Value) -> Vec<Entry> {
    decode_stored(obj.pointer("/metadata/managedFields"))
}

fn decode_stored(mf: Option<&Value>) -> Vec<Entry> {
    mf.map(|m| decode(m).unwrap_or_default())
        .unwrap_or_default()
}

/// The entries an Update starts from (`decodeManagedFields`): the request's own ones when
/// it sets them (reset by `[]` or `[{}]`), else the stored ones (`old`); subresources always
/// use the stored ones.
/// The second value tells whether they are not the stored ones.
fn starting_entries(old: Option<&Value>, new: &Value, subresource: bool) -> (Vec<Entry>, bool) {
    let given = if subresource {
        None
    } else {
        new.pointer("/metadata/managedFields")
    };
    match given {
        Some(Value::Array(a)) if a.is_empty() => (Vec::new(), old.is_some()),
        Some(Value::Array(a)) if a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty) => {
            (Vec::new(), true)
        }
        Some(g) if old == Some(g) => (decode_stored(old), false),
        Some(g) => match decode(g) {
            Ok(e) if !e.is_empty() => (e, true),
            _ => (decode_stored(old), false),
        },
        None => (decode_stored(old), false),
    }
}

fn set_entries(obj: &mut Value, entries: Vec<Entry>) {
    let meta = crate::object::meta_mut(obj);
    match encode(entries) {
        Some(v) => meta.insert("managedFields".into(), v),
        None => meta.remove("managedFields"),
    };
}

/// The current time as managedFields write it.
pub fn now() -> String {
    rfc3339_seconds(SystemTime::now())
}

/// What recording an Update came to.
#[derive(Debug, PartialEq)]
pub enum Recorded {
    /// The stored managedFields stay exactly as they are.
    Unchanged,
    /// The new entries (in no particular order; [`encode`] sorts them).
    Entries(Vec<Entry>),
}

/// Records an Update by `w` that turns `old` (None: a create; else the old object and its
/// managedFields) into `new`, writing the new entries into `new`.
pub fn record_update(
    info: &ResourceInfo,
    old: Option<(&Value, Option<&Value>)>,
    new: &mut Value,
    w: &Writer,
) {
    match update_entries(info, old, new, w) {
        Recorded::Unchanged => {
            let kept = old.and_then(|(_, mf)| mf).cloned();
            let meta = crate::object::meta_mut(new);
            match kept {
                Some(mf) => meta.insert("managedFields".into(), mf),
                None => meta.remove("managedFields"),
            };
        }
        Recorded::Entries(e) => set_entries(new, e),
    }
}

/// The managedFields entries after an Update by `w` from `old` (see [`record_update`]) to
/// `new`, or [`Recorded::Unchanged`] when they are the stored ones as they are (most writes
/// of a manager that already owns what it changes, within the same second).
pub fn update_entries(
    info: &ResourceInfo,
    old: Option<(&Value, Option<&Value>)>,
    new: &Value,
    w: &Writer,
) -> Recorded {
    let typing = typing(info);
    let skeleton = fieldset::skeleton(&info.kind, typing);
    let (base, (mut entries, given)) = match old {
        Some((o, mf)) => (o, starting_entries(mf, new, w.subresource.is_some())),
        None => (skeleton, starting_entries(None, new, false)),
    };
    let cmp = fieldset::compare(base, new, skeleton, typing, w.scope(info));
    let changed = cmp.changed();
    let t = (!changed.is_empty()).then(now);
    let mut dirty = given || old.is_none();
    let mut mine = false;
    for e in entries.iter_mut() {
        let is_writer = e.is(w, Operation::Update);
        if is_writer {
            mine = true;
            if t.is_some() && (e.time != t || !e.fields.contains(&changed)) {
                dirty = true;
            }
        } else if e.fields.overlaps(&changed) {
            dirty = true;
        }
        if e.fields.overlaps(&cmp.removed) {
            dirty = true;
        }
        e.fields.subtract(&changed);
        e.fields.subtract(&cmp.removed);
        if is_writer && t.is_some() {
            e.fields.union_with(&changed);
            e.time = t.clone();
        }
    }
    if let Some(t) = t
        && !mine
    {
        dirty = true;
        entries.push(Entry {
            manager: w.manager.clone(),
            operation: Operation::Update,
            api_version: w.api_version.clone(),
            subresource: w.subresource.clone().unwrap_or_default(),
            time: Some(t),
            fields: changed,
        });
    }
    entries.retain(|e| !e.fields.is_empty());
    if w.subresource.as_deref() == Some("scale") {
        // ScaleHandler.ToParent takes a scale entry's time from the parent's entries, where
        // its key (with apiVersion autoscaling/v1) never matches: scale entries carry none.
        for e in entries.iter_mut().filter(|e| e.subresource == "scale") {
            dirty |= e.time.take().is_some();
        }
    }
    dirty |= cap_updates(&mut entries);
    if dirty {
        Recorded::Entries(entries)
    } else {
        Recorded::Unchanged
    }
}

/// Merges the oldest Update entries into `ancient-changes` (one per apiVersion) while there
/// are more than ten (`capManagersManager`). Returns whether it merged any.
fn cap_updates(entries: &mut Vec<Entry>) -> bool {
    let updates = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .count();
    if updates <= MAX_UPDATE_MANAGERS {
        return false;
    }
    let key = |e: &Entry| {
        let t = e
            .time
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        (t, e.identity())
    };
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|i| entries[*i].operation == Operation::Update)
        .collect();
    order.sort_by_key(|i| key(&entries[*i]));
    let mut excess = updates - MAX_UPDATE_MANAGERS;
    let mut first_of_version: Vec<(String, usize)> = Vec::new();
    let mut dead = vec![false; entries.len()];
    for i in order {
        if excess == 0 {
            break;
        }
        let v = entries[i].api_version.clone();
        match first_of_version
            .iter()
            .find(|(fv, _)| *fv == v)
            .map(|(_, j)| *j)
        {
            Some(j) => {
                let fields = entries[i].fields.clone();
                let time = entries[i].time.clone();
                let bucket = &mut entries[j];
                bucket.manager = ANCIENT.into();
                bucket.subresource = String::new();
                bucket.fields.union_with(&fields);
                bucket.time = time;
                dead[i] = true;
                excess -= 1;
            }
            None => first_of_version.push((v, i)),
        }
    }
    let mut i = 0;
    entries.retain(|_| {
        i += 1;
        !dead[i - 1]
    });
    true
}

/// One field owned by another manager that an apply would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The owning entry, as printed (`"mgr" using v1`).
    pub manager: String,
    identity: String,
    /// The field path.
    pub path: Path,
}

/// The 409 of conflicting applies (`NewConflictError`).
pub fn conflict_error(mut conflicts: Vec<Conflict>) -> ApiError {
    conflicts.sort_by(|a, b| (&a.identity, &a.path).cmp(&(&b.identity, &b.path)));
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].manager,
            fieldset::path_string(&conflicts[0].path)
        )
    } else {
        let mut lines = Vec::new();
        let mut last: Option<&str> = None;
        for c in &conflicts {
            if last != Some(c.identity.as_str()) {
                lines.push(format!("conflicts with {}:", c.manager));
                last = Some(c.identity.as_str());
            }
            lines.push(format!("- {}", fieldset::path_string(&c.path)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict",
                "message": format!("conflict with {}", c.manager),
                "field": fieldset::path_string(&c.path)})
        })
        .collect();
    ApiError::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
}

/// The result of a server-side apply: the object to store (with its managedFields).
#[derive(Debug)]
pub struct Applied {
    /// The merged, pruned object.
    pub object: Value,
}

/// Server-side apply of `config` by `w` to `live` (None: the object does not exist yet).
/// The config must already be checked (an object, no managedFields, the right apiVersion).
pub fn apply(
    info: &ResourceInfo,
    live: Option<&Value>,
    config: &Value,
    w: &Writer,
    force: bool,
) -> Result<Applied, ApiError> {
    let kubectl = w.manager == "kubectl" && w.subresource.is_none();
    let mut applied = match apply_once(info, live, config, w, force) {
        Err(conflicts) if !force && kubectl => {
            // lastAppliedManager: kubectl may take over what its client-side apply still owns.
            let allowed = live
                .map(|l| allowed_from_last_applied(info, l))
                .unwrap_or_default();
            let left: Vec<Conflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.has(&c.path))
                .collect();
            if !left.is_empty() {
                return Err(conflict_error(left));
            }
            apply_once(info, live, config, w, true).map_err(conflict_error)?
        }
        other => other.map_err(conflict_error)?,
    };
    if kubectl {
        sync_last_applied(&mut applied.object, config);
    }
    Ok(applied)
}

fn apply_once(
    info: &ResourceInfo,
    live: Option<&Value>,
    config: &Value,
    w: &Writer,
    force: bool,
) -> Result<Applied, Vec<Conflict>> {
    let typing = typing(info);
    let scope = w.scope(info);
    // A create compares against the kind's zero value but merges into nothing.
    let skeleton = fieldset::skeleton(&info.kind, typing);
    let (base, mut merged) = match live {
        Some(l) => {
            let mut b = l.clone();
            crate::object::meta_mut(&mut b).remove("managedFields");
            (b.clone(), b)
        }
        None => (skeleton.clone(), json!({})),
    };
    let mut entries = live.map(stored_entries).unwrap_or_default();
    fieldset::merge(&mut merged, config, typing);
    let set = fieldset::applied_set(config, typing, scope);
    let previous = entries
        .iter()
        .position(|e| e.is(w, Operation::Apply))
        .map(|i| entries.remove(i));
    let mut mine = Entry {
        manager: w.manager.clone(),
        operation: Operation::Apply,
        api_version: w.api_version.clone(),
        subresource: w.subresource.clone().unwrap_or_default(),
        time: previous.as_ref().and_then(|p| p.time.clone()),
        fields: set,
    };
    if let Some(last) = &previous {
        let mut owned = mine.fields.clone();
        for e in &entries {
            owned.union_with(&e.fields);
        }
        prune(&mut merged, &last.fields.difference(&owned), &owned);
    }
    let cmp = fieldset::compare(&base, &merged, skeleton, typing, scope);
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for e in &entries {
        for path in e.fields.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.printed(),
                identity: e.identity(),
                path,
            });
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    for e in entries.iter_mut() {
        e.fields.subtract(&changed);
        e.fields.subtract(&cmp.removed);
    }
    if merged != base {
        mine.time = Some(now());
    }
    entries.push(mine);
    entries.retain(|e| !e.fields.is_empty());
    cap_updates(&mut entries);
    set_entries(&mut merged, entries);
    Ok(Applied { object: merged })
}

/// Removes from `obj` the fields in `gone` (owned before by the applier, by nobody now),
/// then the maps and lists that emptied and that nobody owns.
fn prune(obj: &mut Value, gone: &FieldSet, owned: &FieldSet) {
    let mut paths = gone.paths();
    // Deepest first, so an item's fields go before the item.
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in paths {
        if owned.touches(&p) || !fieldset::remove_path(obj, &p) {
            continue;
        }
        let mut parent = p.clone();
        parent.pop();
        let metadata = [fieldset::field("metadata")];
        while !parent.is_empty() && parent != metadata && !owned.touches(&parent) {
            let empty = fieldset::value_at_mut(obj, &parent).is_some_and(|v| match v {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            });
            if !empty || !fieldset::remove_path(obj, &parent) {
                break;
            }
            parent.pop();
        }
    }
}

/// The fields of the last-applied annotation that the live object still holds with the same
/// values (`allowedConflictsFromLastApplied`).
fn allowed_from_last_applied(info: &ResourceInfo, live: &Value) -> FieldSet {
    let Some(raw) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
    else {
        return FieldSet::new();
    };
    let Ok(last) = serde_json::from_str::<Value>(raw) else {
        return FieldSet::new();
    };
    if last.get("apiVersion").and_then(Value::as_str) != Some(info.api_version().as_str()) {
        return FieldSet::new();
    }
    let typing = typing(info);
    let scope = Scope::Main {
        ignore_status: false,
    };
    let set = fieldset::applied_set(&last, typing, scope);
    let cmp = fieldset::compare(
        &last,
        live,
        fieldset::skeleton(&info.kind, typing),
        typing,
        scope,
    );
    set.difference(&cmp.modified)
        .difference(&cmp.added)
        .difference(&cmp.removed)
}

/// Keeps an existing last-applied annotation in sync with what `kubectl` applied
/// (`lastAppliedUpdater`).
fn sync_last_applied(obj: &mut Value, config: &Value) {
    let has = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .is_some();
    if !has {
        return;
    }
    let mut c = config.clone();
    if let Some(a) = c
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    let text = format!("{c}\n");
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(LAST_APPLIED.into(), json!(text));
    }
}

/// Whether two managedFields lists differ at most in their timestamps (the store then keeps
/// the old ones, as the apiserver's `IgnoreManagedFieldsTimestampsTransformer` does, so that
/// a write changing nothing else stays a no-op).
pub fn equal_ignoring_times(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_array(), b.as_array()) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| match (x.as_object(), y.as_object()) {
                (Some(x), Some(y)) => {
                    x.iter()
                        .filter(|(k, _)| *k != "time")
                        .all(|(k, v)| y.get(k) == Some(v))
                        && y.keys().filter(|k| *k != "time").count()
                            == x.keys().filter(|k| *k != "time").count()
                }
                _ => x == y,
            })
}

/// The managedFields of an object `kube-sim`'s bulk writers create: one Update entry owning
/// the object's fields, computed once and shared by every object of a batch.
pub fn bulk_entry(info: &ResourceInfo, template: &Value, manager: &str) -> Value {
    let mut obj = template.clone();
    record_update(info, None, &mut obj, &Writer::new(manager, info));
    obj.pointer("/metadata/managedFields")
        .cloned()
        .unwrap_or_else(|| json!([]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::registry::Registry;

    fn info(group: &str, version: &str, plural: &str) -> std::sync::Arc<ResourceInfo> {
        Registry::from_catalog(Catalog::Vanilla.lists())
            .lookup(group, version, plural)
            .expect("served")
    }

    /// An Update from `old` (its managedFields inline) to `new`.
    fn upd(info: &ResourceInfo, old: &Value, new: &mut Value, w: &Writer) {
        record_update(
            info,
            Some((old, old.pointer("/metadata/managedFields"))),
            new,
            w,
        );
    }

    fn fields(obj: &Value, manager: &str) -> Value {
        obj["metadata"]["managedFields"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["manager"] == manager))
            .map(|e| e["fieldsV1"].clone())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn manager_names_come_from_the_query_or_the_user_agent() {
        assert_eq!(
            manager_name(
                None,
                "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
                "X"
            )
            .expect("ok"),
            "kubectl"
        );
        assert_eq!(
            manager_name(Some("kubectl-label"), "kubectl/v1", "X").expect("ok"),
            "kubectl-label"
        );
        assert_eq!(manager_name(Some(""), "", "X").expect("ok"), "");
        let long = "x".repeat(200);
        assert_eq!(manager_name(None, &long, "X").expect("ok").len(), 128);
        let e = manager_name(Some(&long), "", "PatchOptions").expect_err("too long");
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .starts_with("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long")
        );
        assert!(manager_name(Some("a\u{7}b"), "", "X").is_err());
    }

    #[test]
    fn updates_take_fields_from_other_managers_and_drop_emptied_entries() {
        let cm = info("", "v1", "configmaps");
        let mut obj = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        record_update(&cm, None, &mut obj, &Writer::new("creator", &cm));
        assert_eq!(
            fields(&obj, "creator"),
            json!({"f:data": {".": {}, "f:a": {}}})
        );
        let e = &obj["metadata"]["managedFields"][0];
        assert_eq!(
            (&e["operation"], &e["apiVersion"]),
            (&json!("Update"), &json!("v1"))
        );
        assert!(
            e["time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 20)
        );
        let mut next = obj.clone();
        next["data"]["a"] = json!("2");
        next["metadata"]["labels"] = json!({"x": "y"});
        upd(&cm, &obj, &mut next, &Writer::new("editor", &cm));
        assert_eq!(fields(&next, "creator"), json!({"f:data": {}}));
        assert_eq!(
            fields(&next, "editor"),
            json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
        );
        // Removing the label the editor owned and nothing else gives the editor nothing new:
        // it loses the label and keeps its time.
        let mut third = next.clone();
        third["metadata"]["labels"] = json!({});
        upd(&cm, &next, &mut third, &Writer::new("remover", &cm));
        assert_eq!(fields(&third, "remover"), Value::Null);
        assert_eq!(
            fields(&third, "editor"),
            json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {}}})
        );
        // Emptying data removes a from its owner; the map itself stays the creator's.
        let mut fourth = third.clone();
        fourth["data"] = json!({});
        upd(&cm, &third, &mut fourth, &Writer::new("x", &cm));
        assert_eq!(
            fields(&fourth, "editor"),
            json!({"f:metadata": {"f:labels": {}}})
        );
        assert_eq!(fields(&fourth, "creator"), json!({"f:data": {}}));
    }

    #[test]
    fn rewriting_an_owned_field_within_the_second_leaves_the_entries_as_stored() {
        let cm = info("", "v1", "configmaps");
        let w = Writer::new("churner", &cm);
        for _ in 0..3 {
            let mut obj = json!({"metadata": {"name": "c"}, "data": {"v": "1"}});
            record_update(&cm, None, &mut obj, &w);
            let mut next = obj.clone();
            next["data"]["v"] = json!("2");
            let mf = obj.pointer("/metadata/managedFields");
            match update_entries(&cm, Some((&obj, mf)), &next, &w) {
                Recorded::Unchanged => return,
                // The second ticked over between the two writes: the time advanced.
                Recorded::Entries(e) => assert_ne!(
                    e[0].time.as_deref(),
                    obj["metadata"]["managedFields"][0]["time"].as_str()
                ),
            }
        }
        panic!("three writes in a row all crossed a second boundary");
    }

    #[test]
    fn given_managed_fields_replace_and_empty_lists_reset() {
        let cm = info("", "v1", "configmaps");
        let mut obj = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        record_update(&cm, None, &mut obj, &Writer::new("one", &cm));
        let mut reset = obj.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        upd(&cm, &obj, &mut reset, &Writer::new("two", &cm));
        assert!(reset["metadata"].get("managedFields").is_none());
        let mut bad = obj.clone();
        bad["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Nope"}]);
        upd(&cm, &obj, &mut bad, &Writer::new("two", &cm));
        assert_eq!(
            bad["metadata"]["managedFields"],
            obj["metadata"]["managedFields"]
        );
    }

    #[test]
    fn applies_conflict_unless_forced_and_prune_what_they_stop_applying() {
        let cm = info("", "v1", "configmaps");
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let a = apply(&cm, None, &cfg, &Writer::new("one", &cm), false).expect("created");
        assert_eq!(
            fields(&a.object, "one"),
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        );
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "9"}});
        let err = apply(
            &cm,
            Some(&a.object),
            &other,
            &Writer::new("two", &cm),
            false,
        )
        .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.a"
        );
        let forced =
            apply(&cm, Some(&a.object), &other, &Writer::new("two", &cm), true).expect("forced");
        assert_eq!(
            fields(&forced.object, "one"),
            json!({"f:data": {"f:b": {}}})
        );
        assert_eq!(
            fields(&forced.object, "two"),
            json!({"f:data": {"f:a": {}}})
        );
        // Applying the same value as another manager shares the field.
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
        let shared = apply(
            &cm,
            Some(&forced.object),
            &same,
            &Writer::new("three", &cm),
            false,
        )
        .expect("shared");
        assert_eq!(
            fields(&shared.object, "three"),
            json!({"f:data": {"f:b": {}}})
        );
        let e3 = shared.object["metadata"]["managedFields"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["manager"] == "three").cloned())
            .expect("three");
        assert!(e3.get("time").is_none(), "a no-op apply sets no time");
        // "one" stops applying b: still owned by "three", so it stays.
        let none = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let kept = apply(
            &cm,
            Some(&shared.object),
            &none,
            &Writer::new("one", &cm),
            false,
        )
        .expect("kept");
        assert_eq!(kept.object["data"], json!({"a": "9", "b": "2"}));
        // "two" stops applying a: nobody else owns it, so it goes.
        let pruned = apply(
            &cm,
            Some(&kept.object),
            &none,
            &Writer::new("two", &cm),
            false,
        )
        .expect("pruned");
        assert_eq!(pruned.object["data"], json!({"b": "2"}));
    }

    #[test]
    fn kubectl_takes_over_what_its_client_side_apply_still_owns() {
        let cm = info("", "v1", "configmaps");
        let last =
            r#"{"apiVersion":"v1","data":{"a":"1"},"kind":"ConfigMap","metadata":{"name":"c"}}"#;
        let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {LAST_APPLIED: format!("{last}\n")}},
            "data": {"a": "1"}});
        record_update(
            &cm,
            None,
            &mut live,
            &Writer::new("kubectl-client-side-apply", &cm),
        );
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
        let a = apply(&cm, Some(&live), &cfg, &Writer::new("kubectl", &cm), false)
            .expect("upgrade without conflict");
        assert_eq!(a.object["data"]["a"], "2");
        assert_eq!(
            a.object["metadata"]["annotations"][LAST_APPLIED],
            format!("{cfg}\n")
        );
        assert!(apply(&cm, Some(&live), &cfg, &Writer::new("other", &cm), false).is_err());
    }

    #[test]
    fn scale_entries_have_no_time_and_status_entries_only_status() {
        let d = info("apps", "v1", "deployments");
        let mut obj =
            json!({"metadata": {"name": "w"}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
        record_update(&d, None, &mut obj, &Writer::new("c", &d));
        assert_eq!(fields(&obj, "c"), json!({"f:spec": {"f:replicas": {}}}));
        let mut scaled = obj.clone();
        scaled["spec"]["replicas"] = json!(3);
        upd(
            &d,
            &obj,
            &mut scaled,
            &Writer::new("kubectl", &d).through(Some("scale")),
        );
        let e = &scaled["metadata"]["managedFields"];
        assert_eq!(fields(&scaled, "c"), Value::Null, "replicas taken");
        assert_eq!(e[0]["subresource"], "scale");
        assert!(e[0].get("time").is_none());
        let mut st = scaled.clone();
        st["status"]["replicas"] = json!(3);
        upd(
            &d,
            &scaled,
            &mut st,
            &Writer::new("ctl", &d).through(Some("status")),
        );
        assert_eq!(fields(&st, "ctl"), json!({"f:status": {"f:replicas": {}}}));
    }

    #[test]
    fn more_than_ten_update_managers_merge_the_oldest() {
        let cm = info("", "v1", "configmaps");
        let mut entries: Vec<Entry> = (0..12)
            .map(|i| Entry {
                manager: format!("m{i:02}"),
                operation: Operation::Update,
                api_version: "v1".into(),
                subresource: String::new(),
                time: Some(format!("2026-01-01T00:00:{i:02}Z")),
                fields: FieldSet::from_json(&json!({"f:data": {format!("f:k{i}"): {}}}))
                    .expect("set"),
            })
            .collect();
        cap_updates(&mut entries);
        assert_eq!(entries.len(), 10);
        let ancient = entries
            .iter()
            .find(|e| e.manager == ANCIENT)
            .expect("bucket");
        assert_eq!(
            ancient.fields.to_json(),
            json!({"f:data": {"f:k0": {}, "f:k1": {}, "f:k2": {}}})
        );
        let _ = cm;
    }

    #[test]
    fn timestamps_alone_do_not_make_managed_fields_differ() {
        let a = json!([{"manager": "m", "time": "2020-01-01T00:00:00Z"}]);
        let b = json!([{"manager": "m", "time": "2030-01-01T00:00:00Z"}]);
        assert!(equal_ignoring_times(&a, &b));
        let other = json!([{"manager": "n", "time": "2020-01-01T00:00:00Z"}]);
        assert!(!equal_ignoring_times(&a, &other));
        assert!(!equal_ignoring_times(&a, &json!([])));
    }
}

//! The object store: every object keyed by (group, resource, namespace, name), one global
//! resourceVersion counter, the event history, and per-(resource, namespace) wake-ups for
//! watchers. All writes go through [`Tx`], which wakes the affected watchers when it ends.
//! Create, update and delete apply the apiserver's metadata rules here (uid, timestamps,
//! generation, resourceVersion, namespace existence and termination).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, MutexGuard};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::event::{Event, EventType};
use crate::history::{History, Read};
use crate::managed_fields::{self, Entry, Manage, Recorded};
use crate::object::{meta_mut, meta_str, new_uid, random_suffix, rfc3339_seconds, validate_name};
use crate::registry::{ResourceInfo, ResourceKey};
use crate::status::ApiError;

type Objects = BTreeMap<(String, String), Arc<Event>>;
type NotifyKey = (ResourceKey, Option<String>);

/// The shared store.
#[derive(Debug)]
pub struct Store {
    state: Mutex<StoreState>,
}

/// The store's state, reachable only through a [`Tx`].
#[derive(Debug)]
pub struct StoreState {
    rv: u64,
    compact_floor: u64,
    objects: HashMap<ResourceKey, Objects>,
    history: History,
    notifiers: HashMap<NotifyKey, watch::Sender<u64>>,
    dirty: HashSet<(ResourceKey, String)>,
    last_dirty: Option<(ResourceKey, String)>,
    finalizing: HashSet<String>,
    dry_run: bool,
    /// Recently stored managedFields values, shared by the events whose objects have equal
    /// ones (objects written in the same second by the same managers).
    managed_cache: VecDeque<Arc<Value>>,
    /// The entries those values were encoded from, so equal entries are not encoded again.
    encoded_cache: VecDeque<(Vec<Entry>, Arc<Value>)>,
}

/// How many distinct recent managedFields values are kept for sharing.
const MANAGED_CACHE: usize = 32;

/// Exclusive access to the store; wakes watchers of everything written when dropped.
pub struct Tx<'a> {
    guard: MutexGuard<'a, StoreState>,
}

impl Deref for Tx<'_> {
    type Target = StoreState;
    fn deref(&self) -> &StoreState {
        &self.guard
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut StoreState {
        &mut self.guard
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        self.guard.dry_run = false;
        self.guard.flush_notifications();
    }
}

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Debug, Default, Clone)]
pub struct Preconditions {
    /// Required uid.
    pub uid: Option<String>,
    /// Required resourceVersion.
    pub resource_version: Option<String>,
}

impl Store {
    /// An empty store retaining `history_limit` events.
    pub fn new(history_limit: usize) -> Store {
        Store {
            state: Mutex::new(StoreState {
                rv: 0,
                compact_floor: 0,
                objects: HashMap::new(),
                history: History::new(history_limit),
                notifiers: HashMap::new(),
                dirty: HashSet::new(),
                last_dirty: None,
                finalizing: HashSet::new(),
                dry_run: false,
                managed_cache: VecDeque::new(),
                encoded_cache: VecDeque::new(),
            }),
        }
    }

    /// Locks the store.
    pub fn tx(&self) -> Tx<'_> {
        Tx {
            guard: self.state.lock(),
        }
    }
}

impl StoreState {
    /// The current (latest committed) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest RV a watch may start from: `compact` moves it to the current RV, history
    /// trimming moves it to the newest trimmed event. Never above the current RV.
    pub fn floor(&self) -> u64 {
        self.compact_floor
            .max(self.history.trimmed_upto())
            .min(self.rv)
    }

    /// Moves the floor to the current RV (`/_sim/compact`).
    pub fn compact(&mut self) {
        self.compact_floor = self.rv;
    }

    /// The stored object (as its last write event).
    pub fn get(&self, key: &ResourceKey, ns: &str, name: &str) -> Option<&Arc<Event>> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Stored objects of a resource, in (namespace, name) order, optionally one namespace.
    pub fn list(&self, key: &ResourceKey, ns: Option<&str>) -> Vec<Arc<Event>> {
        let Some(objs) = self.objects.get(key) else {
            return Vec::new();
        };
        match ns {
            None => objs.values().cloned().collect(),
            Some(ns) => objs
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, e)| e.clone())
                .collect(),
        }
    }

    /// Every resource key that has stored objects.
    pub fn keys(&self) -> Vec<ResourceKey> {
        self.objects
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `status.phase` of a namespace, or None if it does not exist.
    pub fn namespace_phase(&self, ns: &str) -> Option<String> {
        let ev = self.get(&ResourceKey::new("", "namespaces"), "", ns)?;
        Some(
            ev.object
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active")
                .to_string(),
        )
    }

    /// Subscribes to wake-ups for writes to `key` (in one namespace, or any).
    pub fn subscribe(&mut self, key: &ResourceKey, ns: Option<&str>) -> watch::Receiver<u64> {
        let rv = self.rv;
        self.notifiers
            .entry((key.clone(), ns.map(str::to_string)))
            .or_insert_with(|| watch::channel(rv).0)
            .subscribe()
    }

    /// Events for a watcher after `cursor`.
    pub fn read(&self, key: &ResourceKey, ns: Option<&str>, cursor: u64, max: usize) -> Read {
        self.history.read(key, ns, cursor, max, self.rv)
    }

    /// Number of retained history events.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Retained events after `since`.
    pub fn history_since(&self, since: u64) -> Vec<Arc<Event>> {
        self.history.since(since)
    }

    fn flush_notifications(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let rv = self.rv;
        self.last_dirty = None;
        for (key, ns) in std::mem::take(&mut self.dirty) {
            for nk in [(key.clone(), None), (key.clone(), Some(ns))] {
                if let Some(tx) = self.notifiers.get(&nk) {
                    if tx.receiver_count() == 0 {
                        self.notifiers.remove(&nk);
                    } else {
                        tx.send_replace(rv);
                    }
                }
            }
        }
    }

    /// Makes the writes of this transaction dry runs (`dryRun=All`): validated and rendered,
    /// never stored. Reset when the transaction ends.
    pub fn set_dry_run(&mut self, on: bool) {
        self.dry_run = on;
    }

    /// Records a fully built event whose RV is the next one (used by bursts).
    pub fn commit_event(&mut self, ev: Event) -> Arc<Event> {
        self.commit_shared(Arc::new(ev))
    }

    /// Records an event built in advance; its RV must be the next one.
    pub fn commit_shared(&mut self, ev: Arc<Event>) -> Arc<Event> {
        self.rv = ev.rv;
        // Look up before cloning keys: bulk writes hit the same resource and namespace.
        if !self.objects.contains_key(&ev.key) {
            self.objects.insert(ev.key.clone(), Objects::new());
        }
        if let Some(objs) = self.objects.get_mut(&ev.key) {
            let id = (ev.namespace.clone(), ev.name.clone());
            match ev.etype {
                EventType::Deleted => {
                    objs.remove(&id);
                }
                _ => {
                    objs.insert(id, ev.clone());
                }
            }
        }
        if self
            .last_dirty
            .as_ref()
            .is_none_or(|(k, n)| *k != ev.key || *n != ev.namespace)
        {
            let d = (ev.key.clone(), ev.namespace.clone());
            self.dirty.insert(d.clone());
            self.last_dirty = Some(d);
        }
        self.history.push(ev.clone());
        ev
    }

    /// Commits a change at the next RV, stamping `metadata.resourceVersion`. `obj` carries
    /// its managedFields inline; `prev` is the event of the object before a MODIFIED.
    pub fn commit(
        &mut self,
        etype: EventType,
        key: ResourceKey,
        mut obj: Value,
        prev: Option<&Event>,
    ) -> Arc<Event> {
        let managed = self.take_managed(&mut obj);
        let (prev, prev_managed) = match prev {
            Some(p) => (Some(p.object.clone()), p.managed_fields.clone()),
            None => (None, None),
        };
        self.commit_with(etype, key, obj, managed, prev, prev_managed)
    }

    /// Takes `metadata.managedFields` out of `obj`, sharing an equal recent value.
    fn take_managed(&mut self, obj: &mut Value) -> Option<Arc<Value>> {
        let mf = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove("managedFields"))?;
        Some(self.share_managed(mf))
    }

    fn share_managed(&mut self, mf: Value) -> Arc<Value> {
        if let Some(hit) = self.managed_cache.iter().rev().find(|c| ***c == mf) {
            return hit.clone();
        }
        let a = Arc::new(mf);
        if self.managed_cache.len() == MANAGED_CACHE {
            self.managed_cache.pop_front();
        }
        self.managed_cache.push_back(a.clone());
        a
    }

    /// The shared managedFields value of `entries` (None when there are none).
    fn encode_shared(&mut self, mut entries: Vec<Entry>) -> Option<Arc<Value>> {
        managed_fields::sort_entries(&mut entries);
        if entries.is_empty() {
            return None;
        }
        if let Some((_, a)) = self.encoded_cache.iter().rev().find(|(e, _)| *e == entries) {
            return Some(a.clone());
        }
        let a = self.share_managed(managed_fields::encode_sorted(&entries)?);
        if self.encoded_cache.len() == MANAGED_CACHE {
            self.encoded_cache.pop_front();
        }
        self.encoded_cache.push_back((entries, a.clone()));
        Some(a)
    }

    /// The managedFields a store write ends with: recorded for an Update, else those the
    /// object carries (or shares). They are taken out of `obj`.
    fn managed_for(
        &mut self,
        info: &ResourceInfo,
        old: Option<&Event>,
        obj: &mut Value,
        manage: Manage<'_>,
    ) -> Option<Arc<Value>> {
        let out = match manage {
            Manage::Update(w) => {
                let before = old.map(|o| (&*o.object, o.managed_fields()));
                match managed_fields::update_entries(info, before, obj, w) {
                    Recorded::Unchanged => old.and_then(|o| match &o.managed_fields {
                        Some(a) => Some(a.clone()),
                        None => o.managed_fields().cloned().map(Arc::new),
                    }),
                    Recorded::Entries(e) => self.encode_shared(e),
                }
            }
            Manage::Shared(mf) => Some(mf.clone()),
            Manage::Given => return self.take_managed(obj),
        };
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        out
    }

    /// [`commit`](Self::commit) of an object whose managedFields are kept apart.
    fn commit_with(
        &mut self,
        etype: EventType,
        key: ResourceKey,
        mut obj: Value,
        managed: Option<Arc<Value>>,
        prev: Option<Arc<Value>>,
        prev_managed: Option<Arc<Value>>,
    ) -> Arc<Event> {
        let build = |rv, ns, name, uid, obj, prev| {
            Event::with_managed_fields(
                rv,
                etype,
                key.clone(),
                ns,
                name,
                uid,
                obj,
                managed.clone(),
                prev,
                prev_managed.clone(),
            )
        };
        let rv = self.rv + 1;
        if self.dry_run {
            // Server-side dry run: the reply shows the object as it would be, nothing is stored.
            let shown = match (&prev, etype) {
                (Some(p), _) => p.pointer("/metadata/resourceVersion").cloned(),
                (None, EventType::Deleted) => obj.pointer("/metadata/resourceVersion").cloned(),
                (None, _) => None,
            };
            let meta = meta_mut(&mut obj);
            match shown {
                Some(v) => meta.insert("resourceVersion".into(), v),
                None => meta.remove("resourceVersion"),
            };
            let ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
            let name = meta_str(&obj, "name").unwrap_or("").to_string();
            let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
            return Arc::new(build(self.rv, ns, name, uid, Arc::new(obj), prev));
        }
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
        let ev = build(rv, ns, name, uid, Arc::new(obj), prev);
        self.commit_event(ev)
    }

    /// Checks that a namespaced write may go into `ns` (exists, not terminating).
    pub fn check_namespace(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        match self.namespace_phase(ns).as_deref() {
            None => Err(ApiError::namespace_not_found(ns)),
            Some("Terminating") => Err(ApiError::namespace_terminating(
                &info.group,
                &info.plural,
                name,
                ns,
            )),
            Some(_) => Ok(()),
        }
    }

    /// Creates an object (POST semantics): 409 if it exists, 404/403 for a missing or
    /// terminating namespace, 422 for a bad name. `manage` says how its managedFields come
    /// about (computed like the apiserver's field manager, before the fields the server sets
    /// itself: a namespace's `spec.finalizers` and `status`).
    pub fn create(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        manage: Manage<'_>,
    ) -> Result<Arc<Event>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        fold_string_data(info, &mut obj);
        let ns = if info.namespaced {
            ns.unwrap_or("default")
        } else {
            ""
        };
        let mut name = meta_str(&obj, "name").unwrap_or("").to_string();
        if name.is_empty() {
            match meta_str(&obj, "generateName") {
                Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        &info.group,
                        &info.kind,
                        "",
                        &[(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        let dns_label = info.group.is_empty() && info.plural == "namespaces";
        if let Err(msg) = validate_name(&name, dns_label) {
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                &name,
                &[("metadata.name", "FieldValueInvalid", msg)],
            ));
        }
        if info.namespaced {
            self.check_namespace(info, ns, &name)?;
        }
        let key = info.key();
        if self.get(&key, ns, &name).is_some() {
            return Err(ApiError::already_exists(&info.group, &info.plural, &name));
        }
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
        let meta = meta_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        if info.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert(
            "creationTimestamp".into(),
            json!(rfc3339_seconds(SystemTime::now())),
        );
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("resourceVersion");
        if dns_label {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if labels.is_object() {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
        }
        drop_empty_meta(&mut obj);
        let managed = self.managed_for(info, None, &mut obj, manage);
        if dns_label {
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            obj["status"] = json!({"phase": "Active"});
        }
        Ok(self.commit_with(EventType::Added, key, obj, managed, None, None))
    }

    /// Replaces an object (PUT semantics, also the end of every PATCH): 404 if missing, 409
    /// if `metadata.resourceVersion` is set and stale. System metadata is preserved; a write
    /// that changes nothing commits nothing (managedFields timestamps included).
    pub fn update(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        mut obj: Value,
        manage: Manage<'_>,
    ) -> Result<Arc<Event>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        fold_string_data(info, &mut obj);
        let key = info.key();
        let ns = if info.namespaced { ns } else { "" };
        let Some(old) = self.get(&key, ns, name).cloned() else {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        if let Some(given) = meta_str(&obj, "resourceVersion")
            && !given.is_empty()
            && given != old.rv.to_string()
        {
            return Err(ApiError::conflict(&info.group, &info.plural, name));
        }
        if let Some(body_name) = meta_str(&obj, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        obj["apiVersion"] = json!(old.api_version());
        obj["kind"] = json!(info.kind);
        let old_meta = old
            .object
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let meta = meta_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        if info.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.insert("resourceVersion".into(), json!(old.rv.to_string()));
        drop_empty_meta(&mut obj);
        let mut managed = self.managed_for(info, Some(&old), &mut obj, manage);
        if obj == *old.object {
            // Nothing but managedFields timestamps changed: keep the old ones, so that the
            // write stays a no-op (the apiserver's IgnoreManagedFieldsTimestampsTransformer).
            let old_managed = old.managed_fields();
            if let (Some(n), Some(o)) = (&managed, old_managed)
                && managed_fields::equal_ignoring_times(n, o)
            {
                managed = old
                    .managed_fields
                    .clone()
                    .or_else(|| Some(Arc::new(o.clone())));
            }
            if managed.as_deref() == old_managed {
                return Ok(old);
            }
        }
        let is_namespace = info.group.is_empty() && info.plural == "namespaces";
        if !is_namespace
            && obj.pointer("/metadata/deletionTimestamp").is_some()
            && !has_finalizers(&obj)
        {
            // The last finalizer of an object being deleted is gone: the update deletes it.
            let ev = self.commit_with(EventType::Deleted, key, obj, managed, None, None);
            if !self.dry_run {
                self.finish_namespace_if_empty(&ev.namespace.clone());
            }
            return Ok(ev);
        }
        if spec_changed(&old.object, &obj) {
            let g = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut obj).insert("generation".into(), json!(g + 1));
        }
        let prev_managed = old.managed_fields.clone();
        Ok(self.commit_with(
            EventType::Modified,
            key,
            obj,
            managed,
            Some(old.object.clone()),
            prev_managed,
        ))
    }

    /// Deletes an object at the next RV; the event carries its last state.
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        pre: &Preconditions,
    ) -> Result<Arc<Event>, ApiError> {
        let key = info.key();
        let ns = if info.namespaced { ns } else { "" };
        let Some(old) = self.get(&key, ns, name).cloned() else {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        if pre.uid.as_deref().is_some_and(|u| u != old.uid)
            || pre
                .resource_version
                .as_deref()
                .is_some_and(|r| r != old.rv.to_string())
        {
            return Err(ApiError::conflict(&info.group, &info.plural, name));
        }
        Ok(self.delete_or_mark(&old))
    }

    /// Deletes an object, or, when it has finalizers, sets its `deletionTimestamp` (MODIFIED)
    /// and keeps it until an update removes the last finalizer.
    pub fn delete_or_mark(&mut self, old: &Arc<Event>) -> Arc<Event> {
        if !has_finalizers(&old.object) {
            return self.remove(old);
        }
        if old.object.pointer("/metadata/deletionTimestamp").is_some() {
            return old.clone();
        }
        let mut obj = Arc::unwrap_or_clone(old.full_object());
        let meta = meta_mut(&mut obj);
        meta.insert(
            "deletionTimestamp".into(),
            json!(rfc3339_seconds(SystemTime::now())),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        self.commit(EventType::Modified, old.key.clone(), obj, Some(old))
    }

    /// Deletes a stored object unconditionally (cascades, churn).
    pub fn remove(&mut self, old: &Arc<Event>) -> Arc<Event> {
        let obj = (*old.object).clone();
        let managed = old.managed_fields.clone();
        let ev = self.commit_with(
            EventType::Deleted,
            old.key.clone(),
            obj,
            managed,
            None,
            None,
        );
        if !ev.namespace.is_empty() && !self.dry_run {
            self.finish_namespace_if_empty(&ev.namespace.clone());
        }
        ev
    }

    /// Marks a Terminating namespace as being emptied: it is deleted as soon as it holds no
    /// object (objects with finalizers keep it Terminating).
    pub fn begin_finalizing(&mut self, ns: &str) {
        self.finalizing.insert(ns.to_string());
    }

    /// Deletes a namespace being emptied once nothing is left in it.
    pub fn finish_namespace_if_empty(&mut self, ns: &str) {
        if !self.finalizing.contains(ns) {
            return;
        }
        let occupied = self.objects.values().any(|objs| {
            objs.range((ns.to_string(), String::new())..)
                .next()
                .is_some_and(|((n, _), _)| n == ns)
        });
        if occupied {
            return;
        }
        self.finalizing.remove(ns);
        if let Some(nsobj) = self
            .get(&ResourceKey::new("", "namespaces"), "", ns)
            .cloned()
        {
            self.remove(&nsobj);
        }
    }
}

/// Drops empty `metadata` maps and lists, which the apiserver never stores (`ObjectMeta`'s
/// fields are `omitempty`): a merge patch removing the last label leaves no `labels: {}`.
fn drop_empty_meta(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, v| {
            k == "managedFields"
                || !match v {
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                }
        });
    }
}

/// Whether `metadata.finalizers` is non-empty.
fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Whether anything outside `metadata` and `status` differs (the apiserver bumps
/// `metadata.generation` then).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
            m.remove("apiVersion");
            m.remove("kind");
        }
        v
    };
    strip(old) != strip(new)
}

/// A Secret's `stringData` is write-only: the server merges it into `data`, base64-encoded
/// (its keys win over `data`'s), and never stores or returns it (core/v1 conversion).
fn fold_string_data(info: &ResourceInfo, obj: &mut Value) {
    use base64::Engine;
    if !(info.group.is_empty() && info.plural == "secrets") {
        return;
    }
    // Only the shape a real server decodes; odd shapes are kept as given (tests store them to
    // check that faro redacts whatever it meets).
    if !obj.get("stringData").is_some_and(Value::is_object) {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (key, value) in strings {
        if let Value::String(text) = value {
            obj["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::registry::Registry;

    fn infos() -> (Arc<ResourceInfo>, Arc<ResourceInfo>) {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        (
            reg.lookup("", "v1", "namespaces").expect("namespaces"),
            reg.lookup("", "v1", "configmaps").expect("configmaps"),
        )
    }

    #[test]
    fn create_stamps_metadata_and_refuses_duplicates() {
        let (nsi, cmi) = infos();
        let store = Store::new(100);
        let mut tx = store.tx();
        tx.create(
            &nsi,
            None,
            json!({"metadata": {"name": "a"}}),
            Manage::Given,
        )
        .expect("ns");
        let ev = tx
            .create(
                &cmi,
                Some("a"),
                json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
                Manage::Given,
            )
            .expect("cm");
        assert_eq!(ev.rv, 2);
        assert_eq!(ev.object["kind"], "ConfigMap");
        assert_eq!(ev.object["apiVersion"], "v1");
        assert_eq!(ev.object["metadata"]["resourceVersion"], "2");
        assert_eq!(ev.object["metadata"]["generation"], 1);
        assert!(ev.object["metadata"]["uid"].is_string());
        let dup = tx
            .create(
                &cmi,
                Some("a"),
                json!({"metadata": {"name": "c"}}),
                Manage::Given,
            )
            .expect_err("dup");
        assert_eq!(dup.code, 409);
        assert_eq!(
            tx.create(
                &cmi,
                Some("nope"),
                json!({"metadata": {"name": "c"}}),
                Manage::Given
            )
            .expect_err("no ns")
            .code,
            404
        );
    }

    #[test]
    fn stale_updates_conflict_and_noop_updates_commit_nothing() {
        let (nsi, cmi) = infos();
        let store = Store::new(100);
        let mut tx = store.tx();
        tx.create(
            &nsi,
            None,
            json!({"metadata": {"name": "a"}}),
            Manage::Given,
        )
        .expect("ns");
        let c = tx
            .create(
                &cmi,
                Some("a"),
                json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
                Manage::Given,
            )
            .expect("cm");
        let mut stale = (*c.object).clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(
            tx.update(&cmi, "a", "c", stale, Manage::Given)
                .expect_err("stale")
                .code,
            409
        );
        let same = tx
            .update(&cmi, "a", "c", (*c.object).clone(), Manage::Given)
            .expect("noop");
        assert_eq!(same.rv, c.rv);
        let mut changed = (*c.object).clone();
        changed["data"]["k"] = json!("w");
        let u = tx
            .update(&cmi, "a", "c", changed, Manage::Given)
            .expect("update");
        assert_eq!(u.rv, 3);
        assert_eq!(u.object["metadata"]["generation"], 2);
        assert_eq!(u.object["metadata"]["uid"], c.object["metadata"]["uid"]);
    }

    #[test]
    fn writes_record_managed_fields_and_noops_stay_noops() {
        let (nsi, cmi) = infos();
        let store = Store::new(100);
        let mut tx = store.tx();
        let w = managed_fields::Writer::new("tester", &nsi);
        let ns = tx
            .create(
                &nsi,
                None,
                json!({"metadata": {"name": "a"}}),
                Manage::Update(&w),
            )
            .expect("ns");
        // The label defaulted on namespaces is the creator's; spec.finalizers and status are
        // set by the server after the field manager ran.
        assert_eq!(
            ns.full_object()["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}})
        );
        let w = managed_fields::Writer::new("tester", &cmi);
        let c = tx
            .create(
                &cmi,
                Some("a"),
                json!({"metadata": {"name": "c", "labels": {}}, "data": {"k": "v"}}),
                Manage::Update(&w),
            )
            .expect("cm");
        assert!(
            c.object["metadata"].get("labels").is_none(),
            "empty maps dropped"
        );
        let same = tx
            .update(&cmi, "a", "c", (*c.object).clone(), Manage::Update(&w))
            .expect("noop");
        assert_eq!(same.rv, c.rv);
        let mut changed = (*c.object).clone();
        changed["data"]["k"] = json!("w");
        let other = managed_fields::Writer::new("other", &cmi);
        let u = tx
            .update(&cmi, "a", "c", changed, Manage::Update(&other))
            .expect("update");
        let full = u.full_object();
        let mut managers: Vec<&str> = full["metadata"]["managedFields"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["manager"].as_str()).collect())
            .unwrap_or_default();
        managers.sort_unstable();
        assert_eq!(managers, ["other", "tester"]);
    }

    #[test]
    fn terminating_namespaces_refuse_creates() {
        let (nsi, cmi) = infos();
        let store = Store::new(100);
        let mut tx = store.tx();
        let ns = tx
            .create(
                &nsi,
                None,
                json!({"metadata": {"name": "a"}}),
                Manage::Given,
            )
            .expect("ns");
        let mut t = (*ns.object).clone();
        t["status"]["phase"] = json!("Terminating");
        tx.update(&nsi, "", "a", t, Manage::Given)
            .expect("terminating");
        let err = tx
            .create(
                &cmi,
                Some("a"),
                json!({"metadata": {"name": "c"}}),
                Manage::Given,
            )
            .expect_err("forbidden");
        assert_eq!(err.code, 403);
        assert!(err.message.contains("because it is being terminated"));
    }

    #[test]
    fn finalizers_delay_deletion_until_the_last_one_is_removed() {
        let (nsi, cmi) = infos();
        let store = Store::new(100);
        let mut tx = store.tx();
        tx.create(
            &nsi,
            None,
            json!({"metadata": {"name": "a"}}),
            Manage::Given,
        )
        .expect("ns");
        tx.create(
            &cmi,
            Some("a"),
            json!({"metadata": {"name": "c", "finalizers": ["x/y"]}}),
            Manage::Given,
        )
        .expect("cm");
        let marked = tx
            .delete(&cmi, "a", "c", &Preconditions::default())
            .expect("marked");
        assert_eq!(marked.etype, EventType::Modified);
        assert!(marked.object["metadata"]["deletionTimestamp"].is_string());
        tx.begin_finalizing("a");
        tx.finish_namespace_if_empty("a");
        assert!(
            tx.namespace_phase("a").is_some(),
            "kept while the object lingers"
        );
        let mut done = (*marked.object).clone();
        done["metadata"]["finalizers"] = json!([]);
        let gone = tx
            .update(&cmi, "a", "c", done, Manage::Given)
            .expect("finalized");
        assert_eq!(gone.etype, EventType::Deleted);
        assert!(tx.get(&cmi.key(), "a", "c").is_none());
        assert!(
            tx.namespace_phase("a").is_none(),
            "the emptied namespace went too"
        );
    }

    #[test]
    fn dry_runs_render_without_storing() {
        let (nsi, cmi) = infos();
        let store = Store::new(100);
        let mut tx = store.tx();
        tx.create(
            &nsi,
            None,
            json!({"metadata": {"name": "a"}}),
            Manage::Given,
        )
        .expect("ns");
        tx.set_dry_run(true);
        let ev = tx
            .create(
                &cmi,
                Some("a"),
                json!({"metadata": {"name": "c"}}),
                Manage::Given,
            )
            .expect("dry create");
        assert!(ev.object["metadata"]["uid"].is_string());
        assert!(ev.object["metadata"].get("resourceVersion").is_none());
        assert_eq!(tx.rv(), 1);
        assert!(tx.get(&cmi.key(), "a", "c").is_none());
        drop(tx);
        assert!(!store.tx().dry_run, "reset when the transaction ends");
    }

    #[test]
    fn deletes_honour_preconditions_and_floor_never_passes_the_rv() {
        let (nsi, _) = infos();
        let store = Store::new(100);
        let mut tx = store.tx();
        let ns = tx
            .create(
                &nsi,
                None,
                json!({"metadata": {"name": "a"}}),
                Manage::Given,
            )
            .expect("ns");
        let bad = Preconditions {
            uid: Some("x".into()),
            resource_version: None,
        };
        assert_eq!(
            tx.delete(&nsi, "", "a", &bad)
                .expect_err("precondition")
                .code,
            409
        );
        let d = tx
            .delete(&nsi, "", "a", &Preconditions::default())
            .expect("deleted");
        assert_eq!(d.object["metadata"]["resourceVersion"], "2");
        assert_eq!(d.uid, ns.uid);
        tx.compact();
        assert_eq!(tx.floor(), tx.rv());
    }
}

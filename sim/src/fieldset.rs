//! Field sets as structured-merge-diff (`sigs.k8s.io/structured-merge-diff`, "SMD") computes
//! them for `metadata.managedFields`, without the Go type schemas the apiserver has.
//!
//! A [`FieldSet`] is a trie of path elements spelled as in `fieldsV1`: `f:<field>`,
//! `k:<json of the key fields>` (an item of a list keyed by merge keys), `v:<json value>` (an
//! item of a set-like list) and `i:<index>`. A node is a *member* when its own path is in the
//! set; the JSON form marks a member that also has children with `".": {}`.
//!
//! The shape of each value (granular map, atomic leaf, keyed list, set) comes from [`Typing`],
//! a heuristic standing in for the schema:
//! - objects are granular maps, except the atomic selectors of built-in kinds (`selector`,
//!   `nodeSelector`, `podSelector`, `namespaceSelector`, `labelSelector`, `objectSelector`);
//! - in built-in kinds (and in every object's `metadata`), a list of objects that all carry a
//!   merge key is keyed by it (`name`, `mountPath` for `volumeMounts`, `containerPort`/`port`
//!   plus `protocol` when present for `ports`, `uid` for `ownerReferences`, `type` for
//!   `conditions`, …); `metadata.finalizers` is a set; every other list is atomic. Custom
//!   resources' lists are atomic (the CRD default `x-kubernetes-list-type: atomic`);
//! - scalars and `null` are leaves.
//!
//! [`compare`] is SMD's `TypedValue.Compare` (what an Update owns: Added ∪ Modified, and what
//! it takes from everyone: Removed), [`applied_set`] is `TypedValue.ToFieldSet` (what an apply
//! configuration owns) and [`skeleton`] is the zero value of a built-in kind that the
//! apiserver compares a create against (so `f:spec` of a Deployment carries no `.` marker,
//! while `f:data` of a new ConfigMap does).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

/// Metadata fields the apiserver never records in managedFields (`stripMetaManager`).
pub const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// A set of field paths (SMD's `fieldpath.Set`), keyed by serialized path elements. Children
/// are a vector sorted by element (most nodes have one or two), which keeps the per-write
/// cost of managedFields low.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: Vec<(String, FieldSet)>,
}

/// A path: serialized path elements from the root.
pub type Path = Vec<String>;

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    fn child(&self, key: &str) -> Option<&FieldSet> {
        self.children
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.children[i].1)
    }

    fn child_mut(&mut self, key: &str) -> &mut FieldSet {
        let i = match self.children.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (key.to_string(), FieldSet::new()));
                i
            }
        };
        &mut self.children[i].1
    }

    /// Adds a path (the empty path is ignored: the root is never a member).
    pub fn insert(&mut self, path: &[String]) {
        self.insert_iter(path.iter().map(String::as_str));
    }

    fn insert_iter<'p>(&mut self, path: impl Iterator<Item = &'p str>) {
        let mut node = self;
        let mut any = false;
        for p in path {
            node = node.child_mut(p);
            any = true;
        }
        if any {
            node.member = true;
        }
    }

    /// The node at `path`, if the set holds it or anything under it.
    pub fn node(&self, path: &[String]) -> Option<&FieldSet> {
        let mut node = self;
        for p in path {
            node = node.child(p)?;
        }
        Some(node)
    }

    /// Whether `path` itself is in the set.
    pub fn has(&self, path: &[String]) -> bool {
        !path.is_empty() && self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or anything under it is in the set.
    pub fn touches(&self, path: &[String]) -> bool {
        path.is_empty() || self.node(path).is_some()
    }

    /// Adds every path of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, o) in &other.children {
            self.child_mut(k).union_with(o);
        }
    }

    /// The union of two sets.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    /// Removes the paths `other` holds (exact paths, as SMD's `Difference`: a member of
    /// `other` does not remove the paths below it). Returns whether `self` is left empty.
    pub fn subtract(&mut self, other: &FieldSet) -> bool {
        if other.member {
            self.member = false;
        }
        if !other.children.is_empty() {
            self.children.retain_mut(|(k, c)| match other.child(k) {
                Some(o) => !c.subtract(o),
                None => true,
            });
        }
        !self.member && self.children.is_empty()
    }

    /// The paths of `self` that `other` does not hold (see [`FieldSet::subtract`]).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// Whether both sets hold some path.
    pub fn overlaps(&self, other: &FieldSet) -> bool {
        self.children.iter().any(|(k, c)| {
            other
                .child(k)
                .is_some_and(|o| (c.member && o.member) || c.overlaps(o))
        })
    }

    /// Whether `self` holds every path of `other`.
    pub fn contains(&self, other: &FieldSet) -> bool {
        other.children.iter().all(|(k, o)| {
            self.child(k)
                .is_some_and(|c| (c.member || !o.member) && c.contains(o))
        })
    }

    /// The paths both sets hold.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: Vec::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.child(k) {
                let i = c.intersection(o);
                if i.member || !i.children.is_empty() {
                    out.children.push((k.clone(), i));
                }
            }
        }
        out
    }

    /// Only the part of the set at or under `path`.
    pub fn only_subtree(&self, path: &[String]) -> FieldSet {
        let mut out = FieldSet::new();
        if let Some(n) = self.node(path) {
            let mut cur = &mut out;
            for p in path {
                cur = cur.child_mut(p);
            }
            *cur = n.clone();
        }
        out
    }

    /// Every member path, in order (SMD's `Iterate`).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        self.collect(&mut cur, &mut out);
        out
    }

    fn collect(&self, cur: &mut Path, out: &mut Vec<Path>) {
        for (k, c) in &self.children {
            cur.push(k.clone());
            if c.member {
                out.push(cur.clone());
            }
            c.collect(cur, out);
            cur.pop();
        }
    }

    /// The `fieldsV1` JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    /// Parses `fieldsV1` JSON.
    pub fn from_json(v: &Value) -> Result<FieldSet, String> {
        let mut out = FieldSet::new();
        out.parse_children(v)?;
        Ok(out)
    }

    fn parse_children(&mut self, v: &Value) -> Result<(), String> {
        let m = v
            .as_object()
            .ok_or_else(|| format!("fieldsV1: expected an object, got {v}"))?;
        for (k, c) in m {
            if k == "." {
                self.member = true;
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| k.starts_with(p)) {
                return Err(format!("fieldsV1: unknown path element {k:?}"));
            }
            let child = self.child_mut(k);
            child.parse_children(c)?;
            if child.children.is_empty() {
                child.member = true;
            }
        }
        Ok(())
    }
}

/// A path as the apiserver prints it in conflicts (`fieldpath.Path.String`):
/// `.spec.containers[name="a"].image`, `.metadata.finalizers[="x"]`, `.args[0]`.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        let (kind, rest) = p.split_at(2.min(p.len()));
        match kind {
            "f:" => {
                s.push('.');
                s.push_str(rest);
            }
            "k:" => {
                let fields: Vec<String> = serde_json::from_str::<Map<String, Value>>(rest)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push('[');
                s.push_str(&fields.join(","));
                s.push(']');
            }
            "v:" => {
                s.push_str("[=");
                s.push_str(rest);
                s.push(']');
            }
            _ => {
                s.push('[');
                s.push_str(rest);
                s.push(']');
            }
        }
    }
    s
}

/// `f:<name>`.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// How values of one resource are shaped (a stand-in for its schema).
#[derive(Debug, Clone, Copy)]
pub struct Typing {
    /// A built-in kind (Go types with list merge keys and atomic selectors), as opposed to a
    /// custom resource (whose lists are atomic; its `metadata` is typed as built-ins are).
    pub builtin: bool,
}

/// The shape of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Leaf,
    Map,
    /// A list keyed by these fields (the second only when the item carries it).
    Keyed(&'static str, Option<&'static str>),
    Set,
}

const ATOMIC_OBJECTS: &[&str] = &[
    "selector",
    "nodeSelector",
    "podSelector",
    "namespaceSelector",
    "labelSelector",
    "objectSelector",
];

/// The merge key(s) of a list by its field name, else the first of the common ones that
/// every item carries.
fn list_key(name: &str, items: &[Value]) -> Option<(&'static str, Option<&'static str>)> {
    let all = |k: &str| items.iter().all(|i| i.get(k).is_some_and(|v| !v.is_null()));
    let fixed: &[(&str, &'static str, Option<&'static str>)] = &[
        ("volumeMounts", "mountPath", None),
        ("volumeDevices", "devicePath", None),
        ("ports", "containerPort", Some("protocol")),
        ("ports", "port", Some("protocol")),
        ("hostAliases", "ip", None),
        ("conditions", "type", None),
        ("ownerReferences", "uid", None),
    ];
    for (n, k, extra) in fixed {
        if *n == name && all(k) {
            return Some((k, *extra));
        }
    }
    if fixed.iter().any(|(n, _, _)| *n == name) {
        return None;
    }
    crate::patch::MERGE_KEYS
        .iter()
        .copied()
        .find(|k| all(k))
        .map(|k| (k, None))
}

impl Typing {
    /// The shape of `v`, found at field `name` (None for list items and the root) with
    /// `meta` telling whether it lies inside an object's `metadata`.
    fn shape(self, name: Option<&str>, meta: bool, at_root_meta: bool, v: &Value) -> Shape {
        let typed = self.builtin || meta;
        match v {
            Value::Object(_) => {
                if typed && name.is_some_and(|n| ATOMIC_OBJECTS.contains(&n)) {
                    Shape::Leaf
                } else {
                    Shape::Map
                }
            }
            Value::Array(items) => {
                if at_root_meta
                    && name == Some("finalizers")
                    && items.iter().all(|i| !i.is_object())
                {
                    return Shape::Set;
                }
                if !typed || items.is_empty() || !items.iter().all(Value::is_object) {
                    return Shape::Leaf;
                }
                match list_key(name.unwrap_or(""), items) {
                    Some((k, extra)) => Shape::Keyed(k, extra),
                    None => Shape::Leaf,
                }
            }
            _ => Shape::Leaf,
        }
    }
}

fn key_element(item: &Value, key: &str, extra: Option<&str>) -> String {
    let mut m = Map::new();
    if let Some(v) = item.get(key) {
        m.insert(key.to_string(), v.clone());
    }
    if let Some(e) = extra
        && let Some(v) = item.get(e)
    {
        m.insert(e.to_string(), v.clone());
    }
    format!("k:{}", Value::Object(m))
}

fn value_element(item: &Value) -> String {
    format!("v:{item}")
}

/// Which top-level fields a write may own: all (but `status` when the resource has a status
/// subresource), or those of one subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `ignore_status` when `/status` is a subresource (its reset fields).
    Main {
        /// Whether `status` belongs to the status subresource.
        ignore_status: bool,
    },
    /// `/status`: only `status`.
    Status,
    /// `/scale`: only `spec.replicas`.
    Scale,
}

impl Scope {
    fn root_key_counts(self, k: &str) -> bool {
        match self {
            _ if k == "apiVersion" || k == "kind" => false,
            Scope::Main { ignore_status } => !(ignore_status && k == "status"),
            Scope::Status => k == "status",
            Scope::Scale => k == "spec",
        }
    }

    fn finish(self, s: FieldSet) -> FieldSet {
        match self {
            Scope::Scale => s.only_subtree(&[field("spec"), field("replicas")]),
            _ => s,
        }
    }
}

/// One step of a walk: a field (spelled `f:<name>` only when a path is recorded, so that
/// walking unchanged fields allocates nothing) or a list item element.
enum Step<'a> {
    Field(&'a str),
    Item(String),
}

/// Where a walk is: the path, and the context the shape heuristic needs.
struct Walk<'a> {
    typing: Typing,
    scope: Scope,
    path: Vec<Step<'a>>,
    names: Vec<Option<&'a str>>,
}

impl<'a> Walk<'a> {
    fn new(typing: Typing, scope: Scope) -> Walk<'a> {
        Walk {
            typing,
            scope,
            path: Vec::new(),
            names: Vec::new(),
        }
    }

    fn in_meta(&self) -> bool {
        self.names.first().is_some_and(|n| *n == Some("metadata"))
    }

    fn at_root_meta(&self) -> bool {
        self.names.len() == 2 && self.in_meta()
    }

    fn shape(&self, v: &Value) -> Shape {
        let name = self.names.last().copied().flatten();
        self.typing
            .shape(name, self.in_meta(), self.at_root_meta(), v)
    }

    /// Whether a map entry at the current depth is skipped: the root keys outside the scope
    /// and the stripped metadata fields.
    fn skips(&self, key: &str) -> bool {
        match self.names.len() {
            0 => !self.scope.root_key_counts(key),
            1 => self.in_meta() && STRIPPED_META.contains(&key),
            _ => false,
        }
    }

    fn descend_field(&mut self, name: &'a str) {
        self.path.push(Step::Field(name));
        self.names.push(Some(name));
    }

    fn descend_item(&mut self, element: String) {
        self.path.push(Step::Item(element));
        self.names.push(None);
    }

    /// Adds the current path to `set`.
    fn mark(&self, set: &mut FieldSet) {
        let path: Path = self
            .path
            .iter()
            .map(|s| match s {
                Step::Field(n) => field(n),
                Step::Item(e) => e.clone(),
            })
            .collect();
        set.insert(&path);
    }

    fn ascend(&mut self) {
        self.path.pop();
        self.names.pop();
    }
}

/// What a write changed, as SMD's `Comparison`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Paths present only in the new object.
    pub added: FieldSet,
    /// Leaves whose value changed.
    pub modified: FieldSet,
    /// Paths present only in the old object.
    pub removed: FieldSet,
}

impl Comparison {
    /// Added ∪ Modified: what the writer of an Update comes to own.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares two objects (metadata's stripped fields and the fields outside `scope` ignored).
/// A field of the kind's [`skeleton`] that one side lacks counts as its zero value there, as
/// the apiserver's typed objects always carry those fields.
pub fn compare(
    old: &Value,
    new: &Value,
    skeleton: &Value,
    typing: Typing,
    scope: Scope,
) -> Comparison {
    let mut c = Comparison::default();
    let mut w = Walk::new(typing, scope);
    compare_map(Some(old), Some(new), Some(skeleton), &mut w, &mut c);
    let mut meta = FieldSet::new();
    meta.insert(&[field("metadata")]);
    for s in [&mut c.added, &mut c.modified, &mut c.removed] {
        s.subtract(&meta);
        if scope == Scope::Scale {
            *s = scope.finish(std::mem::take(s));
        }
    }
    c
}

fn leaf(l: Option<&Value>, r: Option<&Value>, w: &Walk<'_>, c: &mut Comparison) {
    match (l, r) {
        (None, Some(_)) => w.mark(&mut c.added),
        (Some(_), None) => w.mark(&mut c.removed),
        (Some(a), Some(b)) if a != b => w.mark(&mut c.modified),
        _ => {}
    }
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

fn compare_value<'a>(
    l: Option<&'a Value>,
    r: Option<&'a Value>,
    sk: Option<&'a Value>,
    w: &mut Walk<'a>,
    c: &mut Comparison,
) {
    let (l, r) = (l.or(sk), r.or(sk));
    let shape = match (l.filter(|v| !v.is_null()), r.filter(|v| !v.is_null())) {
        (None, None) => Shape::Leaf,
        (Some(a), None) => w.shape(a),
        (None, Some(b)) => w.shape(b),
        (Some(a), Some(b)) => {
            let (sa, sb) = (w.shape(a), w.shape(b));
            if sa == sb || (matches!(sa, Shape::Keyed(..)) && matches!(sb, Shape::Keyed(..))) {
                sb
            } else {
                Shape::Leaf
            }
        }
    };
    // Empty or null on both sides is a leaf (keeps the empty/null distinction), as in SMD.
    if shape == Shape::Leaf || (is_empty_container(l) && is_empty_container(r)) {
        leaf(l, r, w, c);
        return;
    }
    match shape {
        Shape::Map => compare_map(l, r, sk, w, c),
        Shape::Keyed(..) | Shape::Set => compare_list(l, r, shape, w, c),
        Shape::Leaf => unreachable!("handled above"),
    }
    match (l, r) {
        (None, Some(_)) => w.mark(&mut c.added),
        (Some(_), None) => w.mark(&mut c.removed),
        _ => {}
    }
}

fn compare_map<'a>(
    l: Option<&'a Value>,
    r: Option<&'a Value>,
    sk: Option<&'a Value>,
    w: &mut Walk<'a>,
    c: &mut Comparison,
) {
    static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);
    let lm = l.and_then(Value::as_object).unwrap_or(&EMPTY);
    let rm = r.and_then(Value::as_object).unwrap_or(&EMPTY);
    for (k, lv) in lm {
        if w.skips(k) {
            continue;
        }
        w.descend_field(k);
        compare_value(Some(lv), rm.get(k), sk.and_then(|s| s.get(k)), w, c);
        w.ascend();
    }
    for (k, rv) in rm {
        if lm.contains_key(k) || w.skips(k) {
            continue;
        }
        w.descend_field(k);
        compare_value(None, Some(rv), sk.and_then(|s| s.get(k)), w, c);
        w.ascend();
    }
}

fn list_elements(v: Option<&Value>, shape: Shape) -> Vec<(String, &Value)> {
    let items = v
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    items
        .iter()
        .map(|i| {
            let e = match shape {
                Shape::Keyed(k, extra) => key_element(i, k, extra),
                _ => value_element(i),
            };
            (e, i)
        })
        .collect()
}

fn compare_list<'a>(
    l: Option<&'a Value>,
    r: Option<&'a Value>,
    shape: Shape,
    w: &mut Walk<'a>,
    c: &mut Comparison,
) {
    let le: BTreeMap<String, &Value> = list_elements(l, shape).into_iter().collect();
    let re: BTreeMap<String, &Value> = list_elements(r, shape).into_iter().collect();
    for (e, lv) in &le {
        w.descend_item(e.clone());
        item(Some(*lv), re.get(e).copied(), shape, w, c);
        w.ascend();
    }
    for (e, rv) in &re {
        if le.contains_key(e) {
            continue;
        }
        w.descend_item(e.clone());
        item(None, Some(*rv), shape, w, c);
        w.ascend();
    }
}

fn item<'a>(
    l: Option<&'a Value>,
    r: Option<&'a Value>,
    shape: Shape,
    w: &mut Walk<'a>,
    c: &mut Comparison,
) {
    if shape == Shape::Set {
        leaf(l, r, w, c);
        return;
    }
    compare_map(l, r, None, w, c);
    match (l, r) {
        (None, Some(_)) => w.mark(&mut c.added),
        (Some(_), None) => w.mark(&mut c.removed),
        _ => {}
    }
}

/// The fields an apply configuration sets (SMD's `ToFieldSet`): leaves, atomic values, list
/// items, and empty or null maps; not the maps that merely contain them.
pub fn applied_set(config: &Value, typing: Typing, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let mut w = Walk::new(typing, scope);
    set_map(config, &mut w, &mut out);
    scope.finish(out)
}

fn set_value<'a>(v: &'a Value, w: &mut Walk<'a>, out: &mut FieldSet) {
    match w.shape(v) {
        Shape::Leaf => w.mark(out),
        Shape::Map => {
            if v.as_object().is_some_and(Map::is_empty) {
                w.mark(out);
            }
            set_map(v, w, out);
        }
        shape @ (Shape::Keyed(..) | Shape::Set) => {
            for (e, i) in list_elements(Some(v), shape) {
                w.descend_item(e);
                if shape != Shape::Set {
                    set_map(i, w, out);
                }
                w.mark(out);
                w.ascend();
            }
        }
    }
}

fn set_map<'a>(v: &'a Value, w: &mut Walk<'a>, out: &mut FieldSet) {
    let Some(m) = v.as_object() else {
        return;
    };
    for (k, c) in m {
        if w.skips(k) {
            continue;
        }
        w.descend_field(k);
        set_value(c, w, out);
        w.ascend();
    }
}

/// Server-side apply's merge of a configuration into the live object (SMD's `Merge`): maps
/// merge, keyed lists merge item by item (live order kept, new items appended), sets take
/// the union, everything else is replaced. A `null` in the configuration removes the field.
pub fn merge(live: &mut Value, config: &Value, typing: Typing) {
    let mut w = Walk::new(
        typing,
        Scope::Main {
            ignore_status: false,
        },
    );
    merge_map(live, config, &mut w);
}

fn merge_map<'a>(live: &mut Value, config: &'a Value, w: &mut Walk<'a>) {
    let Some(cm) = config.as_object() else {
        *live = config.clone();
        return;
    };
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    let Some(lm) = live.as_object_mut() else {
        return;
    };
    for (k, cv) in cm {
        if cv.is_null() {
            lm.remove(k);
            continue;
        }
        w.descend_field(k);
        match lm.get_mut(k) {
            Some(lv) => merge_value(lv, cv, w),
            None => {
                lm.insert(k.clone(), cv.clone());
            }
        }
        w.ascend();
    }
}

fn merge_value<'a>(live: &mut Value, config: &'a Value, w: &mut Walk<'a>) {
    let (ls, cs) = (w.shape(live), w.shape(config));
    match cs {
        Shape::Map if ls == Shape::Map => merge_map(live, config, w),
        Shape::Keyed(k, extra)
            if matches!(ls, Shape::Keyed(..)) || is_empty_container(Some(live)) =>
        {
            let Some(items) = config.as_array() else {
                return;
            };
            let mut out = live.as_array().cloned().unwrap_or_default();
            for ci in items {
                let e = key_element(ci, k, extra);
                match out.iter_mut().find(|li| key_element(li, k, extra) == e) {
                    Some(li) => {
                        w.descend_item(e);
                        merge_map(li, ci, w);
                        w.ascend();
                    }
                    None => out.push(ci.clone()),
                }
            }
            *live = Value::Array(out);
        }
        Shape::Set => {
            let mut out = live.as_array().cloned().unwrap_or_default();
            for ci in config.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                if !out.contains(ci) {
                    out.push(ci.clone());
                }
            }
            *live = Value::Array(out);
        }
        _ => *live = config.clone(),
    }
}

/// Removes `path` from `obj` (a map field, a keyed or set list item, an index). Returns
/// whether something was removed.
pub fn remove_path(obj: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let Some(parent) = value_at_mut(obj, parents) else {
        return false;
    };
    match parent {
        Value::Object(m) => last
            .strip_prefix("f:")
            .is_some_and(|k| m.remove(k).is_some()),
        Value::Array(items) => match item_position(items, last) {
            Some(i) => {
                items.remove(i);
                true
            }
            None => false,
        },
        _ => false,
    }
}

fn item_position(items: &[Value], element: &str) -> Option<usize> {
    if let Some(k) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        items
            .iter()
            .position(|i| key.iter().all(|(f, v)| i.get(f) == Some(v)))
    } else if let Some(v) = element.strip_prefix("v:") {
        let v: Value = serde_json::from_str(v).ok()?;
        items.iter().position(|i| *i == v)
    } else {
        let i: usize = element.strip_prefix("i:")?.parse().ok()?;
        (i < items.len()).then_some(i)
    }
}

/// The value at `path`, if present.
pub fn value_at_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(p.strip_prefix("f:")?)?,
            Value::Array(items) => {
                let i = item_position(items, p)?;
                items.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// The zero value of a kind as the apiserver compares a create against: Go's
/// `runtime.DefaultUnstructuredConverter` keeps struct-typed fields (never omitted) and
/// `null` for slices without `omitempty`, so these paths exist before the create and get no
/// `.` marker. Custom resources start from nothing.
pub fn skeleton(kind: &str, typing: Typing) -> &'static Value {
    static EMPTY: LazyLock<Value> = LazyLock::new(|| json!({}));
    static KINDS: LazyLock<Vec<(&'static str, Value)>> = LazyLock::new(|| {
        let template = || json!({"metadata": {}, "spec": {"containers": null}});
        let with = |extra: (&str, Value)| {
            let mut s = json!({"metadata": {}, "spec": {}, "status": {}});
            s[extra.0] = extra.1;
            s
        };
        vec![
            ("", with(("spec", json!({})))),
            ("Pod", with(("spec", json!({"containers": null})))),
            (
                "Deployment",
                with((
                    "spec",
                    json!({"selector": null, "template": template(), "strategy": {}}),
                )),
            ),
            (
                "ReplicaSet",
                with(("spec", json!({"selector": null, "template": template()}))),
            ),
            (
                "StatefulSet",
                with((
                    "spec",
                    json!({"selector": null, "template": template(), "updateStrategy": {}}),
                )),
            ),
            (
                "DaemonSet",
                with((
                    "spec",
                    json!({"selector": null, "template": template(), "updateStrategy": {}}),
                )),
            ),
            ("Job", with(("spec", json!({"template": template()})))),
            (
                "CronJob",
                with((
                    "spec",
                    json!({"jobTemplate": {"metadata": {}, "spec": {"template": template()}}}),
                )),
            ),
            ("PodTemplate", with(("template", template()))),
            ("RoleBinding", with(("roleRef", json!({})))),
            ("ClusterRoleBinding", with(("roleRef", json!({})))),
            (
                "HorizontalPodAutoscaler",
                with(("spec", json!({"scaleTargetRef": {}}))),
            ),
        ]
    });
    if !typing.builtin {
        return &EMPTY;
    }
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .or_else(|| KINDS.first())
        .map(|(_, v)| v)
        .unwrap_or(&EMPTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: Typing = Typing { builtin: true };
    const CR: Typing = Typing { builtin: false };
    const MAIN: Scope = Scope::Main {
        ignore_status: false,
    };

    fn created(kind: &str, obj: &Value, typing: Typing) -> Value {
        let sk = skeleton(kind, typing);
        compare(sk, obj, sk, typing, MAIN).changed().to_json()
    }

    #[test]
    fn a_created_configmap_owns_its_data_and_labels_with_dot_markers() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "d", "uid": "u", "labels": {"app": "a"}},
            "data": {"key": "v"}});
        assert_eq!(
            created("ConfigMap", &cm, BUILTIN),
            json!({"f:data": {".": {}, "f:key": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
        );
    }

    #[test]
    fn a_created_deployment_has_no_markers_on_struct_fields_and_keys_containers() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}},
                    "spec": {"containers": [{"name": "a", "image": "i",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "volumeMounts": [{"name": "v", "mountPath": "/m"}]}]}}}});
        assert_eq!(
            created("Deployment", &d, BUILTIN),
            json!({"f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}, "f:protocol": {}}},
                        "f:volumeMounts": {".": {}, "k:{\"mountPath\":\"/m\"}": {
                            ".": {}, "f:mountPath": {}, "f:name": {}}}
                    }}}
                }
            }})
        );
    }

    #[test]
    fn a_first_status_write_to_a_built_in_kind_marks_no_status_map() {
        let d = json!({"metadata": {"name": "w"}, "spec": {"replicas": 1}});
        let mut st = d.clone();
        st["status"] = json!({"replicas": 1});
        let sk = skeleton("Deployment", BUILTIN);
        let c = compare(&d, &st, sk, BUILTIN, Scope::Status);
        assert_eq!(
            c.changed().to_json(),
            json!({"f:status": {"f:replicas": {}}})
        );
        let cr = compare(&d, &st, skeleton("Widget", CR), CR, Scope::Status);
        assert_eq!(
            cr.changed().to_json(),
            json!({"f:status": {".": {}, "f:replicas": {}}})
        );
    }

    #[test]
    fn custom_resources_mark_spec_and_keep_lists_atomic() {
        let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"color": "red", "parts": [{"name": "p"}]}});
        assert_eq!(
            created("Widget", &w, CR),
            json!({"f:spec": {".": {}, "f:color": {}, "f:parts": {}}})
        );
    }

    #[test]
    fn updates_own_what_they_add_or_change_and_report_removals() {
        let old =
            json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let new =
            json!({"metadata": {"name": "x", "labels": {"a": "1", "c": "3"}}, "data": {"k": "w"}});
        let c = compare(&old, &new, &json!({}), BUILTIN, MAIN);
        assert_eq!(
            c.added.to_json(),
            json!({"f:metadata": {"f:labels": {"f:c": {}}}})
        );
        assert_eq!(c.modified.to_json(), json!({"f:data": {"f:k": {}}}));
        assert_eq!(
            c.removed.to_json(),
            json!({"f:metadata": {"f:labels": {"f:b": {}}}})
        );
        assert!(
            compare(&old, &old, &json!({}), BUILTIN, MAIN)
                .changed()
                .is_empty()
        );
    }

    #[test]
    fn stripped_metadata_and_out_of_scope_fields_are_never_owned() {
        let old = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}, "status": {"r": 1}});
        let new = json!({"metadata": {"resourceVersion": "2", "generation": 2, "managedFields": []},
            "spec": {"replicas": 2}, "status": {"r": 2}});
        let c = compare(
            &old,
            &new,
            &json!({}),
            BUILTIN,
            Scope::Main {
                ignore_status: true,
            },
        );
        assert_eq!(c.changed().to_json(), json!({"f:spec": {"f:replicas": {}}}));
        let s = compare(&old, &new, &json!({}), BUILTIN, Scope::Status);
        assert_eq!(s.changed().to_json(), json!({"f:status": {"f:r": {}}}));
        let sc = compare(&old, &new, &json!({}), BUILTIN, Scope::Scale);
        assert_eq!(
            sc.changed().to_json(),
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn finalizers_are_a_set_and_owner_references_are_keyed_by_uid() {
        let new = json!({"metadata": {"finalizers": ["x/y"], "ownerReferences": [{"uid": "u1", "name": "o"}]}});
        assert_eq!(
            compare(&json!({}), &new, &json!({}), CR, MAIN)
                .changed()
                .to_json(),
            json!({"f:metadata": {
                "f:finalizers": {".": {}, "v:\"x/y\"": {}},
                "f:ownerReferences": {".": {}, "k:{\"uid\":\"u1\"}": {".": {}, "f:name": {}, "f:uid": {}}}
            }})
        );
    }

    #[test]
    fn applied_sets_mark_only_list_items_and_empty_maps() {
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "labels": {"app": "w"}, "annotations": {}},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}}});
        assert_eq!(
            applied_set(&cfg, BUILTIN, MAIN).to_json(),
            json!({
                "f:metadata": {"f:annotations": {}, "f:labels": {"f:app": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
            })
        );
    }

    #[test]
    fn set_algebra_and_json_round_trip() {
        let a =
            FieldSet::from_json(&json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}})).expect("a");
        let b = FieldSet::from_json(&json!({"f:data": {"f:b": {}}})).expect("b");
        assert_eq!(
            a.difference(&b).to_json(),
            json!({"f:data": {".": {}, "f:a": {}}})
        );
        assert_eq!(a.intersection(&b).to_json(), json!({"f:data": {"f:b": {}}}));
        assert!(b.difference(&a).is_empty());
        assert!(a.overlaps(&b) && a.contains(&b) && !b.contains(&a));
        let c = FieldSet::from_json(&json!({"f:data": {"f:c": {}}})).expect("c");
        assert!(!a.overlaps(&c) && !a.contains(&c));
        assert_eq!(
            a.paths(),
            vec![
                vec![field("data")],
                vec![field("data"), field("a")],
                vec![field("data"), field("b")]
            ]
        );
        assert_eq!(
            a.only_subtree(&[field("data"), field("a")]).to_json(),
            json!({"f:data": {"f:a": {}}})
        );
        assert_eq!(FieldSet::from_json(&a.to_json()).expect("again"), a);
        assert!(FieldSet::from_json(&json!({"x": {}})).is_err());
        assert!(FieldSet::from_json(&json!([])).is_err());
    }

    #[test]
    fn paths_print_as_in_apiserver_conflicts() {
        let p = vec![
            field("spec"),
            field("containers"),
            "k:{\"name\":\"a\"}".to_string(),
            field("image"),
        ];
        assert_eq!(path_string(&p), ".spec.containers[name=\"a\"].image");
        assert_eq!(
            path_string(&[field("metadata"), field("finalizers"), "v:\"x\"".into()]),
            ".metadata.finalizers[=\"x\"]"
        );
    }

    #[test]
    fn merge_follows_list_shapes_and_remove_path_finds_items() {
        let mut live = json!({"metadata": {"finalizers": ["a"]},
            "spec": {"containers": [{"name": "a", "image": "1", "x": 1}], "args": ["p", "q"]}});
        merge(
            &mut live,
            &json!({"metadata": {"finalizers": ["b"]},
                "spec": {"containers": [{"name": "a", "image": "2"}, {"name": "b"}], "args": ["r"]}}),
            BUILTIN,
        );
        assert_eq!(
            live,
            json!({"metadata": {"finalizers": ["a", "b"]},
                "spec": {"containers": [{"name": "a", "image": "2", "x": 1}, {"name": "b"}], "args": ["r"]}})
        );
        let item = [
            field("spec"),
            field("containers"),
            "k:{\"name\":\"a\"}".into(),
        ];
        assert!(remove_path(
            &mut live,
            &[item.to_vec(), vec![field("x")]].concat()
        ));
        assert!(remove_path(&mut live, &item));
        assert!(!remove_path(&mut live, &item));
        assert!(remove_path(
            &mut live,
            &[field("metadata"), field("finalizers"), "v:\"a\"".into()]
        ));
        assert_eq!(
            live,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "b"}], "args": ["r"]}})
        );
    }
}

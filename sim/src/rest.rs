//! The resource verbs: get, list (paged, selectors), watch, create, update, patch, delete and
//! deletecollection, including the status/scale/finalize subresources and the special
//! lifecycles of namespaces and CRDs. Every client mistake becomes a Status error.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, header};
use serde_json::{Value, json};

use crate::crd;
use crate::event::Event;
use crate::field_selector::{FieldSelector, allowed_fields};
use crate::label_selector::LabelSelector;
use crate::managed_fields::{self, Manage, Writer};
use crate::namespace;
use crate::object::meta_str;
use crate::paging::Page;
use crate::patch::{self, PatchKind};
use crate::protobuf;
use crate::query::Query;
use crate::registry::ResourceInfo;
use crate::reply::{self, Reply};
use crate::route::Target;
use crate::shard_selector::ShardSelector;
use crate::sim::Sim;
use crate::status::ApiError;
use crate::store::Preconditions;
use crate::watch::{self, Start, WatchRequest};

/// One resource request.
pub struct Call<'a> {
    /// Server state.
    pub sim: &'a Arc<Sim>,
    /// HTTP method.
    pub method: &'a Method,
    /// Request path.
    pub path: &'a str,
    /// Raw query string.
    pub raw_query: &'a str,
    /// Parsed query.
    pub query: &'a Query,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Request body.
    pub body: Bytes,
}

/// The RBAC verb of a request.
pub fn verb(method: &Method, target: &Target, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if target.name.is_none() => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if target.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

/// Serves a resource request.
pub fn handle(call: Call<'_>, t: Target, watch_prefix: bool) -> Result<Reply, ApiError> {
    let info = t.info.clone();
    let watching = *call.method == Method::GET && (watch_prefix || call.query.flag("watch"));
    let verb = verb(call.method, &t, watching);
    call.sim.faults.check_forbid(
        verb,
        &info.group,
        &info.plural,
        t.namespace.as_deref(),
        t.name.as_deref(),
    )?;
    let allowed = match &t.subresource {
        Some(sub) => info
            .subresource(sub)
            .is_some_and(|s| s.verbs.iter().any(|v| v == verb)),
        None => info.has_verb(verb),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let name = t.name.clone();
    match (call.method.clone(), name) {
        (Method::GET, _) if watching => watch(&call, &t),
        (Method::GET, None) => list(&call, &t),
        (Method::GET, Some(n)) => get(&call, &t, &n),
        (Method::POST, None) => create(&call, &t),
        (Method::PUT, Some(n)) => update(&call, &t, &n),
        (Method::PATCH, Some(n)) => patch_object(&call, &t, &n),
        (Method::DELETE, Some(n)) => delete(&call, &t, &n),
        (Method::DELETE, None) => delete_collection(&call, &t),
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// The object JSON for a reader of `info`'s version (re-rendered if stored under another).
/// The object as served at `av` (the apiVersion of the resource it is read through).
fn object_json(ev: &Event, av: &str) -> Bytes {
    if ev.api_version() == av {
        return ev.object_bytes();
    }
    let mut obj = (*ev.full_object()).clone();
    obj["apiVersion"] = json!(av);
    Bytes::from(crate::object::to_canonical_string(&obj))
}

/// The reply to a write through `t`: the scale for the scale subresource, else the object.
fn written_body(ev: &Event, t: &Target) -> Bytes {
    if t.subresource.as_deref() == Some("scale") {
        Bytes::from(scale_of(&ev.object).to_string())
    } else {
        object_json(ev, &t.info.api_version())
    }
}

fn invalid_list_options(errs: Vec<String>) -> Result<(), ApiError> {
    if errs.is_empty() {
        return Ok(());
    }
    let joined = if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    };
    Err(ApiError::new(
        422,
        "Invalid",
        format!("ListOptions.meta.k8s.io \"\" is invalid: {joined}"),
    )
    .with_details(json!({"kind": "ListOptions", "group": "meta.k8s.io"})))
}

/// `ListOptions` validation (apimachinery `meta/internalversion/validation`).
fn validate_list_options(q: &Query, watching: bool, watch_list: bool) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    let rvm = q.get("resourceVersionMatch").unwrap_or("");
    let rv = q.get("resourceVersion").unwrap_or("");
    let cont = q.get("continue").unwrap_or("");
    let sie = q.get("sendInitialEvents");
    if watching {
        if sie.is_some() {
            if rvm != "NotOlderThan" {
                errs.push("resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".to_string());
            }
            if !watch_list {
                errs.push("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled".to_string());
            }
        }
        if !rvm.is_empty() {
            if sie.is_none() {
                errs.push("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".to_string());
            }
            if rvm != "NotOlderThan" {
                errs.push(format!("resourceVersionMatch: Unsupported value: {rvm:?}: supported values: \"NotOlderThan\""));
            }
            if !cont.is_empty() {
                errs.push("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided".to_string());
            }
        }
    } else {
        if !rvm.is_empty() {
            if rv.is_empty() {
                errs.push("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".to_string());
            }
            if !cont.is_empty() {
                errs.push("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided".to_string());
            }
            if rvm != "Exact" && rvm != "NotOlderThan" {
                errs.push(format!("resourceVersionMatch: Unsupported value: {rvm:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""));
            }
            if rvm == "Exact" && rv == "0" {
                errs.push("resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".to_string());
            }
        }
        if sie.is_some() {
            errs.push(
                "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list".to_string(),
            );
        }
    }
    invalid_list_options(errs)
}

fn selectors(q: &Query, info: &ResourceInfo) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let allowed = allowed_fields(
        &info.group,
        &info.plural,
        info.namespaced,
        &info.selectable_fields,
    );
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), &allowed)
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// The `shardSelector` of a LIST or WATCH when this server honours it.
fn shard_selector(call: &Call<'_>) -> Result<Option<ShardSelector>, ApiError> {
    if !call
        .sim
        .shard_selector
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Ok(None);
    }
    call.query
        .non_empty("shardSelector")
        .map(|s| ShardSelector::parse(s).map_err(ApiError::bad_request))
        .transpose()
}

fn parse_rv(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {raw:?}")))
}

fn list(call: &Call<'_>, t: &Target) -> Result<Reply, ApiError> {
    let q = call.query;
    validate_list_options(q, false, true)?;
    let info = &t.info;
    let (labels, fields) = selectors(q, info)?;
    let shard = shard_selector(call)?;
    if let Some(rv) = q.non_empty("resourceVersion") {
        parse_rv(rv)?;
    }
    let limit = q
        .number::<i64>("limit")
        .map_err(ApiError::bad_request)?
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let key = info.key();
    let page = if let Some(token) = q.non_empty("continue") {
        call.sim
            .pages
            .next(&key, token, limit.unwrap_or(usize::MAX))
            .ok_or_else(|| {
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            })?
    } else {
        let filtered = !labels.is_empty() || !fields.is_empty() || shard.is_some();
        let (mut items, rv) = {
            let tx = call.sim.store.tx();
            (tx.list(&key, t.namespace.as_deref()), tx.rv())
        };
        // The items are shared snapshots: filter them without holding the store.
        if filtered {
            items.retain(|e| {
                labels.matches_object(&e.object)
                    && fields.matches(&e.object)
                    && shard.as_ref().is_none_or(|s| s.matches(&e.object))
            });
        }
        match limit {
            Some(l) => call.sim.pages.first(key, rv, items, filtered, l),
            None => Page {
                items,
                continue_token: None,
                remaining: None,
                rv,
            },
        }
    };
    Ok(reply::json_bytes(
        200,
        render_list(info, &page, shard.as_ref().map(ShardSelector::raw)),
    ))
}

/// A `<Kind>List` document from pre-serialized items.
fn render_list(info: &ResourceInfo, page: &Page, shard: Option<&str>) -> Bytes {
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(s) = shard {
        meta["shardInfo"] = json!({"selector": s});
    }
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let av = info.api_version();
    let head = json!({"kind": format!("{}List", info.kind), "apiVersion": av, "metadata": meta})
        .to_string();
    let size: usize = page.items.iter().map(|e| e.line.end - e.line.start).sum();
    let mut b = BytesMut::with_capacity(head.len() + size + 16);
    b.put_slice(&head.as_bytes()[..head.len() - 1]);
    b.put_slice(b",\"items\":[");
    for (i, e) in page.items.iter().enumerate() {
        if i > 0 {
            b.put_u8(b',');
        }
        b.put_slice(&object_json(e, &av));
    }
    b.put_slice(b"]}");
    b.freeze()
}

fn watch(call: &Call<'_>, t: &Target) -> Result<Reply, ApiError> {
    let q = call.query;
    validate_list_options(
        q,
        true,
        call.sim.watch_list() != crate::sim::WatchList::Reject,
    )?;
    let info = &t.info;
    let (labels, fields) = selectors(q, info)?;
    let shard = shard_selector(call)?;
    let rv_raw = q.get("resourceVersion").unwrap_or("").to_string();
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true" || v == "1");
    let start = match (send_initial, rv_raw.as_str()) {
        (Some(true), _) => Start::StreamingList,
        (Some(false), "" | "0") => Start::After(call.sim.store.tx().rv()),
        (_, "" | "0") => Start::State,
        (_, x) => Start::After(parse_rv(x)?),
    };
    let timeout = q
        .number::<u64>("timeoutSeconds")
        .map_err(ApiError::bad_request)?
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let path = if call.raw_query.is_empty() {
        call.path.to_string()
    } else {
        format!("{}?{}", call.path, call.raw_query)
    };
    let req = WatchRequest {
        info: info.clone(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        labels,
        fields,
        shard,
        start,
        bookmarks: q.flag("allowWatchBookmarks"),
        timeout,
        path,
        label_selector_raw: q.get("labelSelector").unwrap_or("").to_string(),
        field_selector_raw: q.get("fieldSelector").unwrap_or("").to_string(),
        resource_version_raw: rv_raw,
    };
    Ok(reply::stream(watch::start(call.sim, req)))
}

fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut m = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            m[f] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": obj.pointer("/status/selector").cloned().unwrap_or(json!(""))
        }
    })
}

fn get(call: &Call<'_>, t: &Target, name: &str) -> Result<Reply, ApiError> {
    let info = &t.info;
    let ev = {
        let tx = call.sim.store.tx();
        tx.get(&info.key(), t.namespace.as_deref().unwrap_or(""), name)
            .cloned()
    }
    .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
    match t.subresource.as_deref() {
        None | Some("status") => Ok(reply::json_bytes(
            200,
            object_json(&ev, &info.api_version()),
        )),
        Some("scale") => Ok(reply::json(200, &scale_of(&ev.object))),
        Some(_) => Err(ApiError::method_not_allowed(
            "kube-sim does not serve this subresource",
        )),
    }
}

/// Decodes a request body: JSON, YAML, or the protobuf kubectl's generators send.
fn parse_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or("").trim();
    let v = match base {
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body).map_err(|e| {
            let mut err = ApiError::unsupported_media_type(ct);
            err.message = e;
            err
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text =
                std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        "application/json" | "" | "*/*" => serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })?,
        _ => return Err(ApiError::unsupported_media_type(ct)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

fn check_body_namespace(obj: &Value, t: &Target) -> Result<(), ApiError> {
    if let (Some(body_ns), Some(path_ns)) = (meta_str(obj, "namespace"), t.namespace.as_deref())
        && !body_ns.is_empty()
        && t.info.namespaced
        && body_ns != path_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Whether the request asks for a server-side dry run (`dryRun=All`).
fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match q.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value: {other:?}: supported values: \"All\""
        ))),
    }
}

/// The field manager of a write through `t` (`what`: the options kind named in errors).
fn writer(call: &Call<'_>, t: &Target, what: &str) -> Result<Writer, ApiError> {
    let ua = call
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let manager = managed_fields::manager_name(call.query.get("fieldManager"), ua, what)?;
    Ok(Writer::new(&manager, &t.info).through(t.subresource.as_deref()))
}

fn create(call: &Call<'_>, t: &Target) -> Result<Reply, ApiError> {
    let info = &t.info;
    let w = writer(call, t, "CreateOptions")?;
    let mut obj = parse_object(call.headers, &call.body)?;
    check_body_namespace(&obj, t)?;
    let ns = match t.namespace.clone() {
        Some(ns) => Some(ns),
        None if info.namespaced => Some(
            meta_str(&obj, "namespace")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "the namespace of the object must be set on a cluster-wide create",
                    )
                })?
                .to_string(),
        ),
        None => None,
    };
    let is_crd = crd::is_crd(info);
    if is_crd {
        crd::establish(&mut obj, None)?;
    }
    let dry = dry_run(call.query)?;
    let ev = {
        let mut tx = call.sim.store.tx();
        tx.set_dry_run(dry);
        tx.create(info, ns.as_deref(), obj, Manage::Update(&w))?
    };
    if is_crd && !dry {
        crd::publish(call.sim, &ev.object);
    }
    Ok(reply::json_bytes(
        201,
        object_json(&ev, &info.api_version()),
    ))
}

/// Builds the full new object of a subresource write from the stored one.
fn merge_subresource(sub: Option<&str>, old: &Value, new: Value) -> Result<Value, ApiError> {
    let mut out = old.clone();
    match sub {
        None => return Ok(new),
        Some("status") => out["status"] = new.get("status").cloned().unwrap_or(Value::Null),
        Some("scale") => {
            out["spec"]["replicas"] = new.pointer("/spec/replicas").cloned().unwrap_or(json!(0))
        }
        Some("finalize") => {
            out["spec"]["finalizers"] = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]))
        }
        Some(_) => {
            return Err(ApiError::method_not_allowed(
                "kube-sim does not serve this subresource",
            ));
        }
    }
    if let Some(rv) = meta_str(&new, "resourceVersion").filter(|r| !r.is_empty()) {
        out["metadata"]["resourceVersion"] = json!(rv);
    }
    Ok(out)
}

fn update(call: &Call<'_>, t: &Target, name: &str) -> Result<Reply, ApiError> {
    let info = &t.info;
    let w = writer(call, t, "UpdateOptions")?;
    let obj = parse_object(call.headers, &call.body)?;
    check_body_namespace(&obj, t)?;
    let ns = t.namespace.as_deref().unwrap_or("");
    let is_crd = crd::is_crd(info);
    let dry = dry_run(call.query)?;
    let ev = {
        let mut tx = call.sim.store.tx();
        tx.set_dry_run(dry);
        let old = tx
            .get(&info.key(), ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?
            .full_object();
        let mut new = merge_subresource(t.subresource.as_deref(), &old, obj)?;
        if t.subresource.is_none() && info.subresource("status").is_some() {
            new["status"] = old.get("status").cloned().unwrap_or(Value::Null);
            if new["status"].is_null()
                && let Some(m) = new.as_object_mut()
            {
                m.remove("status");
            }
        }
        if is_crd {
            crd::establish(&mut new, Some(&old))?;
        }
        tx.update(info, ns, name, new, Manage::Update(&w))?
    };
    if is_crd && !dry {
        crd::publish(call.sim, &ev.object);
    }
    Ok(reply::json_bytes(200, written_body(&ev, t)))
}

/// Checks an apply configuration as the apiserver does before merging it.
fn check_apply_config(obj: &Value, t: &Target, name: &str) -> Result<(), ApiError> {
    if !obj.is_object() || obj.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApiError::bad_request(
            "the body of an apply patch must be an object whose metadata is an object",
        ));
    }
    if obj
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    if t.subresource.as_deref() == Some("scale") {
        return Ok(());
    }
    let expected = t.info.api_version();
    let given = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if given != expected {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {given}, expected: {expected}"
        )));
    }
    check_body_namespace(obj, t)?;
    if meta_str(obj, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(obj, "name").unwrap_or("")
        )));
    }
    Ok(())
}

/// An apply configuration of the scale subresource as one of its parent (`spec.replicas`).
fn scale_config_to_parent(config: &Value, info: &ResourceInfo) -> Value {
    let mut parent = json!({"apiVersion": info.api_version(), "kind": info.kind});
    if let Some(r) = config.pointer("/spec/replicas") {
        parent["spec"] = json!({"replicas": r});
    }
    parent
}

/// Keeps the stored status when the resource has a status subresource (writes to the main
/// resource cannot change it).
fn keep_status(info: &ResourceInfo, old: &Value, new: &mut Value) {
    if info.subresource("status").is_none() {
        return;
    }
    match old.get("status") {
        Some(s) => new["status"] = s.clone(),
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
    }
}

fn patch_object(call: &Call<'_>, t: &Target, name: &str) -> Result<Reply, ApiError> {
    let info = &t.info;
    let ct = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind =
        PatchKind::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let body = patch::parse_body(kind, &call.body).map_err(ApiError::bad_request)?;
    if kind == PatchKind::Apply && call.query.non_empty("fieldManager").is_none() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    if kind != PatchKind::Apply && call.query.get("force").is_some() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
        ));
    }
    let w = writer(call, t, "PatchOptions")?;
    let force = call.query.flag("force");
    let ns = t.namespace.as_deref().unwrap_or("");
    let sub = t.subresource.as_deref();
    let is_crd = crd::is_crd(info);
    let dry = dry_run(call.query)?;
    let (ev, created) = {
        let mut tx = call.sim.store.tx();
        tx.set_dry_run(dry);
        match tx.get(&info.key(), ns, name).cloned() {
            None if kind == PatchKind::Apply && sub.is_none() => {
                check_apply_config(&body, t, name)?;
                let mut config = body;
                config["metadata"]["name"] = json!(name);
                let mut obj = managed_fields::apply(info, None, &config, &w, force)?.object;
                if is_crd {
                    crd::establish(&mut obj, None)?;
                }
                (
                    tx.create(info, t.namespace.as_deref(), obj, Manage::Given)?,
                    true,
                )
            }
            None => return Err(ApiError::not_found(&info.group, &info.plural, name)),
            Some(old) if kind == PatchKind::Apply => {
                let old = old.full_object();
                check_apply_config(&body, t, name)?;
                let config = match sub {
                    Some("scale") => scale_config_to_parent(&body, info),
                    _ => body,
                };
                let applied = managed_fields::apply(info, Some(&old), &config, &w, force)?;
                let managed = applied.object.pointer("/metadata/managedFields").cloned();
                let mut new = merge_subresource(sub, &old, applied.object)?;
                let meta = crate::object::meta_mut(&mut new);
                match managed {
                    Some(m) => meta.insert("managedFields".into(), m),
                    None => meta.remove("managedFields"),
                };
                if sub.is_none() {
                    keep_status(info, &old, &mut new);
                }
                if is_crd {
                    crd::establish(&mut new, Some(&old))?;
                }
                (tx.update(info, ns, name, new, Manage::Given)?, false)
            }
            Some(old) => {
                let old = old.full_object();
                let mut target = match sub {
                    Some("scale") => scale_of(&old),
                    _ => (*old).clone(),
                };
                patch::apply(kind, &mut target, &body)
                    .map_err(|e| ApiError::new(422, "Invalid", e))?;
                if !target.is_object() {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        "the patched object is not a JSON object",
                    ));
                }
                let mut new = merge_subresource(sub, &old, target)?;
                if sub.is_none() {
                    keep_status(info, &old, &mut new);
                }
                if is_crd {
                    crd::establish(&mut new, Some(&old))?;
                }
                (tx.update(info, ns, name, new, Manage::Update(&w))?, false)
            }
        }
    };
    if is_crd && !dry {
        crd::publish(call.sim, &ev.object);
    }
    Ok(reply::json_bytes(
        if created { 201 } else { 200 },
        written_body(&ev, t),
    ))
}

/// Reads a DeleteOptions body: its preconditions and whether it asks for a dry run
/// (client-go sends `dryRun` there for deletes).
fn delete_options(body: &[u8]) -> Result<(Preconditions, bool), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Preconditions::default(), false));
    }
    let opts: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
    let dry = opts
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x == "All"));
    let pre = Preconditions {
        uid: opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    Ok((pre, dry))
}

fn delete_one(
    sim: &Arc<Sim>,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    pre: &Preconditions,
    dry: bool,
) -> Result<Arc<Event>, ApiError> {
    let is_namespace = info.group.is_empty() && info.plural == "namespaces";
    if dry && (is_namespace || crd::is_crd(info)) {
        // A dry-run delete of a namespace or CRD shows the object and starts nothing.
        let tx = sim.store.tx();
        return tx
            .get(&info.key(), "", name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name));
    }
    if is_namespace {
        return namespace::terminate(sim, info, name);
    }
    if crd::is_crd(info) {
        return crd::delete(sim, info, name);
    }
    let mut tx = sim.store.tx();
    tx.set_dry_run(dry);
    tx.delete(info, ns, name, pre)
}

fn delete(call: &Call<'_>, t: &Target, name: &str) -> Result<Reply, ApiError> {
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let (pre, body_dry) = delete_options(&call.body)?;
    let dry = dry_run(call.query)? || body_dry;
    let ev = delete_one(
        call.sim,
        &t.info,
        t.namespace.as_deref().unwrap_or(""),
        name,
        &pre,
        dry,
    )?;
    Ok(reply::json_bytes(
        200,
        object_json(&ev, &t.info.api_version()),
    ))
}

fn delete_collection(call: &Call<'_>, t: &Target) -> Result<Reply, ApiError> {
    let info = &t.info;
    let (labels, fields) = selectors(call.query, info)?;
    let dry = dry_run(call.query)? || delete_options(&call.body)?.1;
    let victims: Vec<Arc<Event>> = {
        let tx = call.sim.store.tx();
        tx.list(&info.key(), t.namespace.as_deref())
            .into_iter()
            .filter(|e| labels.matches_object(&e.object) && fields.matches(&e.object))
            .collect()
    };
    let mut deleted = Vec::new();
    for v in victims {
        if let Ok(ev) = delete_one(
            call.sim,
            info,
            &v.namespace,
            &v.name,
            &Preconditions::default(),
            dry,
        ) {
            deleted.push(ev);
        }
    }
    let rv = call.sim.store.tx().rv();
    let page = Page {
        items: deleted,
        continue_token: None,
        remaining: None,
        rv,
    };
    Ok(reply::json_bytes(200, render_list(info, &page, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_list_options_are_validated_as_the_apiserver_does() {
        let q = Query::parse(Some("watch=true&sendInitialEvents=true"));
        let e = validate_list_options(&q, true, true).expect_err("needs NotOlderThan");
        assert_eq!(e.code, 422);
        assert!(e.message.starts_with(
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden"
        ));
        let q = Query::parse(Some(
            "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
        ));
        assert!(validate_list_options(&q, true, true).is_ok());
        let e = validate_list_options(&q, true, false).expect_err("gate off");
        assert!(e.message.contains("WatchList feature gate"));
        let q = Query::parse(Some("resourceVersionMatch=NotOlderThan"));
        assert!(validate_list_options(&q, false, true).is_err());
        let q = Query::parse(Some("resourceVersionMatch=NotOlderThan&resourceVersion=0"));
        assert!(validate_list_options(&q, false, true).is_ok());
        let q = Query::parse(Some("resourceVersionMatch=NotOlderThan&watch=true"));
        assert!(validate_list_options(&q, true, true).is_err());
    }

    #[test]
    fn scale_reflects_spec_replicas() {
        let s = scale_of(&json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}}));
        assert_eq!(s["kind"], "Scale");
        assert_eq!(s["spec"]["replicas"], 3);
    }

    #[test]
    fn delete_options_bodies_are_optional_but_must_be_json() {
        assert!(delete_options(b"").is_ok());
        let (p, dry) = delete_options(
            br#"{"propagationPolicy":"Background","preconditions":{"uid":"u"},"dryRun":["All"]}"#,
        )
        .expect("parses");
        assert_eq!(p.uid.as_deref(), Some("u"));
        assert!(dry);
        assert_eq!(delete_options(b"{nope").expect_err("bad").code, 400);
    }
}

//! Field selectors: `field=value`, `field==value`, `field!=value`, joined by commas (no set
//! operators). Each resource accepts `metadata.name`, `metadata.namespace` (namespaced kinds)
//! and the per-kind extras of k8s-protocol.md §2.5; anything else is a 400.

use serde_json::Value;

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path (`metadata.name`, `status.phase`).
    pub field: String,
    /// True for `!=`.
    pub negate: bool,
    /// The operand.
    pub value: String,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// Terms, all of which must hold.
    pub requirements: Vec<FieldRequirement>,
}

/// The extra selectable fields of built-in kinds (each registry's `ToSelectableFields`).
fn builtin_extras(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "events") | ("events.k8s.io", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        ("apps", "replicasets") | ("", "replicationcontrollers") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

/// The fields a resource accepts in `fieldSelector`.
pub fn allowed_fields(
    group: &str,
    plural: &str,
    namespaced: bool,
    extra: &[String],
) -> Vec<String> {
    let mut out = vec!["metadata.name".to_string()];
    if namespaced {
        out.push("metadata.namespace".to_string());
    }
    out.extend(builtin_extras(group, plural).iter().map(|s| s.to_string()));
    out.extend(extra.iter().cloned());
    out
}

/// Reads a dotted field of an object as the string a field selector compares.
pub fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for part in field.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.get("ip")
                    .and_then(Value::as_str)
                    .or(i.as_str())
                    .unwrap_or("")
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => String::new(),
    }
}

impl FieldSelector {
    /// Parses a selector (already form-decoded) and checks every field against `allowed`.
    pub fn parse(s: &str, allowed: &[String]) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector { requirements });
        }
        for term in s.split(',') {
            let term = term.trim();
            let (field, negate, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, false, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if !allowed.iter().any(|a| a == field) {
                let only: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
                return Err(format!(
                    "{field:?} is not a known field selector: only {}",
                    only.join(", ")
                ));
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                negate,
                value: value.trim().to_string(),
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// True when the selector has no term.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value required for `metadata.name`, if the selector pins one (used to narrow scans).
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// Matches an object.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements
            .iter()
            .all(|r| (field_value(obj, &r.field) == r.value) != r.negate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_and_namespace_terms_match() {
        let allowed = allowed_fields("", "configmaps", true, &[]);
        let obj = json!({"metadata": {"name": "a", "namespace": "ns1"}});
        let s = FieldSelector::parse("metadata.name=a,metadata.namespace!=ns2", &allowed)
            .expect("parses");
        assert!(s.matches(&obj));
        let s = FieldSelector::parse("metadata.name==b", &allowed).expect("parses");
        assert!(!s.matches(&obj));
        assert_eq!(s.pinned_name(), Some("b"));
    }

    #[test]
    fn unknown_fields_are_rejected_with_the_real_message() {
        let allowed = allowed_fields("", "configmaps", true, &[]);
        let err = FieldSelector::parse("foo.bar=x", &allowed).expect_err("rejected");
        assert_eq!(
            err,
            "\"foo.bar\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert!(FieldSelector::parse("nonsense", &allowed).is_err());
    }

    #[test]
    fn per_kind_extras_and_crd_fields_are_selectable() {
        let allowed = allowed_fields("", "pods", true, &[]);
        let pod = json!({"spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse(
                "spec.nodeName=n1,status.phase=Running,spec.hostNetwork=true",
                &allowed
            )
            .expect("parses")
            .matches(&pod)
        );
        let crd = allowed_fields("example.com", "widgets", true, &["spec.color".to_string()]);
        let w = json!({"spec": {"color": "red"}});
        assert!(
            FieldSelector::parse("spec.color=red", &crd)
                .expect("parses")
                .matches(&w)
        );
        assert!(
            FieldSelector::parse("spec.color=red", &allowed_fields("", "nodes", false, &[]))
                .is_err()
        );
    }

    #[test]
    fn cluster_scoped_kinds_reject_metadata_namespace() {
        let allowed = allowed_fields("", "nodes", false, &[]);
        assert!(FieldSelector::parse("metadata.namespace=x", &allowed).is_err());
    }
}

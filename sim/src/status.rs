//! API errors as `meta.k8s.io/v1` Status objects: the reasons, messages and details that a
//! real apiserver sends (k8s-protocol.md §4), so kubectl and kube print and branch on them.

use serde_json::{Value, json};

/// One failed request: rendered as a Status body whose `code` equals the HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// StatusReason (`NotFound`, `AlreadyExists`, …).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Optional `details` object.
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header and `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
}

/// `resource.group`, or just `resource` for the core group (apimachinery's GroupResource).
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn object_details(group: &str, plural: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": plural });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

impl ApiError {
    /// A bare error with a code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Adds a `details` object.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for a path that names no resource.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 404 for a missing object.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .with_details(object_details(group, plural, name))
    }

    /// 409 AlreadyExists for a create of an existing name.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(object_details(group, plural, name))
    }

    /// 409 Conflict for a stale resourceVersion or a failed precondition.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
        )
        .with_details(object_details(group, plural, name))
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 Invalid with one cause per (field, cause reason, detail).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[(&str, &str, String)]) -> Self {
        let parts: Vec<String> = causes
            .iter()
            .map(|(field, _, msg)| format!("{field}: {msg}"))
            .collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|(field, reason, msg)| json!({"reason": reason, "message": msg, "field": field}))
            .collect();
        let mut details = json!({ "name": name, "kind": kind, "causes": causes_json });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        let qual = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Self::new(
            422,
            "Invalid",
            format!("{qual} \"{name}\" is invalid: {joined}"),
        )
        .with_details(details)
    }

    /// 403 for creates in a namespace that is being deleted.
    pub fn namespace_terminating(group: &str, plural: &str, name: &str, ns: &str) -> Self {
        let msg = format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        );
        let mut details = object_details(group, plural, name);
        details["causes"] = json!([{"reason": "NamespaceTerminating", "message": msg, "field": "metadata.namespace"}]);
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {msg}",
                qualified(group, plural)
            ),
        )
        .with_details(details)
    }

    /// 404 for a namespaced create into a namespace that does not exist.
    pub fn namespace_not_found(ns: &str) -> Self {
        Self::not_found("", "namespaces", ns)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    /// 410 Expired (continue tokens, too old resource versions).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The Status object.
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            d["retryAfterSeconds"] = json!(secs);
        }
        if let Some(d) = details {
            v["details"] = d;
        }
        if self.reason.is_empty() {
            if let Some(m) = v.as_object_mut() {
                m.remove("reason");
            }
        }
        v
    }
}

/// The Status object and reason name for an injected failure of HTTP `code`.
pub fn for_code(code: u16) -> ApiError {
    let (reason, message) = match code {
        400 => (
            "BadRequest",
            "the server rejected our request for an unknown reason",
        ),
        401 => ("Unauthorized", "Unauthorized"),
        403 => (
            "Forbidden",
            "forbidden: the server does not allow this request",
        ),
        404 => (
            "NotFound",
            "the server could not find the requested resource",
        ),
        405 => (
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
        409 => ("Conflict", "the server reported a conflict"),
        410 => ("Expired", "the resource has expired"),
        422 => (
            "Invalid",
            "the server rejected our request due to an error in our request",
        ),
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.",
        ),
        500 => (
            "InternalError",
            "an error on the server (\"injected by kube-sim\") has prevented the request from succeeding",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be processing the request",
        ),
        _ => ("", "the server responded with an injected error"),
    };
    ApiError::new(code, reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_qualified_resource() {
        let e = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        let v = e.to_value();
        assert_eq!(v["code"], 404);
        assert_eq!(v["details"]["group"], "apps");
        let core = ApiError::not_found("", "configmaps", "x").to_value();
        assert_eq!(core["details"], json!({"name": "x", "kind": "configmaps"}));
    }

    #[test]
    fn retry_after_lands_in_details() {
        let mut e = for_code(429);
        e.retry_after = Some(3);
        let v = e.to_value();
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["details"]["retryAfterSeconds"], 3);
    }

    #[test]
    fn invalid_lists_causes_in_the_message() {
        let e = ApiError::invalid(
            "",
            "ConfigMap",
            "x",
            &[(
                "metadata.name",
                "FieldValueRequired",
                "Required value".into(),
            )],
        );
        assert_eq!(
            e.message,
            "ConfigMap \"x\" is invalid: metadata.name: Required value"
        );
        let e = ApiError::invalid(
            "example.com",
            "Widget",
            "w",
            &[("spec", "FieldValueInvalid", "bad".into())],
        );
        assert_eq!(e.message, "Widget.example.com \"w\" is invalid: spec: bad");
    }
}

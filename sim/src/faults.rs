//! Fault injection state driven by the admin API: injected failures, added latency, RBAC-style
//! forbidden resources, bearer-token authentication and unavailable API groups. Checked on
//! every non-admin request.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::status::{ApiError, for_code, qualified};

/// The user named in Forbidden messages (faro's service account).
pub const FORBIDDEN_USER: &str = "system:serviceaccount:faro:faro";

/// "Fail the next N requests" rule.
#[derive(Debug, Clone)]
pub struct FailRule {
    /// HTTP code to answer.
    pub code: u16,
    /// Requests left to fail (-1 = until cleared).
    pub remaining: i64,
    /// Only requests whose path contains this substring.
    pub path: Option<String>,
    /// Only requests whose raw query string contains this substring (a client's
    /// `fieldManager=…`, say: a fault that hits one replica and not another).
    pub query: Option<String>,
    /// `Retry-After` seconds (429/503).
    pub retry_after: Option<u64>,
}

/// "Forbid this resource" rule.
#[derive(Debug, Clone)]
pub struct ForbidRule {
    /// Resource plural.
    pub resource: String,
    /// Group (None = any group).
    pub group: Option<String>,
    /// Verbs (None = every verb).
    pub verbs: Option<Vec<String>>,
    /// Namespace (None = everywhere, including cluster-wide requests).
    pub namespace: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    fail: Option<FailRule>,
    forbid: Vec<ForbidRule>,
    token: Option<String>,
    down: HashSet<String>,
}

/// The fault switches.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
    latency_ms: AtomicU64,
}

impl Faults {
    /// Faults with an initial token requirement.
    pub fn new(token: Option<String>) -> Faults {
        let f = Faults::default();
        f.state.lock().token = token;
        f
    }

    /// Added latency per request.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    /// Sets the added latency (0 clears).
    pub fn set_latency(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets or clears the failure rule.
    pub fn set_fail(&self, rule: Option<FailRule>) {
        self.state.lock().fail = rule;
    }

    /// Adds a forbid rule.
    pub fn add_forbid(&self, rule: ForbidRule) {
        self.state.lock().forbid.push(rule);
    }

    /// Removes every forbid rule.
    pub fn clear_forbid(&self) {
        self.state.lock().forbid.clear();
    }

    /// Sets or clears the required bearer token.
    pub fn set_token(&self, token: Option<String>) {
        self.state.lock().token = token;
    }

    /// Marks a group unavailable or available again.
    pub fn set_group_down(&self, group: &str, down: bool) {
        let mut s = self.state.lock();
        if down {
            s.down.insert(group.to_string());
        } else {
            s.down.remove(group);
        }
    }

    /// Groups currently unavailable.
    pub fn down_groups(&self) -> HashSet<String> {
        self.state.lock().down.clone()
    }

    /// A summary for the admin API.
    pub fn describe(&self) -> Value {
        let s = self.state.lock();
        json!({
            "latencyMs": self.latency_ms.load(Ordering::Relaxed),
            "fail": s.fail.as_ref().map(|f| json!({"code": f.code, "remaining": f.remaining, "path": f.path, "query": f.query, "retryAfter": f.retry_after})),
            "forbid": s.forbid.iter().map(|f| json!({"resource": f.resource, "group": f.group, "verbs": f.verbs, "namespace": f.namespace})).collect::<Vec<_>>(),
            "auth": s.token.is_some(),
            "groupsDown": s.down.iter().collect::<Vec<_>>(),
        })
    }

    /// 401 unless the request carries the required bearer token.
    pub fn check_auth(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let s = self.state.lock();
        match &s.token {
            None => Ok(()),
            Some(t)
                if authorization
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .map(str::trim)
                    == Some(t.as_str()) =>
            {
                Ok(())
            }
            Some(_) => Err(for_code(401)),
        }
    }

    /// Consumes one injected failure if the rule matches this path.
    pub fn take_failure(&self, path: &str, query: &str) -> Option<ApiError> {
        let mut s = self.state.lock();
        let rule = s.fail.as_mut()?;
        if rule.path.as_deref().is_some_and(|p| !path.contains(p))
            || rule.query.as_deref().is_some_and(|q| !query.contains(q))
        {
            return None;
        }
        let mut err = for_code(rule.code);
        if rule.code == 429 || rule.code == 503 {
            err.retry_after = Some(rule.retry_after.unwrap_or(1));
        } else {
            err.retry_after = rule.retry_after;
        }
        if rule.remaining > 0 {
            rule.remaining -= 1;
            if rule.remaining == 0 {
                s.fail = None;
            }
        }
        Some(err)
    }

    /// 403 if a forbid rule covers this request.
    pub fn check_forbid(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        let s = self.state.lock();
        let hit = s.forbid.iter().any(|r| {
            r.resource == resource
                && r.group.as_deref().is_none_or(|g| g == group)
                && r.verbs.as_ref().is_none_or(|v| v.iter().any(|x| x == verb))
                && r.namespace.as_deref().is_none_or(|n| Some(n) == ns)
        });
        if !hit {
            return Ok(());
        }
        Err(forbidden(verb, group, resource, ns, name))
    }
}

/// The Status a real apiserver sends when RBAC denies a request.
pub fn forbidden(
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> ApiError {
    let subject = match name {
        Some(n) => format!("{} \"{n}\"", qualified(group, resource)),
        None => qualified(group, resource),
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut details = json!({"kind": resource});
    if let Some(n) = name {
        details["name"] = json!(n);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    ApiError::new(
        403,
        "Forbidden",
        format!("{subject} is forbidden: User \"{FORBIDDEN_USER}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"),
    )
    .with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_filtered_by_path() {
        let f = Faults::default();
        f.set_fail(Some(FailRule {
            code: 429,
            remaining: 2,
            path: Some("configmaps".into()),
            query: None,
            retry_after: Some(2),
        }));
        assert!(f.take_failure("/api/v1/pods", "").is_none());
        let e = f.take_failure("/api/v1/configmaps", "").expect("fails");
        assert_eq!(e.code, 429);
        assert_eq!(e.retry_after, Some(2));
        assert!(f.take_failure("/api/v1/configmaps", "").is_some());
        assert!(f.take_failure("/api/v1/configmaps", "").is_none());
    }

    #[test]
    fn failures_can_be_scoped_to_a_query_substring() {
        let f = Faults::default();
        f.set_fail(Some(FailRule {
            code: 503,
            remaining: -1,
            path: Some("/leases".into()),
            query: Some("fieldManager=faro-a".into()),
            retry_after: None,
        }));
        assert!(
            f.take_failure(
                "/apis/coordination.k8s.io/v1/namespaces/default/leases/faro",
                ""
            )
            .is_none()
        );
        assert!(
            f.take_failure(
                "/apis/coordination.k8s.io/v1/namespaces/default/leases/faro",
                "fieldManager=faro-b"
            )
            .is_none()
        );
        assert!(
            f.take_failure(
                "/apis/coordination.k8s.io/v1/namespaces/default/leases/faro",
                "fieldManager=faro-a"
            )
            .is_some()
        );
        assert!(
            f.take_failure("/api/v1/configmaps", "fieldManager=faro-a")
                .is_none()
        );
    }

    #[test]
    fn forbidden_message_matches_the_apiserver() {
        let f = Faults::default();
        f.add_forbid(ForbidRule {
            resource: "secrets".into(),
            group: None,
            verbs: Some(vec!["list".into(), "watch".into()]),
            namespace: None,
        });
        assert!(
            f.check_forbid("get", "", "secrets", None, Some("x"))
                .is_ok()
        );
        let e = f
            .check_forbid("list", "", "secrets", None, None)
            .expect_err("forbidden");
        assert_eq!(
            e.message,
            "secrets is forbidden: User \"system:serviceaccount:faro:faro\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
        );
        let e = forbidden("get", "apps", "deployments", Some("ns"), Some("d"));
        assert!(e.message.starts_with("deployments.apps \"d\" is forbidden"));
        assert!(e.message.ends_with("in the namespace \"ns\""));
    }

    #[test]
    fn auth_requires_the_exact_bearer_token() {
        let f = Faults::new(Some("t".into()));
        assert!(f.check_auth(Some("Bearer t")).is_ok());
        assert_eq!(f.check_auth(Some("Bearer u")).expect_err("401").code, 401);
        assert_eq!(f.check_auth(None).expect_err("401").code, 401);
        f.set_token(None);
        assert!(f.check_auth(None).is_ok());
    }
}

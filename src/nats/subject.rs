//! The subjects events are published to, and the escaping of their tokens (see the module
//! documentation of [`crate::nats`]).

use crate::nats::{Error, Result};

/// The token of cluster-scoped objects in the namespace position (no namespace is named so:
/// namespace names are DNS labels).
pub const CLUSTER_SCOPED: &str = "_";

/// Writes `text` as one subject token: bytes a token cannot hold, and `%`, as `%XX`.
pub fn escape_token(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        let keep = b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>' | b'%');
        if keep {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The subjects of one cluster's events: `<prefix>.<cluster>.<gvr>.<namespace>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    /// `<prefix>.<cluster>.`, escaped.
    head: String,
    /// `<prefix>`.
    prefix: String,
}

impl Subjects {
    /// The subjects under `prefix` (one or more tokens separated by `.`, without wildcards or
    /// whitespace) for the cluster named `cluster` (any text but empty; escaped).
    pub fn new(prefix: &str, cluster: &str) -> Result<Subjects> {
        check_prefix(prefix)?;
        if cluster.is_empty() {
            return Err(Error::Options("the cluster name is empty".into()));
        }
        let mut head = String::with_capacity(prefix.len() + cluster.len() + 2);
        head.push_str(prefix);
        head.push('.');
        escape_token(cluster, &mut head);
        head.push('.');
        Ok(Subjects {
            head,
            prefix: prefix.to_owned(),
        })
    }

    /// The subject of an event of `gvr` (as the wire format writes it) in `namespace`.
    pub fn subject(&self, gvr: &str, namespace: Option<&str>) -> String {
        let mut out = String::with_capacity(self.head.len() + gvr.len() + 24);
        out.push_str(&self.head);
        escape_token(gvr, &mut out);
        out.push('.');
        match namespace {
            Some(ns) if !ns.is_empty() => escape_token(ns, &mut out),
            _ => out.push_str(CLUSTER_SCOPED),
        }
        out
    }

    /// Every subject of this cluster: `<prefix>.<cluster>.>`.
    pub fn all(&self) -> String {
        format!("{}>", self.head)
    }

    /// Every subject under the prefix, of every cluster: `<prefix>.>` (what a stream faro
    /// creates takes).
    pub fn prefix_all(&self) -> String {
        format!("{}.>", self.prefix)
    }
}

/// A prefix is one or more non-empty tokens of printable ASCII without wildcards.
pub(crate) fn check_prefix(prefix: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Options(format!("subject prefix {prefix:?}: {why}")));
    if prefix.is_empty() {
        return bad("empty");
    }
    for token in prefix.split('.') {
        if token.is_empty() {
            return bad("an empty token (two dots, or a dot at an end)");
        }
        if token.contains(['*', '>']) {
            return bad("wildcards (* and >) cannot be published to");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("only printable ASCII without spaces");
        }
    }
    Ok(())
}

/// Whether the stream subject `filter` (with wildcards) takes every subject `subject` (with
/// wildcards) stands for.
pub(crate) fn covers(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_escape_separators_wildcards_spaces_percent_and_non_ascii() {
        let esc = |t: &str| {
            let mut s = String::new();
            escape_token(t, &mut s);
            s
        };
        assert_eq!(esc("apps/v1/deployments"), "apps/v1/deployments");
        assert_eq!(
            esc("networking.k8s.io/v1/ingresses"),
            "networking%2Ek8s%2Eio/v1/ingresses"
        );
        assert_eq!(esc("a*b>c d%e"), "a%2Ab%3Ec%20d%25e");
        assert_eq!(esc("kind-ü"), "kind-%C3%BC");
        assert_eq!(esc("arn:aws:eks:eu/prod"), "arn:aws:eks:eu/prod");
    }

    #[test]
    fn subjects_put_cluster_gvr_and_namespace_in_one_token_each() {
        let s = Subjects::new("org.faro", "kind.local").unwrap();
        assert_eq!(
            s.subject("v1/configmaps", Some("shop")),
            "org.faro.kind%2Elocal.v1/configmaps.shop"
        );
        assert_eq!(
            s.subject("v1/nodes", None),
            "org.faro.kind%2Elocal.v1/nodes._"
        );
        assert_eq!(s.all(), "org.faro.kind%2Elocal.>");
        assert_eq!(s.prefix_all(), "org.faro.>");
        for bad in ["", "a..b", ".a", "a.*", "a b", "a.>"] {
            assert!(Subjects::new(bad, "c").is_err(), "{bad:?}");
        }
        assert!(Subjects::new("faro", "").is_err());
    }

    #[test]
    fn stream_subjects_cover_by_nats_wildcard_rules() {
        assert!(covers("faro.>", "faro.prod.>"));
        assert!(covers("faro.*.>", "faro.prod.>"));
        assert!(covers("faro.prod.>", "faro.prod.>"));
        assert!(!covers("faro.other.>", "faro.prod.>"));
        assert!(!covers("faro.prod.*", "faro.prod.>"));
        assert!(!covers("faro", "faro.prod.>"));
        assert!(covers(">", "faro.prod.>"));
    }
}

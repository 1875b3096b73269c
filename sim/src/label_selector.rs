//! Label selectors: the full apimachinery syntax (`=`, `==`, `!=`, `in`, `notin`, `key`,
//! `!key`, `>`, `<`), parsed once per request and matched against `metadata.labels`.
//! Semantics follow `k8s.io/apimachinery/pkg/labels/selector.go`: `!=` and `notin` also match
//! objects without the key; requirements are ANDed.

use serde_json::{Map, Value};

/// A requirement operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `k=v` or `k==v`.
    Equals,
    /// `k!=v` (also matches objects without `k`).
    NotEquals,
    /// `k in (a,b)`.
    In,
    /// `k notin (a,b)` (also matches objects without `k`).
    NotIn,
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>N` (integer compare).
    GreaterThan,
    /// `k<N` (integer compare).
    LessThan,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub op: Op,
    /// Operand values (empty for `Exists`/`DoesNotExist`).
    pub values: Vec<String>,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Requirements, all of which must hold.
    pub requirements: Vec<Requirement>,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(format!(
            "invalid label key {key:?}: prefix part must be a DNS subdomain"
        ));
    }
    validate_name_part(name).map_err(|e| format!("invalid label key {key:?}: {e}"))
}

fn validate_name_part(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if s.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let ok_ends = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok_ends
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

fn validate_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    validate_name_part(v).map_err(|e| {
        format!(
            "invalid label value: {v:?}: {}",
            e.replace("name part", "a valid label")
        )
    })
}

/// Splits on commas outside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn parse_requirement(raw: &str) -> Result<Requirement, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("found '', expected: !, identifier, or 'end of string'".into());
    }
    if let Some(rest) = s.strip_prefix('!') {
        let key = rest.trim();
        validate_key(key)?;
        return Ok(Requirement {
            key: key.to_string(),
            op: Op::DoesNotExist,
            values: vec![],
        });
    }
    let key_len = s.find(|c: char| !is_key_char(c)).unwrap_or(s.len());
    let key = &s[..key_len];
    validate_key(key)?;
    let rest = s[key_len..].trim_start();
    if rest.is_empty() {
        return Ok(Requirement {
            key: key.to_string(),
            op: Op::Exists,
            values: vec![],
        });
    }
    let single = |op: Op, value: &str| -> Result<Requirement, String> {
        let value = value.trim();
        if matches!(op, Op::GreaterThan | Op::LessThan) {
            value.parse::<i64>().map_err(|_| {
                format!("for 'Gt', 'Lt' operators, the value must be an integer, got {value:?}")
            })?;
        } else {
            validate_value(value)?;
        }
        Ok(Requirement {
            key: key.to_string(),
            op,
            values: vec![value.to_string()],
        })
    };
    if let Some(v) = rest.strip_prefix("!=") {
        return single(Op::NotEquals, v);
    }
    if let Some(v) = rest.strip_prefix("==") {
        return single(Op::Equals, v);
    }
    if let Some(v) = rest.strip_prefix('=') {
        return single(Op::Equals, v);
    }
    if let Some(v) = rest.strip_prefix('>') {
        return single(Op::GreaterThan, v);
    }
    if let Some(v) = rest.strip_prefix('<') {
        return single(Op::LessThan, v);
    }
    let (op, set) = if let Some(r) = rest.strip_prefix("notin") {
        (Op::NotIn, r)
    } else if let Some(r) = rest.strip_prefix("in") {
        (Op::In, r)
    } else {
        return Err(format!(
            "found {rest:?}, expected: '=', '!=', '==', 'in', notin'"
        ));
    };
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found {set:?}, expected: '('"))?;
    let mut values = Vec::new();
    for v in inner.split(',') {
        let v = v.trim();
        validate_value(v)?;
        values.push(v.to_string());
    }
    if inner.trim().is_empty() {
        return Err("for 'in', 'notin' operators, values set can't be empty".into());
    }
    Ok(Requirement {
        key: key.to_string(),
        op,
        values,
    })
}

impl LabelSelector {
    /// Parses a selector string (already form-decoded: `+` already turned into a space).
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        let requirements = split_top_level(s)?
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("unable to parse requirement: {e}"))?;
        Ok(LabelSelector { requirements })
    }

    /// True when the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Matches a label map (`metadata.labels`, absent = no labels).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| {
            let got = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            let first = r.values.first().map(String::as_str);
            match r.op {
                Op::Equals => got.is_some() && got == first,
                Op::NotEquals => got.is_none() || got != first,
                Op::In => got.is_some_and(|g| r.values.iter().any(|v| v == g)),
                Op::NotIn => got.is_none_or(|g| !r.values.iter().any(|v| v == g)),
                Op::Exists => got.is_some(),
                Op::DoesNotExist => got.is_none(),
                Op::GreaterThan | Op::LessThan => {
                    let (Some(g), Ok(bound)) = (
                        got.and_then(|g| g.parse::<i64>().ok()),
                        first.unwrap_or("").parse::<i64>(),
                    ) else {
                        return false;
                    };
                    if r.op == Op::GreaterThan {
                        g > bound
                    } else {
                        g < bound
                    }
                }
            }
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.is_empty() || self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn every_operator_matches_as_apimachinery_does() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5", "example.com/x": "y"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("missing!=web", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("n>4", true),
            ("n<4", false),
            ("app>1", false),
            ("example.com/x=y", true),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("app in (web,db),!legacy,tier=front", true),
            ("", true),
            ("app=", false),
            ("missing=", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(Some(&l)), want, "{sel}");
        }
    }

    #[test]
    fn objects_without_labels_match_only_negative_requirements() {
        let s = LabelSelector::parse("app!=x,!b,c notin (d)").expect("parses");
        assert!(s.matches(None));
        assert!(!LabelSelector::parse("app").expect("parses").matches(None));
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        for bad in [
            "app in web",
            "app in ()",
            "=x",
            "app=(x",
            "app in (a",
            "app x",
            "n>abc",
            "-bad-=x",
            "a,,b",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn whitespace_around_operators_is_allowed() {
        let s = LabelSelector::parse(" app = web , tier notin ( a , b ) ").expect("parses");
        assert_eq!(s.requirements.len(), 2);
        assert_eq!(s.requirements[1].values, vec!["a", "b"]);
    }
}

//! Label selectors (validated before they are sent to the server) and client-side label and
//! name patterns.
//!
//! The selector grammar follows apimachinery's `labels.Parse`
//! (`staging/src/k8s.io/apimachinery/pkg/labels/selector.go`): comma-separated requirements,
//! `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>N`, `k<N`.

use regex::Regex;

/// One requirement of a label selector, kept for validation and client-side matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v` or `k==v`.
    Equals(String, String),
    /// `k!=v` (also true when the key is absent).
    NotEquals(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)` (also true when the key is absent).
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
    /// `k>N`.
    GreaterThan(String, i64),
    /// `k<N`.
    LessThan(String, i64),
}

/// Parses and validates a label selector; the error says what is wrong and where.
pub fn parse_label_selector(input: &str) -> Result<Vec<Requirement>, String> {
    let mut parser = Parser {
        chars: input.char_indices().peekable(),
        input,
    };
    let mut out = Vec::new();
    if input.trim().is_empty() {
        return Ok(out);
    }
    loop {
        out.push(parser.requirement()?);
        parser.skip_ws();
        match parser.chars.next() {
            None => return Ok(out),
            Some((_, ',')) => continue,
            Some((pos, c)) => {
                return Err(format!(
                    "unexpected {c:?} at position {pos} of label selector {input:?}"
                ));
            }
        }
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    input: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    }

    fn word(&mut self) -> String {
        let mut out = String::new();
        while let Some((_, c)) = self
            .chars
            .next_if(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        {
            out.push(c);
        }
        out
    }

    fn err(&self, what: &str) -> String {
        format!("invalid label selector {:?}: {what}", self.input)
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        self.skip_ws();
        if self.chars.next_if(|(_, c)| *c == '!').is_some() {
            self.skip_ws();
            let key = self.word();
            validate_key(&key).map_err(|e| self.err(&e))?;
            return Ok(Requirement::DoesNotExist(key));
        }
        let key = self.word();
        if key.is_empty() {
            return Err(self.err("expected a label key"));
        }
        validate_key(&key).map_err(|e| self.err(&e))?;
        self.skip_ws();
        let Some(&(_, c)) = self.chars.peek() else {
            return Ok(Requirement::Exists(key));
        };
        match c {
            ',' => Ok(Requirement::Exists(key)),
            '=' | '!' => {
                self.chars.next();
                let negate = c == '!';
                let eq = self.chars.next_if(|(_, c)| *c == '=').is_some();
                if negate && !eq {
                    return Err(self.err("expected '=' after '!'"));
                }
                self.skip_ws();
                let value = self.word();
                validate_value(&value).map_err(|e| self.err(&e))?;
                Ok(if negate {
                    Requirement::NotEquals(key, value)
                } else {
                    Requirement::Equals(key, value)
                })
            }
            '>' | '<' => {
                self.chars.next();
                self.skip_ws();
                let value = self.word();
                let n: i64 = value
                    .parse()
                    .map_err(|_| self.err(&format!("{value:?} is not an integer")))?;
                Ok(if c == '>' {
                    Requirement::GreaterThan(key, n)
                } else {
                    Requirement::LessThan(key, n)
                })
            }
            _ => {
                let op = self.word();
                if op != "in" && op != "notin" {
                    return Err(self.err(&format!(
                        "unknown operator {op:?} after key {key:?} (expected =, ==, !=, in, notin, >, <)"
                    )));
                }
                self.skip_ws();
                if self.chars.next_if(|(_, c)| *c == '(').is_none() {
                    return Err(self.err(&format!("expected '(' after {op:?}")));
                }
                let mut values = Vec::new();
                loop {
                    self.skip_ws();
                    let value = self.word();
                    validate_value(&value).map_err(|e| self.err(&e))?;
                    values.push(value);
                    self.skip_ws();
                    match self.chars.next() {
                        Some((_, ',')) => continue,
                        Some((_, ')')) => break,
                        _ => return Err(self.err("expected ',' or ')' in the value list")),
                    }
                }
                Ok(if op == "in" {
                    Requirement::In(key, values)
                } else {
                    Requirement::NotIn(key, values)
                })
            }
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn validate_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("{what} {name:?} must be 1 to 63 characters"));
    }
    let first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let last = name
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !first || !last || !name.chars().all(is_name_char) {
        return Err(format!(
            "{what} {name:?} must consist of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// Validates a label key: `[prefix/]name`.
pub fn validate_key(key: &str) -> Result<(), String> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            let dns_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !dns_ok {
                return Err(format!(
                    "label key prefix {prefix:?} must be a lowercase DNS subdomain"
                ));
            }
            validate_name(name, "label key name")
        }
        None => validate_name(key, "label key"),
    }
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    validate_name(value, "label value")
}

/// Which rule the API server validates a name with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Namespaces: a DNS-1123 label (apimachinery `ValidateNamespaceName`).
    Namespace,
    /// Most objects: a DNS-1123 subdomain (`NameIsDNSSubdomain`).
    Subdomain,
    /// RBAC objects (`system:controller:…`): any path segment (`ValidatePathSegmentName`).
    PathSegment,
}

impl NameRule {
    /// The rule for objects of a resource.
    pub fn for_objects(gvr: &crate::gvr::Gvr) -> NameRule {
        if gvr.group == "rbac.authorization.k8s.io" {
            NameRule::PathSegment
        } else {
            NameRule::Subdomain
        }
    }

    /// Checks a name, with the API server's wording when it is not valid.
    pub fn check(self, name: &str) -> Result<(), String> {
        let label = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        };
        match self {
            NameRule::Namespace if name.len() <= 63 && label(name) => Ok(()),
            NameRule::Namespace => Err(format!(
                "{name:?} is not a valid namespace name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (at most 63 characters)"
            )),
            NameRule::Subdomain if name.len() <= 253 && name.split('.').all(label) => Ok(()),
            NameRule::Subdomain => Err(format!(
                "{name:?} is not a valid object name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (at most 253 characters)"
            )),
            NameRule::PathSegment
                if !name.is_empty()
                    && name != "."
                    && name != ".."
                    && !name.contains(['/', '%'])
                    && !name.chars().any(char::is_control) =>
            {
                Ok(())
            }
            NameRule::PathSegment => Err(format!(
                "{name:?} is not a valid object name: it may not be '.' or '..' and may not contain '/' or '%'"
            )),
        }
    }
}

/// Escapes a field selector value (`fields.EscapeValue` in apimachinery): `\`, `,` and `=`.
pub fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Checks a field selector (`status.phase=Running,spec.nodeName!=n1`) as apimachinery's
/// `fields.ParseSelector` reads it: comma-separated `key=value`, `key==value` or `key!=value`
/// terms, values escaped with `\` (see [`escape_field_value`]). Which keys a resource supports
/// only the server knows; it answers 400 for others.
pub fn check_field_selector(input: &str) -> Result<(), String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(());
    }
    let mut terms = Vec::new();
    let mut term = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                term.push(c);
                match chars.next() {
                    Some(next @ ('\\' | ',' | '=')) => term.push(next),
                    Some(other) => {
                        return Err(format!(
                            "invalid escape sequence \"\\{other}\" in {input:?} (only \\\\, \\, and \\= are escapes)"
                        ));
                    }
                    None => return Err(format!("{input:?} ends with an unfinished escape")),
                }
            }
            ',' => terms.push(std::mem::take(&mut term)),
            _ => term.push(c),
        }
    }
    terms.push(term);
    for term in &terms {
        // The first unescaped '=' ends the key (of `k=v`, `k==v` and `k!=v`).
        let at = unescaped_find(term, "=").ok_or_else(|| {
            format!("{term:?} in {input:?} is not key=value, key==value or key!=value")
        })?;
        let key = term[..at].strip_suffix('!').unwrap_or(&term[..at]).trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("{term:?} in {input:?} has no field name"));
        }
    }
    Ok(())
}

/// The byte offset of the first `op` in `term` not preceded by an escape.
fn unescaped_find(term: &str, op: &str) -> Option<usize> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if term[i..].starts_with(op) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Compiles a user regex anchored to the whole string, as faro's configs define patterns.
pub fn anchored_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid regex {pattern:?}: {}", first_line(&e.to_string())))
}

fn first_line(s: &str) -> String {
    // regex errors are multi-line drawings; the last line carries the reason.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

/// Whether a pattern uses regex syntax; one that does not is an exact name, which faro can
/// push to the server (a namespace-scoped watch, a `metadata.name` field selector).
pub fn is_exact(pattern: &str) -> bool {
    // Not regex_syntax::is_meta_character: it counts '-' (and '#', '&', '~'), which every
    // namespace name like "kube-system" contains but which only matter inside classes.
    !pattern.chars().any(|c| {
        matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        )
    })
}

/// A name filter: exact (pushed to the server where possible) or an anchored regex.
#[derive(Debug, Clone)]
pub enum NamePattern {
    /// Matches one name.
    Exact(String),
    /// Matches names the regex matches as a whole.
    Regex(Regex),
}

impl NamePattern {
    /// Builds a pattern: exact when it has no regex metacharacters.
    pub fn new(pattern: &str) -> Result<NamePattern, String> {
        if is_exact(pattern) {
            Ok(NamePattern::Exact(pattern.to_owned()))
        } else {
            anchored_regex(pattern).map(NamePattern::Regex)
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Regex(re) => re.is_match(name),
        }
    }

    /// The pattern as text (`=name` for an exact name, the anchored regex otherwise).
    pub fn describe(&self) -> String {
        match self {
            NamePattern::Exact(name) => format!("={name}"),
            NamePattern::Regex(re) => re.as_str().to_owned(),
        }
    }

    /// The exact name, if this pattern is one.
    pub fn exact(&self) -> Option<&str> {
        match self {
            NamePattern::Exact(name) => Some(name),
            NamePattern::Regex(_) => None,
        }
    }
}

/// `key=regex`: the label `key` must exist and its value match the anchored regex.
#[derive(Debug, Clone)]
pub struct LabelPattern {
    /// Label key.
    pub key: String,
    /// Anchored regex on the value.
    pub value: Regex,
}

impl LabelPattern {
    /// Parses `key=regex`.
    pub fn parse(input: &str) -> Result<LabelPattern, String> {
        let Some((key, pattern)) = input.split_once('=') else {
            return Err(format!(
                "invalid label pattern {input:?}: expected key=regex, e.g. \"app=^nginx-.*$\""
            ));
        };
        let key = key.trim();
        validate_key(key).map_err(|e| format!("invalid label pattern {input:?}: {e}"))?;
        Ok(LabelPattern {
            key: key.to_owned(),
            value: anchored_regex(pattern)?,
        })
    }

    /// Whether the labels satisfy this pattern.
    pub fn matches<'a>(&self, mut labels: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        labels.any(|(k, v)| k == self.key && self.value.is_match(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Requirement::*;

    #[test]
    fn field_selectors_are_checked_as_apimachinery_reads_them() {
        for ok in [
            "status.phase=Running",
            "status.phase==Running,spec.nodeName!=n1",
            "metadata.name=a\\,b",
            "metadata.name=",
            " ",
        ] {
            assert_eq!(check_field_selector(ok), Ok(()), "{ok}");
        }
        for bad in ["status.phase", "=x", "a=b,", "a b=c", "a=\\x", "a=b\\"] {
            assert!(check_field_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked_as_the_api_server_does() {
        let cases: &[(NameRule, &str, bool)] = &[
            (NameRule::Namespace, "kube-system", true),
            (NameRule::Namespace, "Bad_NS!", false),
            (NameRule::Namespace, "a.b", false),
            (NameRule::Namespace, &"x".repeat(64), false),
            (NameRule::Subdomain, "web-1.example", true),
            (NameRule::Subdomain, "a,b", false),
            (NameRule::Subdomain, "-a", false),
            (NameRule::Subdomain, "UPPER", false),
            (NameRule::PathSegment, "system:controller:job", true),
            (NameRule::PathSegment, "a/b", false),
            (NameRule::PathSegment, "..", false),
        ];
        for (rule, name, valid) in cases {
            assert_eq!(rule.check(name).is_ok(), *valid, "{rule:?} {name}");
        }
        assert_eq!(escape_field_value("a,b=c\\"), "a\\,b\\=c\\\\");
    }

    #[test]
    fn selectors_of_every_operator_parse() {
        let cases: &[(&str, Vec<Requirement>)] = &[
            ("app=nginx", vec![Equals("app".into(), "nginx".into())]),
            ("app==nginx", vec![Equals("app".into(), "nginx".into())]),
            (
                "app=nginx,tier!=db",
                vec![
                    Equals("app".into(), "nginx".into()),
                    NotEquals("tier".into(), "db".into()),
                ],
            ),
            (
                "env in (prod, staging)",
                vec![In("env".into(), vec!["prod".into(), "staging".into()])],
            ),
            (
                "env notin (dev)",
                vec![NotIn("env".into(), vec!["dev".into()])],
            ),
            ("example.com/team", vec![Exists("example.com/team".into())]),
            ("!legacy", vec![DoesNotExist("legacy".into())]),
            ("replicas>2", vec![GreaterThan("replicas".into(), 2)]),
            ("empty=", vec![Equals("empty".into(), String::new())]),
            (
                " a = b , c ",
                vec![Equals("a".into(), "b".into()), Exists("c".into())],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_label_selector(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        for bad in [
            "=x",
            "app in prod",
            "app in (a",
            "app ~ b",
            "-app=x",
            "app=-x",
            "app!x",
            "Example.com/x=y",
            "a>b",
            "app=nginx,",
        ] {
            assert!(parse_label_selector(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn patterns_without_metacharacters_are_exact() {
        assert!(is_exact("kube-system"));
        assert!(is_exact("prod"));
        assert!(!is_exact("prod-.*"));
        assert!(!is_exact("a|b"));
        assert_eq!(
            NamePattern::new("default").unwrap().exact(),
            Some("default")
        );
    }

    #[test]
    fn regex_patterns_are_anchored() {
        let p = NamePattern::new("web-.*").unwrap();
        assert!(p.matches("web-1"));
        assert!(!p.matches("my-web-1"));
        let p = NamePattern::new("a|b").unwrap();
        assert!(p.matches("a") && p.matches("b") && !p.matches("ab"));
    }

    #[test]
    fn bad_regexes_give_a_one_line_reason() {
        let err = NamePattern::new("web-(").unwrap_err();
        assert!(err.contains("invalid regex"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn label_patterns_match_key_and_anchored_value() {
        let p = LabelPattern::parse("app=^nginx-.*$").unwrap();
        assert!(p.matches([("app", "nginx-1")].into_iter()));
        assert!(!p.matches([("app", "my-nginx-1")].into_iter()));
        assert!(!p.matches([("other", "nginx-1")].into_iter()));
        assert!(LabelPattern::parse("novalue").is_err());
        assert!(LabelPattern::parse("app=(").is_err());
    }
}

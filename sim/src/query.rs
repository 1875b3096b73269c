//! Query strings, form-decoded (`+` is a space, as kubectl and kube encode selectors). Empty
//! pairs (kube's `?&watch=true`) and unknown parameters are ignored by simply never being read.

/// A parsed query string.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses the part after `?` (absent = empty).
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| !k.is_empty())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `key`.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Whether `key` is `true` or `1` (how apimachinery decodes booleans in query strings).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True" | "TRUE"))
    }

    /// Parses `key` as a number.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| format!("invalid value for {key}: {v:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_pairs_are_skipped_and_plus_decodes_to_space() {
        let q = Query::parse(Some(
            "&watch=true&labelSelector=app+in+%28a%2Cb%29%2C%21legacy&&x",
        ));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app in (a,b),!legacy"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.non_empty("x"), None);
    }

    #[test]
    fn numbers_parse_or_fail() {
        let q = Query::parse(Some("limit=5&bad=x"));
        assert_eq!(q.number::<u64>("limit"), Ok(Some(5)));
        assert!(q.number::<u64>("bad").is_err());
        assert_eq!(q.number::<u64>("missing"), Ok(None));
        assert!(Query::parse(Some("watch=1")).flag("watch"));
    }
}

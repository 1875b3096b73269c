//! Kubernetes version priority: the order in which the versions of one API group are listed
//! (first = preferred), as apimachinery's `version.CompareKubeAwareVersionStrings` defines it.
//! GA before beta before alpha, higher numbers first, unparsable versions last in lexical order.

use std::cmp::Ordering;

/// The parsed shape of a version string such as `v2`, `v1beta1` or `v1alpha3`.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    /// `vN`, `vNbetaM` or `vNalphaM`: (stability rank, major, minor); rank 0 = GA.
    Kube(u8, u64, u64),
    /// Anything else (sorted after every Kubernetes-shaped version).
    Other,
}

fn shape(v: &str) -> Shape {
    let Some(rest) = v.strip_prefix('v') else {
        return Shape::Other;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let Ok(major) = rest[..digits].parse::<u64>() else {
        return Shape::Other;
    };
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Shape::Kube(0, major, 0);
    }
    for (label, rank) in [("beta", 1u8), ("alpha", 2u8)] {
        if let Some(minor) = tail.strip_prefix(label)
            && let Ok(minor) = minor.parse::<u64>()
        {
            return Shape::Kube(rank, major, minor);
        }
    }
    Shape::Other
}

/// Orders two versions so that sorting ascending puts the preferred version first.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (shape(a), shape(b)) {
        (Shape::Kube(ra, ma, na), Shape::Kube(rb, mb, nb)) => {
            ra.cmp(&rb).then(mb.cmp(&ma)).then(nb.cmp(&na))
        }
        (Shape::Kube(..), Shape::Other) => Ordering::Less,
        (Shape::Other, Shape::Kube(..)) => Ordering::Greater,
        (Shape::Other, Shape::Other) => a.cmp(b),
    }
}

/// Sorts versions in place, preferred first.
pub fn sort(versions: &mut [String]) {
    versions.sort_by(|a, b| compare(a, b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v: Vec<String> = [
            "v1alpha1", "v1beta1", "v1", "v2", "v1beta2", "foo", "v10", "v2alpha1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort(&mut v);
        assert_eq!(
            v,
            [
                "v10", "v2", "v1", "v1beta2", "v1beta1", "v2alpha1", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn unparsable_versions_sort_last_lexically() {
        assert_eq!(compare("abc", "abd"), Ordering::Less);
        assert_eq!(compare("v1", "v1x"), Ordering::Less);
    }
}

//! Small statistics over the runs of a case (median, spread, nearest-rank percentiles) and the
//! RFC 3339 UTC timestamps that kube-sim's history and faro's lines carry.

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

/// Median (mean of the middle two for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile `p` (0–100); NaN when empty.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = xs.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// `{"median", "min", "max", "runs": [...]}` for results.json.
pub fn summary(xs: &[f64]) -> Value {
    json!({"median": median(xs), "min": min(xs), "max": max(xs), "runs": xs})
}

/// "median (min–max)" with `digits` decimals.
pub fn spread(xs: &[f64], digits: usize) -> String {
    if xs.len() <= 1 {
        return format!("{:.digits$}", median(xs));
    }
    format!(
        "{:.digits$} ({:.digits$}–{:.digits$})",
        median(xs),
        min(xs),
        max(xs)
    )
}

/// "k of n runs over" when the median is under `limit` but some runs are not.
pub fn runs_over(xs: &[f64], limit: f64) -> Option<String> {
    let over = xs.iter().filter(|x| **x > limit).count();
    (median(xs) <= limit && over > 0).then(|| format!("{over} of {} runs over", xs.len()))
}

/// Nanoseconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
pub fn parse_rfc3339_utc(s: &str) -> Result<i128> {
    let bad = || anyhow!("bad RFC 3339 UTC time {s:?}");
    let s = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || t.len() != 3 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    let days = days_from_civil(d[0], d[1], d[2]);
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    Ok(secs as i128 * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), 50.0);
        assert_eq!(percentile(&xs, 99.0), 99.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn runs_over_a_limit_are_counted() {
        assert_eq!(
            runs_over(&[100.0, 131.0, 103.0], 128.0).as_deref(),
            Some("1 of 3 runs over")
        );
        assert_eq!(runs_over(&[100.0, 110.0], 128.0), None);
        assert_eq!(runs_over(&[130.0, 131.0, 100.0], 128.0), None);
    }

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(
            parse_rfc3339_utc("1970-01-01T00:00:01Z").ok(),
            Some(1_000_000_000)
        );
        let a = parse_rfc3339_utc("2026-11-23T04:34:48.693874160Z").expect("ns");
        let b = parse_rfc3339_utc("2026-11-23T04:34:48.720904Z").expect("us");
        assert_eq!(b - a, 27_029_840);
        // 2000-03-01 is day 11017.
        assert_eq!(
            parse_rfc3339_utc("2000-03-01T00:00:00Z").ok(),
            Some(11_017 * 86_400 * 1_000_000_000)
        );
    }
}

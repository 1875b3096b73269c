//! KEP-5866 `shardSelector` on LIST and WATCH, sent raw as a sharding client does.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::util::{RawWatch, get_json, start};

const HALF: &str = "0x8000000000000000";

/// Namespaces whose hashes fall in both halves (sequential names like `ns-0`..`ns-11` share the
/// top bit of their FNV-1a hash).
const NAMESPACES: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima",
];

fn range(start: &str, end: &str) -> String {
    format!("shardRange(object.metadata.namespace, '{start}', '{end}')")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn names(list: &serde_json::Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn shard_selector_splits_lists_echoes_and_can_be_switched_off() {
    let sim = start();
    for i in NAMESPACES {
        sim.admin("POST", &format!("/_sim/load?namespace={i}&count=3&size=50"))
            .expect("load");
    }
    let (_, all) = get_json(&sim, "/api/v1/configmaps");
    let all_names = names(&all);
    assert_eq!(all_names.len(), 36);
    assert!(all["metadata"].get("shardInfo").is_none());
    let low_sel = range("0x0000000000000000", HALF);
    let high_sel = range(HALF, "0x10000000000000000");
    let (code, low) = get_json(
        &sim,
        &format!("/api/v1/configmaps?shardSelector={}", enc(&low_sel)),
    );
    assert_eq!(code, 200);
    let (_, high) = get_json(
        &sim,
        &format!("/api/v1/configmaps?shardSelector={}", enc(&high_sel)),
    );
    assert_eq!(low["metadata"]["shardInfo"]["selector"], low_sel.as_str());
    assert_eq!(high["metadata"]["shardInfo"]["selector"], high_sel.as_str());
    let (l, h) = (names(&low), names(&high));
    assert!(
        !l.is_empty() && !h.is_empty(),
        "12 namespaces fall in both halves"
    );
    assert!(l.is_disjoint(&h));
    assert_eq!(l.union(&h).cloned().collect::<BTreeSet<_>>(), all_names);
    // Both ranges OR-ed: everything.
    let both = format!("{low_sel} || {high_sel}");
    let (_, b) = get_json(
        &sim,
        &format!("/api/v1/configmaps?shardSelector={}", enc(&both)),
    );
    assert_eq!(names(&b), all_names);
    // Paged lists keep the filter and the echo.
    let (_, p) = get_json(
        &sim,
        &format!("/api/v1/configmaps?limit=2&shardSelector={}", enc(&low_sel)),
    );
    assert_eq!(p["metadata"]["shardInfo"]["selector"], low_sel.as_str());
    assert_eq!(p["items"].as_array().map(Vec::len), Some(2));
    // A bad selector is a 400.
    let (code, v) = get_json(
        &sim,
        &format!(
            "/api/v1/configmaps?shardSelector={}",
            enc("shardRange(object.metadata.name, '0x0', '0x1')")
        ),
    );
    assert_eq!((code, v["reason"].as_str()), (400, Some("BadRequest")));
    // An older server ignores the parameter: everything, no echo.
    sim.admin("POST", "/_sim/shard-selector?enabled=false")
        .expect("switch off");
    let (code, off) = get_json(
        &sim,
        &format!("/api/v1/configmaps?shardSelector={}", enc(&low_sel)),
    );
    assert_eq!(code, 200);
    assert!(off["metadata"].get("shardInfo").is_none());
    assert_eq!(names(&off), all_names);
}

#[test]
fn shard_selector_filters_watch_events() {
    let sim = start();
    let low_sel = range("0x0000000000000000", HALF);
    let (_, list) = get_json(&sim, "/api/v1/configmaps");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut w = RawWatch::open(
        sim.addr(),
        &format!(
            "/api/v1/configmaps?watch=true&resourceVersion={rv}&shardSelector={}",
            enc(&low_sel)
        ),
    );
    w.read_timeout(Duration::from_secs(5));
    let sel = sim_shard_low();
    let mut expect = BTreeSet::new();
    for i in NAMESPACES {
        let ns = i.to_string();
        sim.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=1&size=10"),
        )
        .expect("load");
        if sel(&ns) {
            expect.insert(ns);
        }
    }
    assert!(!expect.is_empty() && expect.len() < 12);
    let got: BTreeSet<String> = w
        .take(expect.len())
        .iter()
        .map(|e| {
            e["object"]["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(got, expect);
}

/// Whether a namespace's 64-bit FNV-1a hash is in the low half.
fn sim_shard_low() -> impl Fn(&str) -> bool {
    |ns: &str| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in ns.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h < 0x8000_0000_0000_0000
    }
}

/// The request log counts each response's body bytes as sent: a list's equal its body, an open
/// watch's grow with its events, and a sharded list's are about its share.
#[test]
fn the_request_log_counts_the_bytes_each_response_sent() {
    let sim = start();
    for i in NAMESPACES {
        sim.admin(
            "POST",
            &format!("/_sim/load?namespace={i}&count=3&size=500"),
        )
        .expect("load");
    }
    let r = kube_sim::request(sim.addr(), "GET", "/api/v1/configmaps", &[], b"").expect("list");
    let full = r.body.len() as u64;
    let sel = range("0x0000000000000000", HALF);
    let (_, low) = get_json(
        &sim,
        &format!("/api/v1/configmaps?shardSelector={}", enc(&sel)),
    );
    let mut w = RawWatch::open(
        sim.addr(),
        &format!(
            "/api/v1/configmaps?watch=true&resourceVersion={}",
            low["metadata"]["resourceVersion"].as_str().unwrap_or("0")
        ),
    );
    w.read_timeout(Duration::from_secs(5));
    sim.admin(
        "POST",
        "/_sim/load?namespace=alpha&count=2&start=100&size=500",
    )
    .expect("load");
    assert_eq!(w.take(2).len(), 2);
    let log = sim.admin("GET", "/_sim/requests").expect("requests");
    let records = log["requests"].as_array().expect("records");
    let bytes = |pred: &dyn Fn(&serde_json::Value) -> bool| -> u64 {
        records
            .iter()
            .filter(|r| pred(r))
            .map(|r| r["bytes"].as_u64().expect("bytes"))
            .sum()
    };
    assert_eq!(bytes(&|r| r["query"] == ""), full, "a list's body");
    let sharded = bytes(&|r| r["query"].as_str().unwrap_or("").contains("shardSelector"));
    let low_items = low["items"].as_array().map_or(0, Vec::len) as u64;
    assert!(sharded < full && sharded > 0, "{sharded} of {full}");
    assert!(
        sharded.abs_diff(full * low_items / 36) < full / 10,
        "about the share of {low_items} of 36 items: {sharded} of {full}"
    );
    let watched = bytes(&|r| r["query"].as_str().unwrap_or("").contains("watch=true"));
    assert!(watched > 1000, "two events of 500 bytes: {watched}");
}

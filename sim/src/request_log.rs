//! A bounded ring of recent non-admin requests (`GET /_sim/requests`), so tests can assert
//! what a client sent (paths, selectors, resourceVersions) and how it was answered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::object::rfc3339_nanos;

/// One logged request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Sequence number (1-based, never reused).
    pub seq: u64,
    /// When the request arrived.
    pub time: SystemTime,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Response status.
    pub status: u16,
    /// The `User-Agent` header (empty when absent): the apiserver derives the default field
    /// manager from it.
    pub user_agent: String,
    /// The HTTP version it arrived with, as an ALPN name (`http/1.1`, `h2`).
    pub protocol: &'static str,
    /// The response's `Content-Encoding` (`gzip`), empty when not encoded.
    pub content_encoding: &'static str,
    /// Response body bytes sent so far (as encoded on the wire), counted as the body streams:
    /// a watch's count grows while it is open.
    pub bytes: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Ring {
    next: u64,
    records: VecDeque<RequestRecord>,
}

/// The request log.
#[derive(Debug)]
pub struct RequestLog {
    capacity: usize,
    ring: Mutex<Ring>,
}

impl RequestLog {
    /// A log keeping `capacity` records.
    pub fn new(capacity: usize) -> RequestLog {
        RequestLog {
            capacity: capacity.max(1),
            ring: Mutex::new(Ring::default()),
        }
    }

    /// Appends a record; its `seq` is assigned here.
    pub fn record(&self, mut rec: RequestRecord) {
        let mut r = self.ring.lock();
        r.next += 1;
        rec.seq = r.next;
        r.records.push_back(rec);
        while r.records.len() > self.capacity {
            r.records.pop_front();
        }
    }

    /// Drops every record (sequence numbers keep counting).
    pub fn clear(&self) {
        self.ring.lock().records.clear();
    }

    /// Records with `seq > since`, as JSON.
    pub fn since(&self, since: u64) -> Value {
        let r = self.ring.lock();
        let items: Vec<Value> = r
            .records
            .iter()
            .filter(|x| x.seq > since)
            .map(|x| {
                json!({
                    "seq": x.seq,
                    "time": rfc3339_nanos(x.time),
                    "method": x.method,
                    "path": x.path,
                    "query": x.query,
                    "status": x.status,
                    "userAgent": x.user_agent,
                    "protocol": x.protocol,
                    "contentEncoding": x.content_encoding,
                    "bytes": x.bytes.load(Ordering::Relaxed),
                })
            })
            .collect();
        json!({ "last": r.next, "requests": items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_records() {
        let log = RequestLog::new(2);
        for i in 0u64..3 {
            log.record(RequestRecord {
                seq: 0,
                time: SystemTime::now(),
                method: "GET".into(),
                path: format!("/p{i}"),
                query: String::new(),
                status: 200,
                user_agent: "t/1".into(),
                protocol: "h2",
                content_encoding: "",
                bytes: Arc::new(AtomicU64::new(i * 10)),
            });
        }
        let v = log.since(0);
        assert_eq!(v["requests"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["requests"][0]["path"], "/p1");
        assert_eq!(v["requests"][0]["userAgent"], "t/1");
        assert_eq!(v["requests"][0]["protocol"], "h2");
        assert_eq!(v["requests"][1]["seq"], 3);
        assert_eq!(v["requests"][1]["bytes"], 20);
        assert_eq!(log.since(2)["requests"].as_array().map(Vec::len), Some(1));
        log.clear();
        assert_eq!(log.since(0)["last"], 3);
    }
}

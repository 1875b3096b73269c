//! Counts the lines of each chunk for `faro_events_total{gvr,type}`, so that the writer can
//! add them once they are written: the counter equals the lines written, not the lines
//! rendered (a blocked stdout holds a queue of chunks).

use std::collections::HashMap;

use faro::metrics::{EventCounter, Metrics};
use faro::{Event, EventType, Gvr};

/// The counters of the GVRs and types seen so far.
pub struct Tally {
    metrics: Metrics,
    /// By the address of the stream's GVR (stable while its stream runs; checked by value, as
    /// a later stream may reuse the address), and type.
    counters: HashMap<(usize, EventType), (Gvr, EventCounter)>,
    /// The key of the last event counted, the length of `counts` after it, and its GVR.
    last: Option<((usize, EventType), usize, Gvr)>,
}

impl Tally {
    /// Counts into `metrics`.
    pub fn new(metrics: Metrics) -> Tally {
        Tally {
            metrics,
            counters: HashMap::new(),
            last: None,
        }
    }

    /// Counts `event` into a chunk's `counts`: consecutive events of one stream and type
    /// (the common case) add to the last entry without a lookup.
    pub fn count(&mut self, event: &Event<'_>, counts: &mut Vec<(EventCounter, u64)>) {
        let gvr = event.gvr();
        let key = (std::ptr::from_ref(gvr) as usize, event.event_type());
        if let Some((last, len, last_gvr)) = &self.last
            && *last == key
            && *len == counts.len()
            && last_gvr == gvr
            && let Some((_, n)) = counts.last_mut()
        {
            *n += 1;
            return;
        }
        let known = self.counters.get(&key).is_some_and(|(seen, _)| seen == gvr);
        if !known {
            let counter = self.metrics.event_counter(gvr, event.event_type());
            self.counters.insert(key, (gvr.clone(), counter));
        }
        counts.push((self.counters[&key].1.clone(), 1));
        match &mut self.last {
            // Same stream and type as before, in a new chunk: keep the name.
            Some((last, len, last_gvr)) if *last == key && last_gvr == gvr => *len = counts.len(),
            _ => self.last = Some((key, counts.len(), gvr.clone())),
        }
    }
}

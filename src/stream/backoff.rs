//! How long a stream waits before it tries again: exponential backoff with jitter, 250 ms
//! doubling to 30 s, and a slow variant (5 s to 5 min) for 403, which only an RBAC change fixes.
//! client-go's reflector backs off the same way (`wait.NewExponentialBackoffManager`, 800 ms to
//! 30 s); faro starts lower because most of its failures are a dropped connection.

use std::time::Duration;

use super::state::StreamId;

/// Whether a watch that the server closed is simply re-opened: it delivered events, or it stayed
/// open a while (a quiet resource's watch reaching `timeoutSeconds`). Only a stream that ends at
/// once without events counts against the backoff; without the second rule a quiet stream's
/// re-watch would wait up to 2 s after a few timeouts.
pub(super) fn normal_close(progress: bool, open_for: Duration) -> bool {
    progress || open_for >= Duration::from_secs(5)
}

/// Exponential backoff with jitter.
pub(super) struct Backoff {
    current: Duration,
    seed: u64,
}

impl Backoff {
    pub(super) fn new(id: StreamId) -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Backoff {
            current: Duration::from_millis(250),
            seed: u64::from(nanos) ^ (u64::from(id) << 32) | 1,
        }
    }

    pub(super) fn reset(&mut self) {
        self.current = Duration::from_millis(250);
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift: good enough to spread reconnects of many streams.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let factor = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        d.mul_f64(factor)
    }

    /// The next delay after a failure.
    pub(super) fn next(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(Duration::from_secs(30));
        self.jitter(d)
    }

    /// The next delay after a stream that ended at once without events (at most 2 s).
    pub(super) fn next_short(&mut self) -> Duration {
        let d = self.next();
        d.min(Duration::from_secs(2))
    }

    /// The next delay after a 403.
    pub(super) fn next_slow(&mut self) -> Duration {
        self.current = (self.current * 4).min(Duration::from_secs(300));
        let d = self.current.max(Duration::from_secs(5));
        self.jitter(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_watch_that_ends_at_once_backs_off() {
        assert!(normal_close(true, Duration::ZERO));
        assert!(normal_close(false, Duration::from_secs(290)));
        assert!(!normal_close(false, Duration::from_millis(30)));
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        let mut b = Backoff::new(1);
        let first = b.next();
        assert!(first <= Duration::from_millis(320), "{first:?}");
        for _ in 0..20 {
            b.next();
        }
        assert!(b.next() <= Duration::from_secs(38));
        b.reset();
        assert!(b.next() <= Duration::from_millis(320));
    }

    #[test]
    fn forbidden_waits_at_least_five_seconds_and_at_most_about_five_minutes() {
        let mut b = Backoff::new(7);
        assert!(b.next_slow() >= Duration::from_millis(3750));
        for _ in 0..10 {
            b.next_slow();
        }
        assert!(b.next_slow() <= Duration::from_secs(375));
    }
}

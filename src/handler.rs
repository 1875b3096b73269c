//! The consumer side of [`Watcher::run`](crate::Watcher::run): the [`Handler`] trait and the
//! [`RetryPolicy`] for handlers that fail.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::event::Event;

/// What a [`Watcher`](crate::Watcher) calls for each event when run with
/// [`Watcher::run`](crate::Watcher::run).
///
/// - `on_event` is called for events of different objects at once when the watcher has
///   [`workers`](crate::Watcher::workers) > 1, never for two events of the same object at
///   once, and always in the object's order.
/// - An `Err` is retried with exponential backoff (see [`RetryPolicy`]); later events of that
///   object wait behind it, other objects go on. After the last attempt the event is logged and
///   dropped.
/// - A slow handler slows the watches: events wait in a bounded queue, then on the server.
///
/// ```
/// use faro::{Event, Handler};
///
/// struct Print;
///
/// impl Handler for Print {
///     type Error = std::convert::Infallible;
///
///     async fn on_event(&self, event: &Event<'_>) -> Result<(), Self::Error> {
///         println!("{} {}/{}", event.event_type(), event.gvr(), event.name());
///         Ok(())
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Why a delivery failed (logged with the retry).
    type Error: std::fmt::Display + Send + 'static;

    /// Handles one event. The event borrows the frame it came in: call
    /// [`Event::to_owned`] to keep it beyond the call.
    fn on_event(&self, event: &Event<'_>) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called once, after every event of the initial listings has been handled (the objects
    /// that existed at start-up), with the number of server-side watches running.
    fn on_ready(&self, streams: usize) -> impl Future<Output = ()> + Send {
        let _ = streams;
        async {}
    }

    /// Called when no further event is queued for this handler (a good moment to flush a
    /// buffered output), and once more before [`Watcher::run`](crate::Watcher::run) returns.
    fn on_idle(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Makes every event handled so far durable (written out and flushed), returning when it
    /// is. Called before a checkpoint is written, which then covers those events (see
    /// [`crate::checkpoint`]); the default does nothing, for handlers that write through.
    fn flush(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

impl<H: Handler> Handler for Arc<H> {
    type Error = H::Error;

    fn on_event(&self, event: &Event<'_>) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).on_event(event)
    }

    fn on_ready(&self, streams: usize) -> impl Future<Output = ()> + Send {
        (**self).on_ready(streams)
    }

    fn on_idle(&self) -> impl Future<Output = ()> + Send {
        (**self).on_idle()
    }

    fn flush(&self) -> impl Future<Output = ()> + Send {
        (**self).flush()
    }
}

/// How failed deliveries are retried: after the first failure the event waits `initial`, then
/// twice as long after each further failure, at most `max`; after `max_attempts` deliveries it
/// is logged at error level and dropped, and the object's next event is delivered.
///
/// Events that wait (failed ones and the later events of their objects) are kept in memory, at
/// most `max_waiting` per worker; when that many wait, the worker takes no new events until
/// some are delivered or dropped, so the watches slow down instead of memory growing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) max_waiting: usize,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 250 ms, 500 ms, 1 s and 2 s in between (at most 30 s); 1,024 events
    /// waiting per worker.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            max_waiting: 1024,
        }
    }
}

impl RetryPolicy {
    /// Deliveries per event, the first included (at least 1; 1 never retries).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> RetryPolicy {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait after the first failure, and the longest wait.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> RetryPolicy {
        self.initial = initial;
        self.max = max.max(initial);
        self
    }

    /// Events that may wait for a retry per worker (at least 1).
    #[must_use]
    pub fn max_waiting(mut self, events: usize) -> RetryPolicy {
        self.max_waiting = events.max(1);
        self
    }

    /// The wait after `failures` failed deliveries (1 or more).
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy =
            RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u128> = (1..=6).map(|f| policy.delay(f).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(RetryPolicy::default().max_attempts(0).max_attempts, 1);
    }
}

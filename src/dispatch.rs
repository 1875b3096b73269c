//! Delivery to a [`Handler`]: per-object order, retries that hold back only their own object,
//! and workers sharded by object.
//!
//! A [`Worker`] delivers events one at a time. When the handler fails on an event, a copy of
//! the event waits for its retry, and every later event of the same object (same uid) queues
//! behind it, while events of other objects are delivered at once; the waiting events are
//! bounded (see [`RetryPolicy`]). This is client-go's work queue discipline (an item is never
//! handled twice at once, failed items come back after a rate-limited delay), kept per event
//! instead of per key so that no change is merged away.
//!
//! With several workers, each runs as its own task and gets the events of the objects whose uid
//! hashes to it, in batches (one send per frame and worker, not per event).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::event::{Event, EventBatch, OwnedEvent};
use crate::handler::{Handler, RetryPolicy};

/// An event waiting for a delivery.
struct Waiting {
    event: OwnedEvent,
    /// Failed deliveries so far.
    failures: u32,
}

/// Delivers events to one handler, in order per object.
pub(crate) struct Worker<H> {
    handler: Arc<H>,
    policy: RetryPolicy,
    /// Objects (by uid) with events waiting, oldest first.
    waiting: HashMap<Box<str>, VecDeque<Waiting>>,
    /// When the head of each waiting object is due, in time order.
    due: BTreeSet<(Instant, u64, Box<str>)>,
    /// Tie-breaker of `due`.
    seq: u64,
    /// Events waiting, over all objects.
    count: usize,
}

impl<H: Handler> Worker<H> {
    pub fn new(handler: Arc<H>, policy: RetryPolicy) -> Worker<H> {
        Worker {
            handler,
            policy,
            waiting: HashMap::new(),
            due: BTreeSet::new(),
            seq: 0,
            count: 0,
        }
    }

    /// Whether it may take more events (fewer than `max_waiting` wait for a retry).
    pub fn has_room(&self) -> bool {
        self.count < self.policy.max_waiting
    }

    /// When the next retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _, _)| *at)
    }

    /// Whether nothing waits.
    pub fn is_idle(&self) -> bool {
        self.count == 0
    }

    /// Delivers one event, or queues it behind its object's waiting events.
    pub async fn deliver(&mut self, event: &Event<'_>) {
        // Nothing waits almost always: then no object can be held back, and the uid need not
        // be looked at.
        if !self.waiting.is_empty()
            && let Some(queue) = self.waiting.get_mut(event.uid())
        {
            queue.push_back(Waiting {
                event: event.to_owned(),
                failures: 0,
            });
            self.count += 1;
            return;
        }
        if let Err(e) = self.handler.on_event(event).await {
            self.failed(event.to_owned(), 1, &e);
        }
    }

    /// Records a failed delivery: schedules the retry, or drops the event after the last
    /// attempt. Returns whether the event waits.
    fn failed(&mut self, event: OwnedEvent, failures: u32, error: &H::Error) -> bool {
        let e = event.as_event();
        if failures >= self.policy.max_attempts {
            tracing::error!(
                gvr = %e.gvr(), namespace = e.namespace().unwrap_or(""), name = e.name(),
                resource_version = e.resource_version(), event_type = %e.event_type(),
                "handler failed {failures} times ({error}); dropping the event"
            );
            return false;
        }
        let delay = self.policy.delay(failures);
        tracing::warn!(
            gvr = %e.gvr(), namespace = e.namespace().unwrap_or(""), name = e.name(),
            resource_version = e.resource_version(),
            "handler failed ({error}); retrying in {delay:?} (attempt {} of {})",
            failures + 1, self.policy.max_attempts
        );
        let uid: Box<str> = e.uid().into();
        self.seq += 1;
        self.due
            .insert((Instant::now() + delay, self.seq, uid.clone()));
        let queue = self.waiting.entry(uid).or_default();
        queue.push_front(Waiting { event, failures });
        self.count += 1;
        true
    }

    /// Retries every object whose head is due.
    pub async fn retry_due(&mut self) {
        let now = Instant::now();
        while let Some(first) = self.due.first() {
            if first.0 > now {
                break;
            }
            let Some((_, _, uid)) = self.due.pop_first() else {
                break;
            };
            self.retry(uid).await;
        }
    }

    /// Delivers the waiting events of one object in order, until one fails again.
    async fn retry(&mut self, uid: Box<str>) {
        let Some(mut queue) = self.waiting.remove(&uid) else {
            return;
        };
        while let Some(head) = queue.pop_front() {
            self.count -= 1;
            let result = self.handler.on_event(&head.event.as_event()).await;
            if let Err(e) = result
                && self.failed(head.event, head.failures + 1, &e)
            {
                // `failed` put it back at the front of a fresh queue: keep the rest behind it.
                if let Some(fresh) = self.waiting.get_mut(&uid) {
                    fresh.extend(queue);
                }
                return;
            }
        }
    }

    /// Retries until nothing waits (every event delivered or dropped).
    pub async fn drain(&mut self) {
        while let Some(at) = self.next_due() {
            tokio::time::sleep_until(at).await;
            self.retry_due().await;
        }
    }

    /// Delivers the events of a batch at `indexes` (all when None).
    pub async fn deliver_batch(&mut self, batch: &EventBatch, indexes: Option<&[u32]>) {
        match indexes {
            None => {
                for event in batch.events() {
                    self.deliver(&event).await;
                }
            }
            Some(indexes) => {
                for &i in indexes {
                    if let Some(event) = batch.event(i as usize) {
                        self.deliver(&event).await;
                    }
                }
            }
        }
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }
}

/// Work for one worker task.
enum Job {
    /// Deliver these events of the batch.
    Events(Arc<EventBatch>, Vec<u32>),
    /// Answer once everything before has been delivered (or dropped).
    Barrier(oneshot::Sender<()>),
}

/// Several workers, each a task, fed by object.
pub(crate) struct Pool {
    senders: Vec<mpsc::Sender<Job>>,
    tasks: JoinSet<()>,
}

impl Pool {
    /// Starts `n` workers.
    pub fn start<H: Handler>(n: usize, handler: Arc<H>, policy: &RetryPolicy) -> Pool {
        let mut senders = Vec::with_capacity(n);
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            // A few frames per worker: enough to keep it busy, little to hold.
            let (tx, rx) = mpsc::channel(4);
            senders.push(tx);
            tasks.spawn(work(Worker::new(handler.clone(), policy.clone()), rx));
        }
        Pool { senders, tasks }
    }

    /// Hands each worker the events of its objects. Waits while a worker is behind.
    pub async fn dispatch(&mut self, batch: EventBatch) {
        let n = self.senders.len();
        let mut shares: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, event) in batch.events().enumerate() {
            shares[shard(event.uid(), n)].push(i as u32);
        }
        let batch = Arc::new(batch);
        for (sender, share) in self.senders.iter().zip(shares) {
            if !share.is_empty() {
                let _ = sender.send(Job::Events(batch.clone(), share)).await;
            }
        }
    }

    /// Waits until every worker has delivered (or dropped) everything it was given.
    pub async fn barrier(&mut self) {
        let mut answers = Vec::new();
        for sender in &self.senders {
            let (tx, rx) = oneshot::channel();
            if sender.send(Job::Barrier(tx)).await.is_ok() {
                answers.push(rx);
            }
        }
        for answer in answers {
            let _ = answer.await;
        }
    }

    /// Lets the workers finish what they were given (retries included) and waits for them.
    pub async fn finish(mut self) {
        self.senders.clear();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The worker of an object.
fn shard(uid: &str, n: usize) -> usize {
    let mut h = DefaultHasher::new();
    uid.hash(&mut h);
    (h.finish() % n as u64) as usize
}

async fn work<H: Handler>(mut worker: Worker<H>, mut rx: mpsc::Receiver<Job>) {
    loop {
        let due = worker.next_due();
        tokio::select! {
            biased;
            _ = sleep_until(due) => worker.retry_due().await,
            job = rx.recv(), if worker.has_room() => match job {
                Some(Job::Events(batch, indexes)) => {
                    worker.deliver_batch(&batch, Some(&indexes)).await;
                    if rx.is_empty() {
                        worker.handler().on_idle().await;
                    }
                }
                Some(Job::Barrier(done)) => {
                    worker.drain().await;
                    let _ = done.send(());
                }
                None => break,
            },
        }
    }
    worker.drain().await;
    worker.handler().on_idle().await;
}

/// Sleeps until `at`, or forever.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use std::sync::Mutex;
    use std::time::{Duration, SystemTime};

    /// Fails the first `fail` deliveries of events named `flaky`, records every success.
    struct Flaky {
        fail: Mutex<u32>,
        delivered: Mutex<Vec<String>>,
    }

    impl Handler for Flaky {
        type Error = String;

        async fn on_event(&self, event: &Event<'_>) -> Result<(), String> {
            if event.name() == "flaky" {
                let mut fail = self.fail.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    return Err("not now".into());
                }
            }
            self.delivered
                .lock()
                .unwrap()
                .push(format!("{} {}", event.name(), event.event_type()));
            Ok(())
        }
    }

    fn batch(events: &[(&str, EventType)]) -> Vec<EventBatch> {
        events
            .iter()
            .map(|(name, event_type)| {
                crate::event::tests::Sample {
                    name,
                    uid: name,
                    event_type: *event_type,
                    ..Default::default()
                }
                .batch(SystemTime::now())
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_object_waits_while_the_others_flow_and_keeps_its_order() {
        let handler = Arc::new(Flaky {
            fail: Mutex::new(2),
            delivered: Mutex::new(Vec::new()),
        });
        let mut worker = Worker::new(handler.clone(), RetryPolicy::default());
        use EventType::*;
        for b in batch(&[
            ("flaky", Added),
            ("other", Added),
            ("flaky", Updated),
            ("other", Updated),
        ]) {
            worker.deliver_batch(&b, None).await;
        }
        assert_eq!(
            *handler.delivered.lock().unwrap(),
            ["other ADDED", "other UPDATED"],
            "the other object is not held back"
        );
        assert_eq!(worker.count, 2, "the failed event and the one behind it");
        worker.drain().await;
        assert_eq!(
            *handler.delivered.lock().unwrap(),
            [
                "other ADDED",
                "other UPDATED",
                "flaky ADDED",
                "flaky UPDATED"
            ]
        );
        assert!(worker.is_idle());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_that_keeps_failing_is_dropped_and_the_next_one_delivered() {
        let handler = Arc::new(Flaky {
            fail: Mutex::new(3),
            delivered: Mutex::new(Vec::new()),
        });
        let policy = RetryPolicy::default().max_attempts(3);
        let mut worker = Worker::new(handler.clone(), policy);
        let started = Instant::now();
        for b in batch(&[("flaky", EventType::Added), ("flaky", EventType::Deleted)]) {
            worker.deliver_batch(&b, None).await;
        }
        worker.drain().await;
        assert_eq!(*handler.delivered.lock().unwrap(), ["flaky DELETED"]);
        // Three attempts of the first event: 250 ms and 500 ms in between.
        assert_eq!(started.elapsed(), Duration::from_millis(750));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_waiting_queue_takes_no_more_events() {
        let handler = Arc::new(Flaky {
            fail: Mutex::new(100),
            delivered: Mutex::new(Vec::new()),
        });
        let mut worker = Worker::new(handler, RetryPolicy::default().max_waiting(2));
        for b in batch(&[("flaky", EventType::Added), ("flaky", EventType::Updated)]) {
            worker.deliver_batch(&b, None).await;
        }
        assert!(!worker.has_room());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_delivers_each_object_in_order() {
        let handler = Arc::new(Flaky {
            fail: Mutex::new(1),
            delivered: Mutex::new(Vec::new()),
        });
        let mut pool = Pool::start(3, handler.clone(), &RetryPolicy::default());
        for b in batch(&[
            ("flaky", EventType::Added),
            ("a", EventType::Added),
            ("flaky", EventType::Updated),
            ("b", EventType::Added),
            ("flaky", EventType::Deleted),
        ]) {
            pool.dispatch(b).await;
        }
        pool.barrier().await;
        let delivered = handler.delivered.lock().unwrap().clone();
        let flaky: Vec<&String> = delivered
            .iter()
            .filter(|d| d.starts_with("flaky"))
            .collect();
        assert_eq!(flaky, ["flaky ADDED", "flaky UPDATED", "flaky DELETED"]);
        assert_eq!(delivered.len(), 5);
        pool.finish().await;
    }
}

//! The JetStream sink: the stream faro creates if missing, and the publisher task that sends
//! each event, keeps a window of publishes awaiting their acks and sends again, in order,
//! what failed (see the module documentation of [`crate::nats`]).

use std::collections::HashSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamErrorKind, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use crate::event::{Event, JsonEncoder};
use crate::handler::Handler;
use crate::metrics::{Metrics, NatsCounts};
use crate::nats::subject::covers;
use crate::nats::{Connection, Error, QUEUE_EVENTS, Result, Subjects, backoff};

/// Publishes awaiting their ack at once (the rest of [`QUEUE_EVENTS`] waits in the queue).
const WINDOW: usize = 256;

/// How the stream keeps messages (`--nats-retention`), JetStream's retention policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Until a limit (age, messages, bytes) is reached: every consumer reads everything.
    #[default]
    Limits,
    /// Until every consumer that exists has acknowledged a message.
    Interest,
    /// Until one consumer has acknowledged it (a work queue: one consumer per subject).
    WorkQueue,
}

impl Retention {
    /// The names, as flags take them.
    pub const NAMES: [&'static str; 3] = ["limits", "interest", "workqueue"];

    fn policy(self) -> RetentionPolicy {
        match self {
            Retention::Limits => RetentionPolicy::Limits,
            Retention::Interest => RetentionPolicy::Interest,
            Retention::WorkQueue => RetentionPolicy::WorkQueue,
        }
    }
}

impl FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> Result<Retention, String> {
        match s {
            "limits" => Ok(Retention::Limits),
            "interest" => Ok(Retention::Interest),
            "workqueue" => Ok(Retention::WorkQueue),
            other => Err(format!(
                "{other:?} is no retention policy (limits, interest or workqueue)"
            )),
        }
    }
}

/// The stream faro publishes to, and how it is created when it does not exist. An existing
/// stream is used as it is, as long as its subjects take faro's.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Its name (default `FARO`).
    pub name: String,
    /// Copies of each message in a JetStream cluster (1 to 5; default 1).
    pub replicas: usize,
    /// How it keeps messages (default [`Retention::Limits`]).
    pub retention: Retention,
    /// How long a message id is remembered to drop a repeat (default 2 minutes): it must
    /// exceed the time from an event's first publish to its last repeat (a checkpoint
    /// interval plus a failover).
    pub duplicate_window: Duration,
    /// Messages older than this are removed (default: kept until removed by hand).
    pub max_age: Option<Duration>,
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            name: "FARO".into(),
            replicas: 1,
            retention: Retention::Limits,
            duplicate_window: Duration::from_secs(120),
            max_age: None,
        }
    }
}

impl StreamSettings {
    /// Checks the settings without a server.
    pub fn check(&self) -> Result<()> {
        check_name("stream", &self.name)?;
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::Options(format!(
                "{} replicas: JetStream keeps 1 to 5 copies",
                self.replicas
            )));
        }
        if self.duplicate_window.is_zero() {
            return Err(Error::Options(
                "the duplicate window must be longer than 0".into(),
            ));
        }
        Ok(())
    }
}

/// Stream and bucket names: letters, digits, `-` and `_` (what JetStream takes everywhere).
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Options(format!(
            "{what} name {name:?}: only letters, digits, - and _"
        )));
    }
    Ok(())
}

/// JetStream's answers that no retry changes.
fn permanent(code: ErrorCode) -> bool {
    [
        ErrorCode::STREAM_SUBJECT_OVERLAP,
        ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED,
        ErrorCode::STREAM_INVALID_CONFIG,
        ErrorCode::STREAM_NAME_EXIST,
        ErrorCode::INSUFFICIENT_RESOURCES,
    ]
    .contains(&code)
}

/// Finds the stream, or creates it; waits while JetStream cannot answer.
async fn ensure_stream(
    connection: &Connection,
    settings: &StreamSettings,
    subjects: &Subjects,
) -> Result<()> {
    let wanted = subjects.all();
    let config = stream::Config {
        name: settings.name.clone(),
        subjects: vec![subjects.prefix_all()],
        retention: settings.retention.policy(),
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        max_age: settings.max_age.unwrap_or_default(),
        storage: StorageType::File,
        description: Some("Kubernetes changes published by faro".into()),
        ..Default::default()
    };
    let stream_error = |reason: String| Error::Stream {
        name: settings.name.clone(),
        reason,
    };
    let mut attempt = 0;
    loop {
        match connection
            .jetstream()
            .get_or_create_stream(config.clone())
            .await
        {
            Ok(stream) => {
                let info = stream.cached_info();
                let taken = &info.config.subjects;
                if !taken.iter().any(|s| covers(s, &wanted)) {
                    return Err(stream_error(format!(
                        "exists with the subjects [{}], which do not take {wanted}; name another stream (--nats-stream) or add the subjects to this one",
                        taken.join(", ")
                    )));
                }
                if info.config.num_replicas != settings.replicas
                    || info.config.retention != settings.retention.policy()
                {
                    tracing::warn!(
                        "JetStream stream {}: exists with {} replicas and retention {:?}, used as it is",
                        settings.name,
                        info.config.num_replicas,
                        info.config.retention
                    );
                }
                if info.config.duplicate_window.is_zero() {
                    tracing::warn!(
                        "JetStream stream {}: no duplicate window, events repeated after a failover are stored twice",
                        settings.name
                    );
                }
                tracing::info!(
                    "JetStream stream {}: publishing to {wanted} ({} messages stored)",
                    settings.name,
                    info.state.messages
                );
                return Ok(());
            }
            Err(e) => {
                if let CreateStreamErrorKind::JetStream(js) = e.kind()
                    && permanent(js.error_code())
                {
                    return Err(stream_error(js.to_string()));
                }
                if matches!(
                    e.kind(),
                    CreateStreamErrorKind::InvalidStreamName
                        | CreateStreamErrorKind::EmptyStreamName
                ) {
                    return Err(stream_error(e.to_string()));
                }
                if attempt % 10 == 0 {
                    tracing::warn!(
                        "JetStream stream {}: {e}; trying again (the events wait)",
                        settings.name
                    );
                }
                backoff(attempt).await;
                attempt += 1;
            }
        }
    }
}

/// One event on its way.
struct Message {
    subject: String,
    id: String,
    /// The object's uid, hashed: at most one publish per object awaits its ack, so that a
    /// retry cannot overtake a later event of the same object.
    object: u64,
    payload: Bytes,
    /// When it was first sent (retries go out in this order).
    sequence: u64,
}

enum Item {
    Publish(Message),
    /// Answered once every publish before it is acknowledged.
    Flush(oneshot::Sender<()>),
}

/// The NATS JetStream sink: cheap to clone; the publisher task ends when the last clone is
/// dropped, after sending what it was handed.
///
/// Also a [`Handler`]: run a [`Watcher`](crate::Watcher) with it to publish every event
/// (its [`flush`](Handler::flush) waits for the acks, so checkpoints count only what JetStream
/// took).
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

struct Shared {
    tx: mpsc::Sender<Item>,
    subjects: Subjects,
    counts: Arc<NatsCounts>,
    /// For the `Handler` implementation.
    encoder: Mutex<(JsonEncoder, Vec<u8>)>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("subjects", &self.shared.subjects)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Finds or creates the stream (waiting while JetStream is unreachable), then starts the
    /// publisher task. Fails when the stream cannot take faro's subjects or cannot be created
    /// as asked.
    pub async fn start(
        connection: &Connection,
        subjects: Subjects,
        stream: &StreamSettings,
        metrics: &Metrics,
    ) -> Result<Publisher> {
        stream.check()?;
        ensure_stream(connection, stream, &subjects).await?;
        let (tx, rx) = mpsc::channel(QUEUE_EVENTS);
        let counts = metrics.nats();
        tokio::spawn(publish_all(
            connection.jetstream().clone(),
            rx,
            counts.clone(),
        ));
        Ok(Publisher {
            shared: Arc::new(Shared {
                tx,
                subjects,
                counts,
                encoder: Mutex::new((JsonEncoder::new(), Vec::new())),
            }),
        })
    }

    /// The subjects published to.
    pub fn subjects(&self) -> &Subjects {
        &self.shared.subjects
    }

    /// Hands over `event`, whose JSON line is `line` (the body, without its newline); waits
    /// while [`QUEUE_EVENTS`] events wait for JetStream.
    pub async fn publish(&self, event: &Event<'_>, line: Bytes) {
        let subject = self
            .shared
            .subjects
            .subject(&event.gvr().to_string(), event.namespace());
        let uid = event.uid();
        let id = format!(
            "{uid}/{}/{}",
            event.resource_version(),
            event.event_type().as_str()
        );
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        uid.hash(&mut hasher);
        let message = Message {
            subject,
            id,
            object: hasher.finish(),
            payload: line,
            sequence: 0,
        };
        self.shared.counts.pending.fetch_add(1, Ordering::Relaxed);
        if self.shared.tx.send(Item::Publish(message)).await.is_err() {
            // The task is gone only when the runtime is shutting down.
            self.shared.counts.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Returns once every event handed over so far is acknowledged by JetStream.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Item::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Events handed over and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.shared.counts.pending.load(Ordering::Relaxed)
    }
}

impl Handler for Publisher {
    type Error = std::convert::Infallible;

    async fn on_event(&self, event: &Event<'_>) -> Result<(), Self::Error> {
        let line = {
            let mut guard = self
                .shared
                .encoder
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let (encoder, buf) = &mut *guard;
            buf.clear();
            encoder.encode(event, buf);
            let end = buf.len() - usize::from(buf.last() == Some(&b'\n'));
            Bytes::copy_from_slice(&buf[..end])
        };
        self.publish(event, line).await;
        Ok(())
    }

    async fn on_ready(&self, _streams: usize) {
        Publisher::flush(self).await;
    }

    async fn flush(&self) {
        Publisher::flush(self).await;
    }
}

type Acked = Pin<Box<dyn Future<Output = (Message, Result<PublishAck, PublishError>)> + Send>>;

/// The publisher task: sends each message as it comes, at most [`WINDOW`] awaiting their
/// acks and one per object; a failed one (an error, no ack within the timeout) is sent again
/// once the window has settled, with the others that failed, in their order, after a backoff,
/// until JetStream takes them all; no new message is sent meanwhile. The message id makes
/// JetStream drop a repeat of one it had stored (its ack was lost).
async fn publish_all(
    jetstream: async_nats::jetstream::Context,
    mut rx: mpsc::Receiver<Item>,
    counts: Arc<NatsCounts>,
) {
    let mut window: FuturesUnordered<Acked> = FuturesUnordered::new();
    let mut objects: HashSet<u64> = HashSet::new();
    let mut failed: Vec<Message> = Vec::new();
    let mut sequence: u64 = 0;
    let mut held: Option<Item> = None;
    let mut attempt: u32 = 0;
    let mut closed = false;
    loop {
        // Send again what failed, once nothing else is in flight.
        if !failed.is_empty() && window.is_empty() {
            backoff(attempt).await;
            // Not into a connection that is down: the client would only queue them behind
            // the copies already waiting there.
            while jetstream.client().connection_state() != async_nats::connection::State::Connected
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            attempt = attempt.saturating_add(1);
            failed.sort_by_key(|m| m.sequence);
            for message in failed.drain(..) {
                counts.retries.fetch_add(1, Ordering::Relaxed);
                let acked = send(&jetstream, message).await;
                window.push(acked);
            }
            continue;
        }
        if failed.is_empty() {
            if held.is_none() && !closed && window.len() < WINDOW {
                // Take the next item, or settle an ack while waiting for one.
                tokio::select! {
                    biased;
                    item = rx.recv() => match item {
                        Some(item) => held = Some(item),
                        None => closed = true,
                    },
                    Some(done) = window.next(), if !window.is_empty() => {
                        settle(done, &mut objects, &mut failed, &counts, &mut attempt);
                        continue;
                    }
                }
            }
            match held.take() {
                Some(Item::Publish(mut message)) if !objects.contains(&message.object) => {
                    objects.insert(message.object);
                    sequence += 1;
                    message.sequence = sequence;
                    let acked = send(&jetstream, message).await;
                    window.push(acked);
                    continue;
                }
                Some(Item::Flush(done)) if window.is_empty() => {
                    let _ = done.send(());
                    continue;
                }
                other => held = other,
            }
        }
        // Something waits for an ack (a flush, an object's earlier event, a full window, a
        // retry): settle one.
        match window.next().await {
            Some(done) => settle(done, &mut objects, &mut failed, &counts, &mut attempt),
            None if closed && held.is_none() && failed.is_empty() => return,
            None => {}
        }
    }
}

/// Records an ack, or a failure to send again.
fn settle(
    (message, result): (Message, Result<PublishAck, PublishError>),
    objects: &mut HashSet<u64>,
    failed: &mut Vec<Message>,
    counts: &NatsCounts,
    attempt: &mut u32,
) {
    match result {
        Ok(ack) => {
            if ack.duplicate {
                tracing::debug!(id = %message.id, "JetStream: a repeat, stored once");
            }
            objects.remove(&message.object);
            counts.pending.fetch_sub(1, Ordering::Relaxed);
            *attempt = 0;
        }
        Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
            // No retry makes it smaller: the one event that cannot be written.
            tracing::error!(
                id = %message.id,
                "JetStream: the event is larger than the server's max_payload ({} bytes); not published",
                message.payload.len()
            );
            objects.remove(&message.object);
            counts.pending.fetch_sub(1, Ordering::Relaxed);
        }
        Err(e) => {
            if *attempt == 0 && failed.is_empty() {
                tracing::warn!(
                    "JetStream: publishing failed ({e}); sending again until JetStream takes it (the events wait)"
                );
            } else {
                tracing::debug!(id = %message.id, "JetStream: publishing failed again: {e}");
            }
            failed.push(message);
        }
    }
}

/// Sends one message; its future yields the ack (or why there is none).
async fn send(jetstream: &async_nats::jetstream::Context, message: Message) -> Acked {
    let publish = PublishMessage::build()
        .payload(message.payload.clone())
        .message_id(&message.id);
    match jetstream
        .send_publish(message.subject.clone(), publish)
        .await
    {
        Ok(ack) => Box::pin(async move { (message, ack.await) }),
        Err(e) => Box::pin(async move { (message, Err(e)) }),
    }
}

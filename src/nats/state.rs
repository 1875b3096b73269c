//! The checkpoint in a JetStream key-value bucket ([`StateBucket`], a
//! [`checkpoint::Store`](crate::checkpoint::Store)).
//!
//! A state is larger than a NATS message may be (the server's `max_payload`, 1 MiB by
//! default; 100,000 objects take about 7 MiB), so it is kept in parts: the value is written as
//! keys `<key>.<generation>.<n>`, each at most half the server's `max_payload`, then the key
//! `<key>` itself is replaced by a small head naming that generation, its part count, length
//! and CRC-32; the parts of the generation before are purged after. A reader reads the head,
//! then its parts: a crash at any point leaves the last complete state readable.
//!
//! The head is replaced only if its revision is the one this process last read or wrote: a
//! leader that lost its Lease and checkpoints late cannot overwrite what the new leader saved.

use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Store, StoreFuture};
use crate::nats::publisher::check_name;
use crate::nats::{Connection, Error, Result, backoff};

/// The head of a state (the value of `<key>`).
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    format: String,
    generation: String,
    parts: usize,
    length: usize,
    crc32: u32,
}

const HEAD_FORMAT: &str = "faro-state-parts";

/// A checkpoint kept in a JetStream key-value bucket, under one key (see the module
/// documentation).
pub struct StateBucket {
    store: kv::Store,
    bucket: String,
    key: String,
    /// The largest part.
    part_bytes: usize,
    /// The head's revision as last read or written (None: no head yet).
    revision: Mutex<Option<u64>>,
    /// The generation whose parts the head names now.
    current: Mutex<Option<Head>>,
}

impl std::fmt::Debug for StateBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBucket")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Checks a `BUCKET` or `BUCKET/KEY` (the key defaults to `state`).
pub(crate) fn split_bucket(text: &str) -> Result<(String, String)> {
    let (bucket, key) = text.split_once('/').unwrap_or((text, "state"));
    check_name("key-value bucket", bucket)?;
    if key.is_empty()
        || key.starts_with('.')
        || key.ends_with('.')
        || key.contains("..")
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=/.".contains(&b))
    {
        return Err(Error::Options(format!(
            "key {key:?}: letters, digits and - _ = / . (not at an end, not two dots)"
        )));
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

impl StateBucket {
    /// The bucket named by `bucket` (`BUCKET` or `BUCKET/KEY`, key `state` by default),
    /// created if missing with `replicas` copies (history 1: only the last state matters).
    /// Waits while JetStream cannot answer.
    pub async fn open(
        connection: &Connection,
        bucket: &str,
        replicas: usize,
    ) -> Result<StateBucket> {
        let (bucket, key) = split_bucket(bucket)?;
        let jetstream = connection.jetstream();
        let mut attempt = 0;
        let store = loop {
            let failure = match jetstream.get_key_value(&bucket).await {
                Ok(store) => break store,
                Err(e)
                    if e.kind() == async_nats::jetstream::context::KeyValueErrorKind::GetBucket =>
                {
                    // Absent (or unreadable): create its stream as the key-value convention
                    // (ADR-8) has it, directly: async-nats' create_key_value first reads the
                    // account info in a form nats-server 2.9 does not answer with. A bucket
                    // another replica made meanwhile is found at the next turn.
                    match jetstream
                        .create_stream(bucket_stream(&bucket, replicas))
                        .await
                    {
                        Ok(_) => continue,
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            if attempt % 10 == 0 {
                tracing::warn!("JetStream key-value bucket {bucket}: {failure}; trying again");
            }
            if attempt >= 600 {
                return Err(Error::Bucket {
                    bucket,
                    reason: failure,
                });
            }
            backoff(attempt).await;
            attempt += 1;
        };
        // Half the largest message: the rest is the headers and the subject.
        let max_payload = connection.client().server_info().max_payload.max(64 << 10);
        Ok(StateBucket {
            store,
            bucket,
            key,
            part_bytes: max_payload / 2,
            revision: Mutex::new(None),
            current: Mutex::new(None),
        })
    }

    fn part_key(&self, generation: &str, n: usize) -> String {
        format!("{}.{generation}.{n}", self.key)
    }

    /// Retries what fails for want of a server (an outage waits), at most about `patience`.
    async fn patiently<T, E: std::fmt::Display, F: Future<Output = std::result::Result<T, E>>>(
        &self,
        what: &str,
        mut op: impl FnMut() -> F,
    ) -> std::io::Result<T> {
        let start = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if start.elapsed() < PATIENCE => {
                    if attempt % 10 == 0 {
                        tracing::warn!("{}: {what}: {e}; trying again", self.describe());
                    }
                    backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(std::io::Error::other(format!("{what}: {e}"))),
            }
        }
    }

    async fn read_value(&self) -> std::io::Result<Option<Vec<u8>>> {
        let entry = self
            .patiently("reading the head", || self.store.entry(self.key.clone()))
            .await?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            *lock(&self.revision) = None;
            return Ok(None);
        };
        let head: Head = serde_json::from_slice(&entry.value)
            .map_err(|e| std::io::Error::other(format!("the head is not a faro state ({e})")))?;
        if head.format != HEAD_FORMAT {
            return Err(std::io::Error::other(format!(
                "the head's format is {:?}, not a faro state",
                head.format
            )));
        }
        let mut value = Vec::with_capacity(head.length);
        for n in 0..head.parts {
            let key = self.part_key(&head.generation, n);
            let part = self
                .patiently("reading a part", || self.store.get(key.clone()))
                .await?
                .ok_or_else(|| std::io::Error::other(format!("part {key} is missing")))?;
            value.extend_from_slice(&part);
        }
        if value.len() != head.length || crc32fast::hash(&value) != head.crc32 {
            return Err(std::io::Error::other(format!(
                "the parts of generation {} do not add up to its head (length or checksum)",
                head.generation
            )));
        }
        *lock(&self.revision) = Some(entry.revision);
        *lock(&self.current) = Some(head);
        Ok(Some(value))
    }

    async fn write_value(&self, value: Vec<u8>) -> std::io::Result<()> {
        let generation = generation();
        let value = Bytes::from(value);
        let parts = value.len().div_ceil(self.part_bytes).max(1);
        for n in 0..parts {
            let part = value.slice(
                (n * self.part_bytes).min(value.len())
                    ..((n + 1) * self.part_bytes).min(value.len()),
            );
            let key = self.part_key(&generation, n);
            self.patiently("writing a part", || {
                self.store.put(key.clone(), part.clone())
            })
            .await?;
        }
        let head = Head {
            format: HEAD_FORMAT.into(),
            generation,
            parts,
            length: value.len(),
            crc32: crc32fast::hash(&value),
        };
        let encoded = Bytes::from(serde_json::to_vec(&head).map_err(std::io::Error::other)?);
        let known = *lock(&self.revision);
        let written = match known {
            Some(revision) => self
                .store
                .update(&self.key, encoded.clone(), revision)
                .await
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
            None => self
                .store
                .create(&self.key, encoded.clone())
                .await
                .map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
        };
        let written = match written {
            Err(failed) => {
                // The head may have been replaced though the answer was lost (a timeout):
                // then it names this generation, and its revision is this write's.
                match self.store.entry(self.key.clone()).await {
                    Ok(Some(entry))
                        if serde_json::from_slice::<Head>(&entry.value)
                            .is_ok_and(|h| h.generation == head.generation) =>
                    {
                        Ok(entry.revision)
                    }
                    _ => Err(failed),
                }
            }
            ok => ok,
        };
        let revision = match written {
            Ok(revision) => revision,
            Err((conflict, e)) => {
                for n in 0..parts {
                    let _ = self.store.purge(self.part_key(&head.generation, n)).await;
                }
                return Err(std::io::Error::other(if conflict {
                    "another replica saved the state since this one read it (it leads now); not replacing its checkpoint".to_owned()
                } else {
                    format!("replacing the head: {e}")
                }));
            }
        };
        *lock(&self.revision) = Some(revision);
        let old = lock(&self.current).replace(head);
        if let Some(old) = old {
            for n in 0..old.parts {
                let _ = self.store.purge(self.part_key(&old.generation, n)).await;
            }
        }
        Ok(())
    }
}

/// The stream of a key-value bucket that keeps one value per key.
fn bucket_stream(bucket: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some("faro's checkpoint".into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_bytes: -1,
        max_message_size: -1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// How long one read or write of the state waits for JetStream before it fails (the next
/// checkpoint tries again; at start-up the start fails).
const PATIENCE: Duration = Duration::from_secs(60);

/// A new generation's name: time and process, unique across replicas and restarts.
fn generation() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store for StateBucket {
    fn describe(&self) -> String {
        format!(
            "JetStream key-value bucket {}, key {}",
            self.bucket, self.key
        )
    }

    fn read(&self) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(self.read_value())
    }

    fn write(&self, value: Vec<u8>) -> StoreFuture<'_, ()> {
        Box::pin(self.write_value(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_take_an_optional_key() {
        assert_eq!(
            split_bucket("faro-state").unwrap(),
            ("faro-state".into(), "state".into())
        );
        assert_eq!(
            split_bucket("b/prod/eu.1").unwrap(),
            ("b".into(), "prod/eu.1".into())
        );
        for bad in ["", "a.b", "b/", "b/.x", "b/x..y", "b/x y", "a b"] {
            assert!(split_bucket(bad).is_err(), "{bad:?}");
        }
    }
}

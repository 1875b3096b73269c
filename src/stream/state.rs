//! Per-object state shared by all streams of one GVR: what has been emitted, and which streams
//! currently see each object. Pure; no I/O.
//!
//! For every tracked object faro keeps only its uid, the last emitted resourceVersion, its
//! namespace and name (for synthetic deletions) and the ids of the streams that currently
//! match it (its *holders*). That is enough for the guarantees of design.md §2:
//! - **exactly once**: an event is emitted only if its resourceVersion is newer than the last
//!   one emitted for the uid, whichever stream (config entry) reports it first;
//! - **order**: an older resourceVersion arriving late on another stream is dropped;
//! - **union semantics**: an object is visible while at least one stream holds it; it is
//!   `DELETED` only when the last holder lets go (a real deletion, leaving a selector, a relist
//!   that no longer shows it, or a stream stopped because its namespace or CRD went away).
//!
//! resourceVersions are compared as integers when both parse as one (etcd's are, and every
//! apiserver built on it); otherwise only equality is known and every different value counts
//! as newer.
//!
//! Deleted objects leave a *tombstone* (uid and deletion resourceVersion) for a minute: a list
//! snapshot taken before the deletion but processed after another stream reported it would
//! otherwise bring the object back to life. An observation older than the tombstone is stale
//! and ignored; one at the same resourceVersion is the same update seen by another entry (the
//! object moved from one entry's selector into another's) and counts as ADDED.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::managers::Digest;
use super::slab::Slab;

/// How long a tombstone is kept: longer than any list snapshot takes to be processed.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// At most this many tombstones per GVR (about 60 bytes each).
const TOMBSTONE_MAX: usize = 100_000;

/// Identifies one running stream (one server-side watch).
pub type StreamId = u32;

/// An object's uid, stored in 16 bytes when it is a canonical UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uid {
    /// Lowercase canonical UUID text, packed.
    Uuid([u8; 16]),
    /// Anything else, verbatim.
    Other(Box<str>),
}

impl Uid {
    /// Packs a uid string.
    pub fn parse(s: &str) -> Uid {
        const fn nibble(c: u8) -> u8 {
            match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => 0xff,
            }
        }
        const HEX: [u8; 256] = {
            let mut table = [0xff; 256];
            let mut i = 0;
            while i < 256 {
                table[i] = nibble(i as u8);
                i += 1;
            }
            table
        };
        let b = s.as_bytes();
        if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return Uid::Other(s.into());
        }
        let mut out = [0u8; 16];
        let mut o = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                i += 1;
                continue;
            }
            let (hi, lo) = (HEX[b[i] as usize], HEX[b[i + 1] as usize]);
            if hi | lo == 0xff || hi > 15 || lo > 15 {
                return Uid::Other(s.into());
            }
            out[o] = hi << 4 | lo;
            o += 1;
            i += 2;
        }
        Uid::Uuid(out)
    }
}

impl Uid {
    /// Appends the uid's text (as [`fmt::Display`] writes it) without formatting machinery:
    /// a checkpoint writes 100,000 of them.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match self {
            Uid::Other(s) => out.extend_from_slice(s.as_bytes()),
            Uid::Uuid(b) => {
                let mut text = [b'-'; 36];
                let mut at = 0;
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        at += 1;
                    }
                    text[at] = HEX[usize::from(byte >> 4)];
                    text[at + 1] = HEX[usize::from(byte & 15)];
                    at += 2;
                }
                out.extend_from_slice(&text);
            }
        }
    }
}

/// Appends a number's decimal digits (no formatting machinery).
pub fn write_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Hashes stream ids (small sequential integers) with one multiply.
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by stream id.
pub type IdMap<V> = HashMap<StreamId, V, std::hash::BuildHasherDefault<IdHasher>>;

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uid::Other(s) => f.write_str(s),
            Uid::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A resourceVersion, numeric when it parses as one (16 bytes either way).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Rv {
    /// An integer resourceVersion (etcd).
    Num(u64),
    /// Anything else, compared by equality only.
    Other(Arc<String>),
}

impl Rv {
    /// Parses a resourceVersion string.
    pub fn parse(s: &str) -> Rv {
        match s.parse::<u64>() {
            Ok(n) if !s.starts_with('0') || s == "0" => Rv::Num(n),
            _ => Rv::Other(Arc::new(s.to_owned())),
        }
    }

    /// Whether `self` is newer than `than` (unknown order: different means newer).
    pub fn is_newer(&self, than: &Rv) -> bool {
        match (self, than) {
            (Rv::Num(a), Rv::Num(b)) => a > b,
            (a, b) => a != b,
        }
    }

    /// The larger of two resourceVersions (the first when the order is unknown).
    pub fn max(self, other: Rv) -> Rv {
        match (&self, &other) {
            (Rv::Num(a), Rv::Num(b)) if b > a => other,
            _ => self,
        }
    }
}

impl Rv {
    /// Appends the resourceVersion's text (as [`fmt::Display`] writes it).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Rv::Num(n) => write_number(out, *n),
            Rv::Other(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
}

impl fmt::Display for Rv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rv::Num(n) => write!(f, "{n}"),
            Rv::Other(s) => f.write_str(s),
        }
    }
}

/// No namespace (cluster-scoped object).
const NO_NAMESPACE: u32 = u32::MAX;

/// What one tracked object remembers: 48 bytes (72 a [`Slab`] entry with the uid, plus 4 in
/// its half-empty index), its name kept in the GVR's [`Names`], so that 1,000,000 objects cost
/// about 100 MB and no allocation each.
#[derive(Debug)]
struct Tracked {
    rv: Rv,
    /// The managedFields digest of the last version delivered (for `changedBy`).
    managers: Digest,
    name: NameRef,
    /// Index into [`ObjectSet::namespace_names`], or `NO_NAMESPACE`.
    namespace: u32,
    first_holder: StreamId,
    // Boxed on purpose: 8 bytes instead of a Vec's 24 in every entry, and almost always None.
    #[allow(clippy::box_collection)]
    more_holders: Option<Box<Vec<StreamId>>>,
}

/// The streams that see an object: almost always one, kept inline; more only when config
/// entries overlap.
impl Tracked {
    fn holds(&self, stream: StreamId) -> bool {
        self.first_holder == stream
            || self
                .more_holders
                .as_ref()
                .is_some_and(|more| more.contains(&stream))
    }

    fn add_holder(&mut self, stream: StreamId) {
        if self.holds(stream) {
            return;
        }
        if self.first_holder == 0 {
            self.first_holder = stream;
        } else {
            self.more_holders.get_or_insert_default().push(stream);
        }
    }

    /// Removes a holder; returns whether it was one.
    fn remove_holder(&mut self, stream: StreamId) -> bool {
        let more = self.more_holders.as_deref_mut();
        let removed = if self.first_holder == stream {
            self.first_holder = more.and_then(Vec::pop).unwrap_or(0);
            true
        } else if let Some(more) = more
            && let Some(i) = more.iter().position(|&h| h == stream)
        {
            more.swap_remove(i);
            true
        } else {
            false
        };
        if self
            .more_holders
            .as_ref()
            .is_some_and(|more| more.is_empty())
        {
            self.more_holders = None;
        }
        removed
    }

    fn has_holders(&self) -> bool {
        self.first_holder != 0
    }
}

/// The decision for one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Emit `ADDED`.
    Added,
    /// Emit `UPDATED`.
    Updated,
    /// Emit `DELETED`.
    Deleted,
    /// Emit nothing (duplicate, older, or still held by another stream).
    Nothing,
}

/// An object that lost its last holder without a server event: emit a synthetic `DELETED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// Its uid.
    pub uid: Uid,
    /// Its namespace.
    pub namespace: Option<Arc<str>>,
    /// Its name.
    pub name: Box<str>,
    /// The resourceVersion to report: the cause's (relist or trigger) if newer than the last
    /// emitted one, else the last emitted one.
    pub rv: Rv,
}

/// Hashes uids cheaply: the 16 bytes of a UUID go through one folded multiply (as foldhash
/// and wyhash do), other uids through FNV-1a and the same fold. std's SipHash guards against
/// keys chosen by an attacker, which uids (chosen by the API server) are not, and costs several
/// percent of the event path. The fold matters: hashbrown takes the bucket from the low bits
/// and a tag from the top seven, so both must depend on every input byte (time-ordered or
/// sequential uids would otherwise pile into a few buckets).
#[derive(Default)]
pub struct UidHasher(u64);

fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a ^ 0x243f_6a88_85a3_08d3) * u128::from(b ^ 0x1319_8a2e_0370_7344);
    (product as u64) ^ ((product >> 64) as u64)
}

impl std::hash::Hasher for UidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Ok(uuid) = <[u8; 16]>::try_from(bytes) {
            let (lo, hi) = uuid.split_at(8);
            let lo = u64::from_le_bytes(lo.try_into().unwrap_or_default());
            let hi = u64::from_le_bytes(hi.try_into().unwrap_or_default());
            self.0 = fold(lo ^ self.0, hi);
            return;
        }
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = fold(h, bytes.len() as u64);
    }

    fn write_usize(&mut self, _: usize) {
        // The enum discriminant and length prefixes add nothing for uids.
    }
}

type UidMap<V> = HashMap<Uid, V, std::hash::BuildHasherDefault<UidHasher>>;

/// Where an object's name lies in [`Names`].
#[derive(Debug, Clone, Copy)]
struct NameRef {
    start: u32,
    len: u32,
}

/// The names of a GVR's tracked objects, end to end in one buffer: one allocation for all of
/// them instead of one each. Names of removed objects become garbage, dropped by a compaction
/// once they outweigh the live ones.
#[derive(Debug, Default)]
struct Names {
    text: String,
    garbage: usize,
}

impl Names {
    fn add(&mut self, name: &str) -> NameRef {
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        self.text.push_str(name);
        NameRef {
            start,
            len: name.len() as u32,
        }
    }

    fn get(&self, name: NameRef) -> &str {
        self.text
            .get(name.start as usize..(name.start + name.len) as usize)
            .unwrap_or_default()
    }

    fn drop_name(&mut self, name: NameRef) {
        self.garbage += name.len as usize;
    }

    /// Whether a compaction is due (garbage over 64 KiB and over half the buffer).
    fn wasteful(&self) -> bool {
        self.garbage > 64 << 10 && self.garbage * 2 > self.text.len()
    }
}

/// The index of a namespace name (every object of a namespace refers to one copy).
fn intern(namespaces: &mut HashMap<Arc<str>, u32>, names: &mut Vec<Arc<str>>, ns: &str) -> u32 {
    if let Some(&index) = namespaces.get(ns) {
        return index;
    }
    let index = u32::try_from(names.len()).unwrap_or(NO_NAMESPACE - 1);
    let name: Arc<str> = Arc::from(ns);
    names.push(name.clone());
    namespaces.insert(name, index);
    index
}

/// What a stream has done, as a checkpoint needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamProgress {
    /// Where its watch would resume (events and bookmarks seen), if it has listed.
    pub rv: Option<String>,
    /// Batches of events it has built and sent toward the consumer.
    pub built: u64,
}

/// One tracked object, as a checkpoint writes it.
#[derive(Debug, Clone, Copy)]
pub struct TrackedView<'a> {
    /// Its uid.
    pub uid: &'a Uid,
    /// The last resourceVersion delivered.
    pub rv: &'a Rv,
    /// Its namespace.
    pub namespace: Option<&'a str>,
    /// The namespace's index in this set (objects of one namespace share it; sorts cheaply).
    pub namespace_index: u32,
    /// Its name.
    pub name: &'a str,
    /// The first stream that sees it.
    pub first_holder: StreamId,
    /// The others.
    pub more_holders: &'a [StreamId],
}

/// All tracked objects of one GVR.
#[derive(Debug, Default)]
pub struct ObjectSet {
    /// Per stream, what a checkpoint needs (only kept while checkpoints are taken).
    progress: HashMap<StreamId, StreamProgress>,
    /// Bumped whenever `progress` changes: a checkpoint is due only when it moved.
    generation: u64,
    objects: Slab<Uid, Tracked, std::hash::BuildHasherDefault<UidHasher>>,
    names: Names,
    /// Namespace name → index into `namespace_names`.
    namespaces: HashMap<Arc<str>, u32>,
    namespace_names: Vec<Arc<str>>,
    /// Deletion resourceVersion and burial time of each tombstone.
    tombstones: UidMap<(Rv, Instant)>,
    /// Burials in time order. An object brought back and deleted again has two entries here;
    /// only the one whose time matches its tombstone counts.
    tombstone_order: VecDeque<(Uid, Instant)>,
    /// The last version delivered of each object, for diffs (only GVRs with diff on: empty
    /// otherwise, so that memory is unchanged without `--diff`).
    previous: UidMap<Box<[u8]>>,
}

/// What faro remembers of one version of an object besides its resourceVersion.
#[derive(Debug, Default)]
pub struct Version {
    /// The digest of its managedFields.
    pub managers: Digest,
    /// The object as diffs compare it (compact JSON, without managedFields), when its GVR is
    /// diffed.
    pub object: Option<Box<[u8]>>,
}

impl ObjectSet {
    /// Number of tracked objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Notes a stream's progress: where it would resume, and one more batch built (when
    /// `built`). Called under the same lock as the observations, so a snapshot sees both
    /// together.
    pub fn note_progress(&mut self, stream: StreamId, rv: Option<&str>, built: bool) {
        let progress = self.progress.entry(stream).or_default();
        if let Some(rv) = rv
            && progress.rv.as_deref() != Some(rv)
        {
            progress.rv = Some(rv.to_owned());
            self.generation += 1;
        }
        if built {
            progress.built += 1;
            self.generation += 1;
        }
    }

    /// Changes so far to the streams' progress.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The progress of every stream of this GVR.
    pub fn progress(&self) -> &HashMap<StreamId, StreamProgress> {
        &self.progress
    }

    /// Makes room for `more` objects (a checkpoint's).
    pub fn reserve(&mut self, more: usize) {
        self.objects.reserve(more);
    }

    /// Number of tracked objects.
    pub fn tracked_len(&self) -> usize {
        self.objects.len()
    }

    /// Every tracked object.
    pub fn tracked(&self) -> impl Iterator<Item = TrackedView<'_>> {
        self.objects.iter().map(|(uid, t)| TrackedView {
            uid,
            rv: &t.rv,
            namespace: (t.namespace != NO_NAMESPACE)
                .then(|| self.namespace_names.get(t.namespace as usize))
                .flatten()
                .map(|ns| &**ns),
            namespace_index: t.namespace,
            name: self.names.get(t.name),
            first_holder: t.first_holder,
            more_holders: t.more_holders.as_deref().map_or(&[], |v| v.as_slice()),
        })
    }

    /// An object known from a checkpoint: `stream` holds it at `rv` (as if it had been
    /// delivered in this run).
    pub fn seed(
        &mut self,
        stream: StreamId,
        uid: Uid,
        rv: Rv,
        namespace: Option<&str>,
        name: &str,
    ) {
        let hash = self.objects.hash(&uid);
        if let Some(at) = self.objects.find(hash, &uid) {
            let tracked = self.objects.at_mut(at).1;
            tracked.add_holder(stream);
            if rv.is_newer(&tracked.rv) {
                tracked.rv = rv;
            }
            return;
        }
        let namespace = namespace.map_or(NO_NAMESPACE, |ns| {
            intern(&mut self.namespaces, &mut self.namespace_names, ns)
        });
        let name = self.names.add(name);
        let tracked = Tracked {
            rv,
            // Not in checkpoints: the first change after a restart is a marked guess.
            managers: Digest::default(),
            name,
            namespace,
            first_holder: stream,
            more_holders: None,
        };
        self.objects.push(hash, uid, tracked);
    }

    /// A deletion known from elsewhere (the events file of a run that ended): an older
    /// observation of the object is stale.
    pub fn tombstone(&mut self, uid: Uid, rv: Rv) {
        self.bury(uid, rv);
    }

    fn bury(&mut self, uid: Uid, rv: Rv) {
        self.bury_at(uid, rv, Instant::now());
    }

    fn bury_at(&mut self, uid: Uid, rv: Rv, now: Instant) {
        while let Some((old, at)) = self.tombstone_order.front() {
            if now.duration_since(*at) < TOMBSTONE_TTL && self.tombstones.len() < TOMBSTONE_MAX {
                break;
            }
            if self
                .tombstones
                .get(old)
                .is_some_and(|(_, since)| since == at)
            {
                self.tombstones.remove(old);
            }
            self.tombstone_order.pop_front();
        }
        self.tombstones.insert(uid.clone(), (rv, now));
        self.tombstone_order.push_back((uid, now));
    }

    /// Stream `stream` saw object `uid` at `rv`: `present` when it now matches the stream
    /// (ADDED/MODIFIED passing the client-side filters, or a list item), absent when it left it
    /// (a DELETED event, or a MODIFIED that no longer passes the filters).
    #[cfg(test)]
    pub fn observe(
        &mut self,
        stream: StreamId,
        uid: Uid,
        rv: Rv,
        namespace: Option<&str>,
        name: &str,
        present: bool,
    ) -> Change {
        self.observe_version(
            stream,
            uid,
            rv,
            namespace,
            name,
            present,
            Version::default(),
        )
        .0
    }

    /// [`ObjectSet::observe`], also remembering what `version` gives of this version of the
    /// object (when it is delivered) and returning what was remembered of the previous one.
    #[allow(clippy::too_many_arguments)] // one observation, called from one place
    pub fn observe_version(
        &mut self,
        stream: StreamId,
        uid: Uid,
        rv: Rv,
        namespace: Option<&str>,
        name: &str,
        present: bool,
        version: Version,
    ) -> (Change, Version) {
        let nothing = (Change::Nothing, Version::default());
        // One hash per observation: it serves the lookup, and the insert or removal.
        let hash = self.objects.hash(&uid);
        let Some(at) = self.objects.find(hash, &uid) else {
            if !present {
                return nothing;
            }
            if !self.tombstones.is_empty() {
                if self
                    .tombstones
                    .get(&uid)
                    .is_some_and(|(dead, _)| dead.is_newer(&rv))
                {
                    return nothing; // a stale snapshot of a deleted object
                }
                self.tombstones.remove(&uid);
            }
            let namespace = namespace.map_or(NO_NAMESPACE, |ns| {
                intern(&mut self.namespaces, &mut self.namespace_names, ns)
            });
            let name = self.names.add(name);
            if let Some(object) = version.object {
                self.previous.insert(uid.clone(), object);
            }
            let tracked = Tracked {
                rv,
                managers: version.managers,
                name,
                namespace,
                first_holder: stream,
                more_holders: None,
            };
            self.objects.push(hash, uid, tracked);
            return (Change::Added, Version::default());
        };
        let (key, tracked) = self.objects.at_mut(at);
        let newer = rv.is_newer(&tracked.rv);
        if present {
            tracked.add_holder(stream);
            if newer {
                tracked.rv = rv;
                let managers = std::mem::replace(&mut tracked.managers, version.managers);
                let object = match version.object {
                    Some(object) => self.previous.insert(key.clone(), object),
                    None => self.previous.remove(key),
                };
                return (Change::Updated, Version { managers, object });
            }
            return nothing;
        }
        tracked.remove_holder(stream);
        if tracked.has_holders() {
            // Another stream still matches the object: it decides (it will report the same
            // change as MODIFIED, or its own DELETED).
            return nothing;
        }
        let (uid, tracked) = self.objects.remove_at(hash, at);
        self.forget_name(tracked.name);
        self.previous.remove(&uid);
        self.bury(uid, if newer { rv } else { tracked.rv });
        if newer {
            (Change::Deleted, Version::default())
        } else {
            nothing
        }
    }

    /// The uids `stream` holds.
    pub fn held_by(&self, stream: StreamId) -> Vec<Uid> {
        self.objects
            .iter()
            .filter(|(_, t)| t.holds(stream))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// `stream` lets go of `uid` without a server event (relist no longer shows it, or the stream
    /// stops because its scope went away). Returns the object if no stream holds it any more.
    pub fn release(&mut self, stream: StreamId, uid: &Uid, cause: &Rv) -> Option<Orphan> {
        let hash = self.objects.hash(uid);
        let at = self.objects.find(hash, uid)?;
        let tracked = self.objects.at_mut(at).1;
        if !tracked.remove_holder(stream) || tracked.has_holders() {
            return None;
        }
        let (_, tracked) = self.objects.remove_at(hash, at);
        self.previous.remove(uid);
        let rv = if cause.is_newer(&tracked.rv) {
            cause.clone()
        } else {
            tracked.rv
        };
        self.bury(uid.clone(), rv.clone());
        let orphan = Orphan {
            uid: uid.clone(),
            namespace: self
                .namespace_names
                .get(tracked.namespace as usize)
                .cloned(),
            name: self.names.get(tracked.name).into(),
            rv,
        };
        self.forget_name(tracked.name);
        Some(orphan)
    }

    /// A removed object's name becomes garbage; compacts the names when it outweighs them.
    fn forget_name(&mut self, name: NameRef) {
        self.names.drop_name(name);
        if !self.names.wasteful() {
            return;
        }
        let mut fresh = Names {
            text: String::with_capacity(self.names.text.len() - self.names.garbage),
            garbage: 0,
        };
        for tracked in self.objects.values_mut() {
            tracked.name = fresh.add(self.names.get(tracked.name));
        }
        self.names = fresh;
    }

    /// `stream` lets go of everything it holds; returns the objects nobody holds any more.
    pub fn release_all(&mut self, stream: StreamId, cause: &Rv) -> Vec<Orphan> {
        let held = self.held_by(stream);
        held.iter()
            .filter_map(|uid| self.release(stream, uid, cause))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Change::*;

    const U: &str = "0c2d6c8e-1111-2222-3333-444455556666";

    fn uid() -> Uid {
        Uid::parse(U)
    }

    fn rv(n: u64) -> Rv {
        Rv::Num(n)
    }

    #[test]
    fn uuids_pack_and_print_back_and_others_stay_verbatim() {
        assert!(matches!(uid(), Uid::Uuid(_)));
        assert_eq!(uid().to_string(), U);
        for other in [
            "abc",
            "0C2D6C8E-1111-2222-3333-444455556666",
            "0c2d6c8e11112222333344445555666600",
        ] {
            let parsed = Uid::parse(other);
            assert!(matches!(parsed, Uid::Other(_)), "{other}");
            assert_eq!(parsed.to_string(), other);
        }
    }

    #[test]
    fn a_tracked_object_fits_in_48_bytes() {
        assert!(
            std::mem::size_of::<Tracked>() <= 48,
            "{}",
            std::mem::size_of::<Tracked>()
        );
        assert!(std::mem::size_of::<Rv>() <= 16);
    }

    #[test]
    fn uid_hashes_spread_over_low_and_high_bits() {
        use std::hash::BuildHasher;
        let build = std::hash::BuildHasherDefault::<UidHasher>::default();
        // Sequential uids that differ only in their first bytes.
        let mut low = std::collections::HashSet::new();
        let mut top = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let h = build.hash_one(Uid::parse(&format!("{i:08x}-1111-2222-3333-444455556666")));
            low.insert(h & 0xfff);
            top.insert(h >> 57);
        }
        assert!(
            low.len() > 2500,
            "bucket bits collide: {} distinct",
            low.len()
        );
        assert_eq!(top.len(), 128, "tag bits collide");
    }

    #[test]
    fn a_tombstone_lasts_its_full_time_after_the_object_came_back_and_went_again() {
        let mut set = ObjectSet::default();
        let t0 = Instant::now();
        set.bury_at(uid(), rv(2), t0);
        // Brought back (a newer ADDED), then deleted again 59 s after the first burial.
        set.tombstones.remove(&uid());
        set.bury_at(uid(), rv(4), t0 + Duration::from_secs(59));
        // Another burial once the first has expired must not take the second tombstone along.
        set.bury_at(Uid::parse("other"), rv(5), t0 + Duration::from_secs(61));
        assert_eq!(
            set.tombstones.get(&uid()).map(|(rv, _)| rv.clone()),
            Some(rv(4))
        );
        // A stale snapshot from before the second deletion stays dead.
        assert_eq!(
            set.observe(1, uid(), rv(3), Some("ns"), "cm", true),
            Change::Nothing
        );
        set.bury_at(Uid::parse("late"), rv(6), t0 + Duration::from_secs(120));
        assert!(!set.tombstones.contains_key(&uid()), "expired in its turn");
    }

    #[test]
    fn resource_versions_compare_numerically_when_they_can() {
        assert!(rv(10).is_newer(&rv(9)));
        assert!(!rv(9).is_newer(&rv(10)));
        assert!(!rv(9).is_newer(&rv(9)));
        assert!(Rv::parse("abc").is_newer(&Rv::parse("abd")));
        assert!(!Rv::parse("abc").is_newer(&Rv::parse("abc")));
        assert_eq!(Rv::parse("007"), Rv::Other(Arc::new("007".into())));
        assert_eq!(rv(3).max(rv(7)), rv(7));
    }

    #[test]
    fn single_stream_lifecycle_emits_each_change_once() {
        let mut set = ObjectSet::default();
        assert_eq!(set.observe(1, uid(), rv(5), Some("ns"), "a", true), Added);
        assert_eq!(
            set.observe(1, uid(), rv(5), Some("ns"), "a", true),
            Nothing,
            "same rv again (relist)"
        );
        assert_eq!(set.observe(1, uid(), rv(6), Some("ns"), "a", true), Updated);
        assert_eq!(
            set.observe(1, uid(), rv(4), Some("ns"), "a", true),
            Nothing,
            "older rv"
        );
        assert_eq!(
            set.observe(1, uid(), rv(7), Some("ns"), "a", false),
            Deleted
        );
        assert_eq!(set.len(), 0);
        assert_eq!(
            set.observe(1, uid(), rv(7), Some("ns"), "a", false),
            Nothing,
            "unknown delete"
        );
    }

    #[test]
    fn overlapping_streams_emit_once_and_delete_when_the_last_lets_go() {
        let mut set = ObjectSet::default();
        assert_eq!(set.observe(1, uid(), rv(5), None, "a", true), Added);
        assert_eq!(set.observe(2, uid(), rv(5), None, "a", true), Nothing);
        assert_eq!(set.observe(2, uid(), rv(6), None, "a", true), Updated);
        assert_eq!(set.observe(1, uid(), rv(6), None, "a", true), Nothing);
        assert_eq!(
            set.observe(1, uid(), rv(9), None, "a", false),
            Nothing,
            "stream 2 still holds it"
        );
        assert_eq!(set.observe(2, uid(), rv(9), None, "a", false), Deleted);
    }

    #[test]
    fn leaving_one_selector_while_another_still_matches_is_an_update() {
        let mut set = ObjectSet::default();
        set.observe(1, uid(), rv(5), None, "a", true);
        set.observe(2, uid(), rv(5), None, "a", true);
        // rv 8 takes the object out of stream 1's selector, stream 2 sees a MODIFIED.
        assert_eq!(set.observe(1, uid(), rv(8), None, "a", false), Nothing);
        assert_eq!(set.observe(2, uid(), rv(8), None, "a", true), Updated);
    }

    #[test]
    fn a_stale_snapshot_does_not_bring_a_deleted_object_back() {
        let mut set = ObjectSet::default();
        set.observe(1, uid(), rv(5), None, "a", true);
        set.observe(2, uid(), rv(5), None, "a", true);
        assert_eq!(set.observe(1, uid(), rv(9), None, "a", false), Nothing);
        assert_eq!(set.observe(2, uid(), rv(9), None, "a", false), Deleted);
        // Stream 1 relists from a snapshot taken before rv 9.
        assert_eq!(set.observe(1, uid(), rv(5), None, "a", true), Nothing);
        assert_eq!(set.len(), 0);
        // Then its watch delivers the deletion again.
        assert_eq!(set.observe(1, uid(), rv(9), None, "a", false), Nothing);
    }

    #[test]
    fn moving_between_entries_at_one_rv_is_deleted_then_added() {
        let mut set = ObjectSet::default();
        set.observe(1, uid(), rv(5), None, "a", true);
        // rv 10 moves the object out of stream 1's selector into stream 2's.
        assert_eq!(set.observe(1, uid(), rv(10), None, "a", false), Deleted);
        assert_eq!(set.observe(2, uid(), rv(10), None, "a", true), Added);
    }

    #[test]
    fn release_synthesises_deletion_only_for_orphans_with_the_cause_rv() {
        let mut set = ObjectSet::default();
        let other = Uid::parse("other");
        set.observe(1, uid(), rv(5), Some("ns"), "a", true);
        set.observe(1, other.clone(), rv(6), Some("ns"), "b", true);
        set.observe(2, other.clone(), rv(6), Some("ns"), "b", true);
        let mut orphans = set.release_all(1, &rv(20));
        assert_eq!(orphans.len(), 1);
        let orphan = orphans.pop().unwrap();
        assert_eq!((orphan.uid, orphan.rv, &*orphan.name), (uid(), rv(20), "a"));
        assert_eq!(orphan.namespace.as_deref(), Some("ns"));
        assert_eq!(set.held_by(2), vec![other]);
    }

    #[test]
    fn release_with_an_older_cause_keeps_the_last_emitted_rv() {
        let mut set = ObjectSet::default();
        set.observe(1, uid(), rv(30), None, "a", true);
        let orphan = set.release(1, &uid(), &rv(20)).unwrap();
        assert_eq!(orphan.rv, rv(30));
        assert!(set.release(1, &uid(), &rv(40)).is_none(), "already gone");
    }
}

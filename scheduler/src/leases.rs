//! Which jobs still need the files executors hold for them, so that a draining executor
//! exits only when nothing will read its shuffle or result partitions again.
//!
//! A job needs its files while Ballista runs it (later stages read earlier stages' shuffle
//! outputs) and, once it succeeded, until its result partitions have been read: by the
//! client (each partition announced in a FlightInfo, read to its end once; a client that reads
//! nothing for [`CLIENT_TIMEOUT`] has left, as Trino's `query.client.timeout` says, and a
//! cancelled FlightInfo is not read) or by the scheduler itself (INSERT and CTAS stream the
//! result into the target). An executor also stays while tasks are bound to it.
//! The engine holds a [`Lease`] from the job's submission until whoever reads the result has
//! taken over, so there is no moment between "job finished" and "result announced" in which
//! the job looks unused.
//!
//! Executors ask through [`ClusterActions`], Flight `DoAction`s served next to Ballista's
//! scheduler gRPC (executors only know that address), and say there when a client read a
//! result partition from them (`flight-sql.results-from-executors`).
//!
//! A job that nothing needs any more has its files deleted at once ([`ResultLeases::on_unused`]:
//! the scheduler asks every executor to remove the job's directory), as Trino drops a result
//! once the client acknowledged it. Ballista only deletes them when the result TTL has passed
//! after the job: meanwhile each large result (uncompressed Arrow) stayed on the executors'
//! disks, and a server answering such queries one after the other had gigabytes of dirty
//! pages to write back (the seed's question, 500 MB per answer: 2.2 s per run, 4 s from the
//! seventh run on).

mod cluster_actions;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use cluster_actions::ClusterActions;
use tributary_proto::JobPartition;

/// How long an announced result keeps executors' files needed after it was announced or
/// last read (Trino's `query.client.timeout` default; `etc/config.properties` may set
/// another): a client silent that long has left.
/// Shorter than an executor's drain timeout, so one abandoned result never holds a drain to
/// its end.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// One result partition announced to a client: (stage, partition, executor, file).
pub type PartitionKey = (u32, u32, String, Option<u64>);

/// The key of a job's result partition.
pub(crate) fn partition_key(p: &JobPartition) -> PartitionKey {
    (p.stage_id, p.partition_id, p.executor_id.clone(), p.file_id)
}

/// What keeps one job's files needed.
#[derive(Debug, Default)]
struct JobUse {
    /// Holders of a [`Lease`] (a running statement, a write reading the result).
    holders: usize,
    /// Result partitions announced to a client and not yet read to their end.
    unread: HashSet<PartitionKey>,
    /// When unread partitions stop counting.
    expires: Option<Instant>,
}

impl JobUse {
    fn needed(&self, now: Instant) -> bool {
        self.holders > 0 || (!self.unread.is_empty() && self.expires.is_some_and(|t| now < t))
    }
}

/// What is done with a job nothing needs any more.
type OnUnused = Arc<dyn Fn(&str) + Send + Sync>;

/// Jobs whose files are still needed after Ballista finished them.
#[derive(Clone)]
pub struct ResultLeases {
    jobs: Arc<Mutex<HashMap<String, JobUse>>>,
    on_unused: Arc<std::sync::OnceLock<OnUnused>>,
    /// `query.client.timeout`: [`CLIENT_TIMEOUT`] unless configured.
    client_timeout: Duration,
}

impl Default for ResultLeases {
    fn default() -> Self {
        Self {
            jobs: Arc::default(),
            on_unused: Arc::default(),
            client_timeout: CLIENT_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for ResultLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultLeases")
            .field("jobs", &self.jobs)
            .field("client_timeout", &self.client_timeout)
            .finish_non_exhaustive()
    }
}

impl ResultLeases {
    /// Leases under `query.client.timeout` = `timeout`.
    #[must_use]
    pub fn with_client_timeout(mut self, timeout: Duration) -> Self {
        self.client_timeout = timeout;
        self
    }

    /// How long a client may leave its result unread (`query.client.timeout`): after that
    /// it has left, its unread partitions stop counting and a query whose result streams is
    /// abandoned.
    pub fn client_timeout(&self) -> Duration {
        self.client_timeout
    }

    /// Calls `unused` with each job that stops being needed: its leases dropped and its
    /// result read, abandoned or cancelled (set once, by the scheduler: it deletes the job's
    /// files).
    pub fn on_unused(&self, unused: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.on_unused.set(Arc::new(unused));
    }

    /// Tells the `on_unused` callback about `jobs` (called without the lock held).
    fn unused(&self, jobs: Vec<String>) {
        if let Some(unused) = self.on_unused.get() {
            for job in jobs {
                unused(&job);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobUse>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `job_id`'s files needed until the lease is dropped.
    pub fn hold(&self, job_id: &str) -> Lease {
        self.lock().entry(job_id.to_owned()).or_default().holders += 1;
        Lease {
            leases: self.clone(),
            job_id: job_id.to_owned(),
        }
    }

    /// Keeps `job_id`'s files needed until each of `partitions` has been read once to its
    /// end, or nothing has been read for `timeout`.
    pub fn await_reads(
        &self,
        job_id: &str,
        partitions: impl IntoIterator<Item = PartitionKey>,
        timeout: Duration,
    ) {
        let mut jobs = self.lock();
        let now = Instant::now();
        let mut abandoned: Vec<String> = jobs
            .iter()
            .filter(|(_, u)| !u.needed(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &abandoned {
            jobs.remove(id);
        }
        abandoned.retain(|id| id != job_id);
        let entry = jobs.entry(job_id.to_owned()).or_default();
        entry.unread.extend(partitions);
        entry.expires = Some(now + timeout);
        drop(jobs);
        self.unused(abandoned);
    }

    /// A client read one result partition to its end (the others get `timeout` more).
    pub fn read(&self, job_id: &str, partition: &PartitionKey, timeout: Duration) {
        self.update(job_id, |entry| {
            entry.unread.remove(partition);
            entry.expires = Some(Instant::now() + timeout);
        });
    }

    /// Nobody will read `job_id`'s result (its FlightInfo was cancelled); leases still held
    /// (a write in progress) keep it.
    pub fn forget(&self, job_id: &str) {
        self.update(job_id, |entry| entry.unread.clear());
    }

    /// Whether a lease or an unread result keeps `job_id`'s files needed.
    pub fn leased(&self, job_id: &str) -> bool {
        self.lock()
            .get(job_id)
            .is_some_and(|u| u.needed(Instant::now()))
    }

    fn release(&self, job_id: &str) {
        self.update(job_id, |entry| {
            entry.holders = entry.holders.saturating_sub(1);
        });
    }

    /// Applies `change` to `job_id`'s use (if it has one); a job no longer needed then is
    /// dropped and handed to `on_unused`.
    fn update(&self, job_id: &str, change: impl FnOnce(&mut JobUse)) {
        let mut jobs = self.lock();
        let Some(entry) = jobs.get_mut(job_id) else {
            return;
        };
        change(entry);
        if !entry.needed(Instant::now()) {
            jobs.remove(job_id);
            drop(jobs);
            self.unused(vec![job_id.to_owned()]);
        }
    }
}

/// Keeps a job's files needed while it lives.
#[derive(Debug)]
pub struct Lease {
    leases: ResultLeases,
    job_id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.leases.release(&self.job_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: u32, executor: &str) -> PartitionKey {
        (2, partition, executor.to_owned(), None)
    }

    #[test]
    fn a_job_is_needed_while_held_and_until_its_partitions_are_read() {
        let leases = ResultLeases::default();
        let minute = Duration::from_secs(60);
        let lease = leases.hold("j1");
        assert!(leases.leased("j1"));
        leases.await_reads("j1", [key(0, "e1"), key(0, "e2")], minute);
        drop(lease);
        assert!(leases.leased("j1"), "two partitions unread");
        leases.read("j1", &key(0, "e1"), minute);
        assert!(
            leases.leased("j1"),
            "the same partition on another executor unread"
        );
        leases.read("j1", &key(0, "e2"), minute);
        assert!(!leases.leased("j1"));
    }

    #[test]
    fn a_job_no_longer_needed_is_handed_to_on_unused_once() {
        let leases = ResultLeases::default();
        let unused = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&unused);
        leases.on_unused(move |job| seen.lock().expect("lock").push(job.to_owned()));
        let minute = Duration::from_secs(60);
        // Read to its end: unused once the last partition is read.
        let lease = leases.hold("read");
        leases.await_reads("read", [key(0, "e1"), key(1, "e1")], minute);
        drop(lease);
        leases.read("read", &key(0, "e1"), minute);
        assert!(unused.lock().expect("lock").is_empty());
        leases.read("read", &key(1, "e1"), minute);
        // Held, then released with nothing to read (EXPLAIN ANALYZE, an empty result).
        drop(leases.hold("held"));
        // Announced, then cancelled.
        leases.await_reads("cancelled", [key(0, "e1")], minute);
        leases.forget("cancelled");
        // Abandoned: found when the next result is announced.
        leases.await_reads("abandoned", [key(0, "e1")], Duration::ZERO);
        leases.await_reads("next", [key(0, "e1")], minute);
        leases.read("read", &key(1, "e1"), minute);
        assert_eq!(
            *unused.lock().expect("lock"),
            ["read", "held", "cancelled", "abandoned"]
        );
        assert!(leases.leased("next"));
    }

    #[test]
    fn unread_partitions_stop_counting_after_the_client_timeout_or_a_cancel() {
        let leases = ResultLeases::default();
        leases.await_reads("j2", [key(0, "e1")], Duration::ZERO);
        assert!(!leases.leased("j2"));
        assert!(!leases.leased("never-seen"));
        leases.await_reads("j3", [key(0, "e1")], Duration::from_secs(60));
        let writing = leases.hold("j3");
        leases.forget("j3");
        assert!(leases.leased("j3"), "a held lease outlives the cancel");
        drop(writing);
        assert!(!leases.leased("j3"));
    }
}

//! Results read while their job runs (`streaming_results`, on by default).
//!
//! A query's result is announced to its client as soon as the job's final stage runs
//! (`engine/run.rs`), not when the job has finished: one endpoint per final partition, as
//! before. A partition's DoGet then reads the Arrow IPC file its task is writing, message by
//! message as the task's writer flushes them, so the client receives rows while the stage
//! still computes the rest, as Trino's clients do. Ballista's execution graph tells which
//! executor runs the partition's task: the file of an executor in this process (`tributary
//! standalone`) is read from its work directory; that of an executor in another process
//! through its Flight port ([`tributary_proto::TAIL_PARTITION_ACTION`], answered by the
//! executor's `tail.rs`), over the fetcher's pooled connections.
//!
//! Ballista's pass-through writer names a partition's file after the task attempt writing
//! it (`{work dir}/{job}/{stage}/{partition}/data-{task}.arrow`), and writes the IPC
//! end-of-stream marker even when its input failed, so a file's end is not its task's
//! success: before ending a partition's stream, the read waits until the task is reported
//! successful in Ballista's execution graph (or the job has ended with that file as the
//! partition). Nothing is sent before the file holds a batch: a task attempt that fails
//! before its first batch (or whose executor is lost, or cannot be read) is replaced by the
//! next attempt's file unseen. Once rows have been sent, a failure of that attempt (or of the
//! job, or of the executor's answer) ends the stream with the error, where without streaming
//! a retry (`retry-policy=TASK`) could have hidden it, as Trino fails a query whose results
//! it does not spool; a client closing a stream before its end cancels the query
//! ([`RunningResults::stream_closed`]), and a result none of whose streams is read for
//! `query.client.timeout` is abandoned ([`RunningResults::abandoned`]). Queries under
//! `retry-policy=QUERY`, and sessions with `streaming_results = false`, are announced when
//! their job has finished.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use ballista_core::serde::protobuf::task_status;
use ballista_scheduler::state::execution_stage::{ExecutionStage, TaskInfo};
use futures::StreamExt;
use tokio::sync::watch;
use tonic::Status;
use tributary_proto::{JobPartition, TailPartition};

use crate::cluster::BallistaScheduler;
use crate::error::SchedulerError;
use crate::fetch::{IpcStream, PartitionFetcher};

mod attempt_file;
mod tail;

use attempt_file::AttemptFile;
use tail::Tail;

/// How long a read waits before looking at a partition's file again when it has not grown.
const POLL: Duration = Duration::from_millis(3);

/// How long a read of an executor in another process waits for its next messages before
/// looking at the job and the attempt (it waits on while they run).
const REMOTE_WAIT: Duration = Duration::from_millis(50);

/// Jobs remembered after they ended (their results may be read later).
const KEPT_JOBS: usize = 1024;

/// How a job whose result was announced while it ran ended: its final partitions, or why it
/// failed.
pub(crate) type JobEnd = Result<Vec<JobPartition>, Arc<SchedulerError>>;

/// The end of a job announced while running, once known.
pub(crate) type JobEndReceiver = watch::Receiver<Option<JobEnd>>;

/// Why a stream of a job's result broke after rows were sent, once one did: the job is
/// cancelled and its query fails with it.
pub(crate) type BrokenStream = watch::Receiver<Option<SchedulerError>>;

/// A job announced while running: its end, once known, and the first stream of its result
/// that broke after rows were sent.
#[derive(Clone)]
struct AnnouncedJob {
    end: JobEndReceiver,
    broken: Arc<watch::Sender<Option<SchedulerError>>>,
    /// Its result's streams open now, and since when none has been (or since it was
    /// announced): how long its client has left it unread.
    readers: Arc<Mutex<(usize, Instant)>>,
}

impl AnnouncedJob {
    /// A stream of the job's result broke (after rows were sent, or its client went away):
    /// its query fails with `cause` and its job is cancelled (by the job's watcher,
    /// `engine/run.rs`), the first such cause the query's. (Nothing happens once the job
    /// has ended.)
    fn broke(&self, cause: SchedulerError) {
        self.broken.send_if_modified(|broken| {
            let first = broken.is_none();
            if first {
                *broken = Some(cause);
            }
            first
        });
    }
}

/// Jobs announced while running, by id, and their ids in the order they were announced.
type AnnouncedJobs = (HashMap<String, AnnouncedJob>, VecDeque<String>);

/// Jobs whose results are read while they run.
#[derive(Clone)]
pub(crate) struct RunningResults {
    scheduler: BallistaScheduler,
    /// Work directories of the executors in this process, by (host, Flight port).
    local: Arc<HashMap<(String, u16), PathBuf>>,
    jobs: Arc<Mutex<AnnouncedJobs>>,
}

impl std::fmt::Debug for RunningResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningResults")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// What Ballista's graph says of the task attempt that writes a file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Running,
    Succeeded,
    Failed(String),
    /// Not in the graph of a running job (the job has ended: its end decides).
    Unknown,
}

impl RunningResults {
    pub(crate) fn new(
        scheduler: BallistaScheduler,
        local: Arc<HashMap<(String, u16), PathBuf>>,
    ) -> Self {
        Self {
            scheduler,
            local,
            jobs: Arc::default(),
        }
    }

    /// Registers a job announced while it runs: its end is sent on the returned sender, and
    /// a stream of its result that breaks after rows were sent says why on the receiver.
    pub(crate) fn announce(&self, job_id: &str) -> (watch::Sender<Option<JobEnd>>, BrokenStream) {
        let (sender, receiver) = watch::channel(None);
        let (broken, broken_receiver) = watch::channel(None);
        let job = AnnouncedJob {
            end: receiver,
            broken: Arc::new(broken),
            readers: Arc::new(Mutex::new((0, Instant::now()))),
        };
        let mut guard = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let (jobs, order) = &mut *guard;
        if jobs.insert(job_id.to_owned(), job).is_none() {
            order.push_back(job_id.to_owned());
        }
        while order.len() > KEPT_JOBS {
            if let Some(old) = order.pop_front() {
                jobs.remove(&old);
            }
        }
        (sender, broken_receiver)
    }

    /// A client opened a stream of job `job_id`'s result.
    pub(crate) fn stream_opened(&self, job_id: &str) {
        if let Some(job) = self.job(job_id) {
            job.readers.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        }
    }

    /// A stream of job `job_id`'s result was closed: at its end, or before it (`early`: what
    /// the stream was). A client closing one early (the JDBC driver and ADBC cancel so; a
    /// gRPC deadline too) cancels the query while the job runs, as `CancelFlightInfo` does.
    pub(crate) fn stream_closed(&self, job_id: &str, early: Option<String>) {
        let Some(job) = self.job(job_id) else {
            return;
        };
        {
            let mut readers = job.readers.lock().unwrap_or_else(|e| e.into_inner());
            readers.0 = readers.0.saturating_sub(1);
            readers.1 = Instant::now();
        }
        if let Some(what) = early
            && job.end.borrow().is_none()
        {
            tracing::info!(
                job_id,
                "the client closed the stream of {what} before its end: cancelling the query"
            );
            job.broke(SchedulerError::ResultStreamClosed(what));
        }
    }

    /// Resolves once job `job_id`'s result has had no stream open for `timeout`
    /// (`query.client.timeout`): its client has left, and the query is abandoned (Trino's
    /// `ABANDONED_QUERY`). A client reading one endpoint after the other keeps one open.
    pub(crate) async fn abandoned(&self, job_id: &str, timeout: Duration) -> SchedulerError {
        let Some(job) = self.job(job_id) else {
            return std::future::pending().await;
        };
        let every = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            tokio::time::sleep(every).await;
            let (open, since) = *job.readers.lock().unwrap_or_else(|e| e.into_inner());
            if open == 0 && since.elapsed() >= timeout {
                return SchedulerError::Abandoned(timeout);
            }
        }
    }

    fn job(&self, job_id: &str) -> Option<AnnouncedJob> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(job_id)
            .cloned()
    }

    /// `look` at the tasks of a job's stage in Ballista's execution graph, while the job runs
    /// and the stage runs or has succeeded.
    async fn in_stage<T>(
        &self,
        job_id: &str,
        stage_id: usize,
        look: impl FnOnce(&[TaskInfo]) -> T,
    ) -> Option<T> {
        let cache = self.scheduler.state.task_manager.get_running_job_cache();
        let key: ballista_core::JobId = job_id.to_owned().into();
        let job = cache.get(&key)?;
        let graph = job.execution_graph.read().await;
        match graph.stages().get(&stage_id) {
            Some(ExecutionStage::Running(stage)) => Some(look(&stage.task_infos)),
            Some(ExecutionStage::Successful(stage)) => Some(look(&stage.task_infos)),
            _ => None,
        }
    }

    /// The state of task `task_id` of a job's stage, from Ballista's execution graph.
    async fn attempt(&self, job_id: &str, stage_id: usize, task_id: u64) -> Attempt {
        let found = self.in_stage(job_id, stage_id, |tasks| {
            tasks
                .iter()
                .find(|t| t.task_id as u64 == task_id)
                .map(|task| match &task.task_status {
                    task_status::Status::Successful(_) => Attempt::Succeeded,
                    task_status::Status::Failed(failed) => Attempt::Failed(failed.error.clone()),
                    _ => Attempt::Running,
                })
        });
        found.await.flatten().unwrap_or(Attempt::Unknown)
    }

    /// The newest attempt at a partition that runs or succeeded, from Ballista's execution
    /// graph: its task id and executor (attempts after `after` only).
    async fn newest_attempt(&self, p: &JobPartition, after: Option<u64>) -> Option<(u64, String)> {
        let partition = p.partition_id as usize;
        let found = self.in_stage(&p.job_id, p.stage_id as usize, |tasks| {
            tasks
                .iter()
                .filter(|t| {
                    t.global_input_partition_ids.contains(&partition)
                        && after.is_none_or(|a| t.task_id as u64 > a)
                })
                .filter_map(|t| {
                    let executor = match &t.task_status {
                        task_status::Status::Running(running) => &running.executor_id,
                        task_status::Status::Successful(done) => &done.executor_id,
                        _ => return None,
                    };
                    Some((t.task_id as u64, executor.clone()))
                })
                .max_by_key(|(task_id, _)| *task_id)
        });
        found.await.flatten()
    }

    /// Opens the file attempt `task_id` writes for partition `p` on `executor_id`: in its
    /// work directory when the executor runs in this process, else through its Flight port.
    /// Why it could not, and how long to wait before trying again.
    async fn open(
        &self,
        p: &JobPartition,
        task_id: u64,
        executor_id: &str,
        fetcher: &PartitionFetcher,
    ) -> Result<AttemptFile, (String, Duration)> {
        let executor = self
            .scheduler
            .state
            .executor_manager
            .get_executor_metadata(executor_id)
            .await
            .map_err(|e| {
                (
                    format!("executor {executor_id} is not known: {e}"),
                    REMOTE_WAIT,
                )
            })?;
        if let Some(work_dir) = self.local.get(&(executor.host.clone(), executor.port)) {
            let path = partition_dir(work_dir, p).join(format!("data-{task_id}.arrow"));
            // (Not created yet by its task, which is about to.)
            return AttemptFile::local(task_id, path).map_err(|e| (e, POLL));
        }
        let location = JobPartition {
            executor_id: executor_id.to_owned(),
            host: executor.host.clone(),
            port: u32::from(executor.port),
            file_id: Some(task_id),
            running: false,
            ..p.clone()
        };
        let request = TailPartition {
            job_id: p.job_id.clone(),
            stage_id: p.stage_id,
            partition_id: p.partition_id,
            task_id,
        };
        let (client, messages) = fetcher
            .tail(&location, &request)
            .await
            .map_err(|e| (e.to_string(), REMOTE_WAIT))?;
        let place = format!(
            "the file of task {task_id} on executor {executor_id} ({}:{})",
            executor.host, executor.port
        );
        Ok(AttemptFile::remote(
            task_id,
            place,
            messages,
            client,
            fetcher.clone(),
            location,
        ))
    }

    /// The bytes of a final partition announced while its job runs: read from the file its
    /// task writes when that is in this process, else fetched once the job has ended.
    pub(crate) fn read(&self, p: JobPartition, fetcher: PartitionFetcher) -> IpcStream {
        let Some(job) = self.job(&p.job_id) else {
            let error = FlightError::Tonic(Box::new(Status::not_found(format!(
                "result partition {} of query {}: the query is no longer known",
                p.partition_id, p.job_id
            ))));
            return futures::stream::once(async { Err(error) }).boxed();
        };
        Tail::new(self.clone(), job, p, fetcher).into_stream()
    }
}

/// A result partition, for messages.
fn what(p: &JobPartition) -> String {
    format!("result partition {} of query {}", p.partition_id, p.job_id)
}

/// A partition's directory in an executor's work directory.
fn partition_dir(work_dir: &Path, p: &JobPartition) -> PathBuf {
    work_dir
        .join(&p.job_id)
        .join(p.stage_id.to_string())
        .join(p.partition_id.to_string())
}

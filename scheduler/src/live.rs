//! Results read while their job runs (`streaming_results`, on by default).
//!
//! A query's result is announced to its client as soon as the job's final stage runs
//! (`engine/run.rs`), not when the job has finished: one endpoint per final partition, as
//! before. A partition's DoGet then reads the Arrow IPC file its task is writing in an
//! executor of this process (`tributary standalone`), message by message as the task's writer
//! flushes them, so the client receives rows while the stage still computes the rest, as
//! Trino's clients do. Where the partition is not written in this process (an executor of
//! another process), the read waits for the job to end and fetches it as a finished one.
//!
//! Ballista's pass-through writer names a partition's file after the task attempt writing
//! it (`{work dir}/{job}/{stage}/{partition}/data-{task}.arrow`), and writes the IPC
//! end-of-stream marker even when its input failed, so a file's end is not its task's
//! success: before ending a partition's stream, the read waits until the task is reported
//! successful in Ballista's execution graph (or the job has ended with that file as the
//! partition). Nothing is sent before the file holds a batch: a task attempt that fails
//! before its first batch is replaced by the next attempt's file unseen. Once rows have been
//! sent, a failure of that attempt (or of the job) ends the stream with the error, where
//! without streaming a retry (`retry-policy=TASK`) could have hidden it, as Trino fails a
//! query whose results it does not spool. Queries under `retry-policy=QUERY`, and sessions
//! with `streaming_results = false`, are announced when their job has finished.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::error::FlightError;
use ballista_core::serde::protobuf::task_status;
use ballista_scheduler::state::execution_stage::{ExecutionStage, TaskInfo};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;
use tonic::Status;
use tributary_proto::JobPartition;

use crate::cluster::BallistaScheduler;
use crate::error::SchedulerError;
use crate::fetch::{IpcStream, PartitionFetcher, read_whole_messages};

/// How long a read waits before looking at a partition's file again when it has not grown.
const POLL: Duration = Duration::from_millis(3);

/// Jobs remembered after they ended (their results may be read later).
const KEPT_JOBS: usize = 1024;

/// How a job whose result was announced while it ran ended: its final partitions, or why it
/// failed.
pub(crate) type JobEnd = Result<Vec<JobPartition>, Arc<SchedulerError>>;

/// The end of a job announced while running, once known.
pub(crate) type JobEndReceiver = watch::Receiver<Option<JobEnd>>;

/// Jobs announced while running, by id, and their ids in the order they were announced.
type AnnouncedJobs = (HashMap<String, JobEndReceiver>, VecDeque<String>);

/// Jobs whose results are read while they run.
#[derive(Clone)]
pub(crate) struct RunningResults {
    scheduler: BallistaScheduler,
    /// Work directories of the executors in this process.
    work_dirs: Arc<Vec<PathBuf>>,
    jobs: Arc<Mutex<AnnouncedJobs>>,
}

impl std::fmt::Debug for RunningResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningResults")
            .field("work_dirs", &self.work_dirs)
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
    pub(crate) fn new(scheduler: BallistaScheduler, work_dirs: Vec<PathBuf>) -> Self {
        Self {
            scheduler,
            work_dirs: Arc::new(work_dirs),
            jobs: Arc::default(),
        }
    }

    /// Registers a job announced while it runs; its end is sent on the returned sender.
    pub(crate) fn announce(&self, job_id: &str) -> watch::Sender<Option<JobEnd>> {
        let (sender, receiver) = watch::channel(None);
        let mut guard = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let (jobs, order) = &mut *guard;
        if jobs.insert(job_id.to_owned(), receiver).is_none() {
            order.push_back(job_id.to_owned());
        }
        while order.len() > KEPT_JOBS {
            if let Some(old) = order.pop_front() {
                jobs.remove(&old);
            }
        }
        sender
    }

    fn job(&self, job_id: &str) -> Option<JobEndReceiver> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(job_id)
            .cloned()
    }

    /// The state of task `task_id` of a job's stage, from Ballista's execution graph.
    async fn attempt(&self, job_id: &str, stage_id: usize, task_id: u64) -> Attempt {
        let cache = self.scheduler.state.task_manager.get_running_job_cache();
        let key: ballista_core::JobId = job_id.to_owned().into();
        let Some(job) = cache.get(&key) else {
            return Attempt::Unknown;
        };
        let graph = job.execution_graph.read().await;
        let tasks: &[TaskInfo] = match graph.stages().get(&stage_id) {
            Some(ExecutionStage::Running(stage)) => &stage.task_infos,
            Some(ExecutionStage::Successful(stage)) => &stage.task_infos,
            _ => return Attempt::Unknown,
        };
        match tasks.iter().find(|t| t.task_id as u64 == task_id) {
            Some(task) => match &task.task_status {
                task_status::Status::Successful(_) => Attempt::Succeeded,
                task_status::Status::Failed(failed) => Attempt::Failed(failed.error.clone()),
                _ => Attempt::Running,
            },
            None => Attempt::Unknown,
        }
    }

    /// The newest attempt's file of a partition in this process's work directories: its
    /// task id and path (attempts after `after` only).
    fn newest_file(&self, p: &JobPartition, after: Option<u64>) -> Option<(u64, PathBuf)> {
        let mut newest: Option<(u64, PathBuf)> = None;
        for dir in self.work_dirs.iter() {
            let dir = partition_dir(dir, p);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(task) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("data-"))
                    .and_then(|n| n.strip_suffix(".arrow"))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                if after.is_some_and(|a| task <= a) {
                    continue;
                }
                if newest.as_ref().is_none_or(|(t, _)| task > *t) {
                    newest = Some((task, entry.path()));
                }
            }
        }
        newest
    }

    /// The bytes of a final partition announced while its job runs: read from the file its
    /// task writes when that is in this process, else fetched once the job has ended.
    pub(crate) fn read(&self, p: JobPartition, fetcher: PartitionFetcher) -> IpcStream {
        let Some(end) = self.job(&p.job_id) else {
            let error = FlightError::Tonic(Box::new(Status::not_found(format!(
                "result partition {} of query {}: the query is no longer known",
                p.partition_id, p.job_id
            ))));
            return futures::stream::once(async { Err(error) }).boxed();
        };
        let tail = Tail {
            results: self.clone(),
            end,
            partition: p,
            fetcher,
            file: None,
            given: false,
            confirmed: false,
            failed_attempt: None,
            finished: None,
        };
        futures::stream::unfold(tail, |mut tail| async move {
            match tail.next().await {
                Step::Bytes(bytes) => Some((Ok(bytes), tail)),
                Step::Failed(e) => {
                    tail.finished = Some(futures::stream::empty().boxed());
                    Some((Err(e), tail))
                }
                Step::Done => None,
            }
        })
        .boxed()
    }
}

/// A partition's directory in an executor's work directory.
fn partition_dir(work_dir: &Path, p: &JobPartition) -> PathBuf {
    work_dir
        .join(&p.job_id)
        .join(p.stage_id.to_string())
        .join(p.partition_id.to_string())
}

/// One step of a read.
enum Step {
    Bytes(Bytes),
    Failed(FlightError),
    Done,
}

/// The file of one task attempt, read as it grows: whole IPC messages only.
struct GrowingFile {
    task_id: u64,
    path: PathBuf,
    file: Arc<std::fs::File>,
    /// Bytes of the file read so far (whole messages).
    read_to: u64,
    /// Whole messages read and not given yet.
    pending: Vec<u8>,
    /// Whether the messages read include a record batch.
    has_batch: bool,
    /// Whether the end-of-stream marker was read (the last of the messages read).
    ended: bool,
}

impl GrowingFile {
    fn open(task_id: u64, path: PathBuf) -> std::io::Result<Self> {
        Ok(Self {
            task_id,
            file: Arc::new(std::fs::File::open(&path)?),
            path,
            read_to: 0,
            pending: Vec::new(),
            has_batch: false,
            ended: false,
        })
    }

    /// Reads the whole messages the file holds beyond those read; whether it read any.
    async fn grow(&mut self) -> std::io::Result<bool> {
        if self.ended {
            return Ok(false);
        }
        let file = Arc::clone(&self.file);
        let pending = std::mem::take(&mut self.pending);
        let at = self.read_to;
        let (pending, read) =
            tokio::task::spawn_blocking(move || read_whole_messages(&file, at, pending))
                .await
                .map_err(std::io::Error::other)?;
        self.pending = pending;
        let read = read?;
        self.read_to += read.bytes;
        self.has_batch |= read.has_batch;
        self.ended |= read.ended;
        Ok(read.bytes > 0)
    }

    /// The whole messages read, given away.
    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.pending))
    }

    fn failed(&self, e: std::io::Error) -> FlightError {
        FlightError::ExternalError(format!("cannot read {}: {e}", self.path.display()).into())
    }
}

/// A final partition read as its task writes it.
struct Tail {
    results: RunningResults,
    end: JobEndReceiver,
    partition: JobPartition,
    fetcher: PartitionFetcher,
    file: Option<GrowingFile>,
    /// Whether bytes of `file` have been given to the client.
    given: bool,
    /// Whether `file`'s task is known to have succeeded (its file is whole).
    confirmed: bool,
    /// The last attempt seen failing before anything of it was given.
    failed_attempt: Option<u64>,
    /// The rest of the partition from elsewhere (fetched once the job ended), or nothing
    /// more (an empty stream) once the file has been given to its end.
    finished: Option<IpcStream>,
}

impl Tail {
    fn what(&self) -> String {
        format!(
            "result partition {} of query {}",
            self.partition.partition_id, self.partition.job_id
        )
    }

    fn error(status: Status) -> Step {
        Step::Failed(FlightError::Tonic(Box::new(status)))
    }

    async fn next(&mut self) -> Step {
        loop {
            if let Some(finished) = &mut self.finished {
                return match finished.next().await {
                    Some(Ok(bytes)) => Step::Bytes(bytes),
                    Some(Err(e)) => Step::Failed(e),
                    None => Step::Done,
                };
            }
            if !self.confirmed {
                let ended = self.end.borrow().clone();
                if let Some(end) = ended {
                    if let Some(step) = self.after_job(end).await {
                        return step;
                    }
                    continue;
                }
                if self.end.has_changed().is_err() {
                    return Self::error(Status::internal(format!(
                        "{}: the query's job stopped being watched before it ended",
                        self.what()
                    )));
                }
            }
            let Some(file) = self.file.as_mut() else {
                match self
                    .results
                    .newest_file(&self.partition, self.failed_attempt)
                {
                    Some((task_id, path)) => match GrowingFile::open(task_id, path) {
                        Ok(file) => self.file = Some(file),
                        // (Its job may have ended and its files gone: the job's end tells.)
                        Err(_) => self.wait().await,
                    },
                    None => self.wait().await,
                }
                continue;
            };
            let grew = match file.grow().await {
                Ok(grew) => grew,
                Err(e) => return Step::Failed(file.failed(e)),
            };
            let task_id = file.task_id;
            if file.ended && !self.confirmed {
                // The writer ended its file; its task may still fail (and has, when its input
                // failed): Ballista's graph says.
                if let Some(step) = self.look_at_attempt(task_id).await {
                    return step;
                }
                continue;
            }
            let file = self.file.as_mut().expect("read above");
            if !file.pending.is_empty() && (self.given || self.confirmed || file.has_batch) {
                // Whole messages: all of a confirmed file's (its end marker included), or
                // those before the end of one still written.
                self.given = true;
                let bytes = file.take();
                if file.ended {
                    self.finished = Some(futures::stream::empty().boxed());
                }
                return Step::Bytes(bytes);
            }
            if file.ended {
                self.finished = Some(futures::stream::empty().boxed());
                continue;
            }
            if !grew {
                if self.confirmed {
                    let damaged = format!(
                        "its file {} ends inside a message ({} bytes)",
                        file.path.display(),
                        file.read_to
                    );
                    return Step::Failed(FlightError::ExternalError(
                        format!("{}: {damaged}", self.what()).into(),
                    ));
                }
                if let Some(step) = self.look_at_attempt(task_id).await {
                    return step;
                }
            }
        }
    }

    /// Asks the graph about the attempt being read, which has nothing new to give: one that
    /// succeeded has its file whole (read to its end), one that failed ends the stream or
    /// gives way to the next attempt; otherwise a little wait.
    async fn look_at_attempt(&mut self, task_id: u64) -> Option<Step> {
        match self.attempt(task_id).await {
            Attempt::Succeeded => self.confirmed = true,
            Attempt::Failed(error) => return self.attempt_failed(&error),
            Attempt::Running | Attempt::Unknown => self.wait().await,
        }
        None
    }

    /// What the graph says of attempt `task_id` (a future owning what it needs: the tail
    /// holds a stream that is not `Sync`).
    fn attempt(&self, task_id: u64) -> impl std::future::Future<Output = Attempt> + Send + 'static {
        let results = self.results.clone();
        let job_id = self.partition.job_id.clone();
        let stage_id = self.partition.stage_id as usize;
        async move { results.attempt(&job_id, stage_id, task_id).await }
    }

    /// The attempt being read failed: an error once rows were given, else the next attempt.
    fn attempt_failed(&mut self, error: &str) -> Option<Step> {
        if self.given {
            return Some(Self::error(Status::aborted(format!(
                "{} failed after its first rows were sent (streaming_results): {error}",
                self.what()
            ))));
        }
        self.failed_attempt = self.file.take().map(|f| f.task_id);
        None
    }

    /// Waits a little, or until the job ends.
    async fn wait(&mut self) {
        if let Ok(Err(_)) = tokio::time::timeout(POLL, self.end.changed()).await {
            // (The job's watcher is gone; `next` tells.)
            tokio::time::sleep(POLL).await;
        }
    }

    /// The job ended: its error; or the file being read is the partition's (read on); or the
    /// partition is fetched where the job says it is.
    async fn after_job(&mut self, end: JobEnd) -> Option<Step> {
        let partitions = match end {
            Ok(partitions) => partitions,
            Err(e) => return Some(Self::error(Status::from(e.as_ref()))),
        };
        let Some(location) = partitions.into_iter().find(|l| {
            l.stage_id == self.partition.stage_id && l.partition_id == self.partition.partition_id
        }) else {
            return Some(Self::error(Status::aborted(format!(
                "{}: the query's result no longer has this partition (its final stage ran \
                 again with other partitions); run the query again",
                self.what()
            ))));
        };
        match &self.file {
            Some(file) if location.file_id == Some(file.task_id) => {
                self.confirmed = true;
                None
            }
            _ if self.given => Some(Self::error(Status::aborted(format!(
                "{} was written again by another task after its first rows were sent \
                 (streaming_results); run the query again",
                self.what()
            )))),
            _ => match self.fetcher.fetch_ipc(&location).await {
                Ok(stream) => {
                    self.finished = Some(stream);
                    None
                }
                Err(e) => Some(Self::error(Status::from(e))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    use super::*;

    #[test]
    fn a_growing_file_is_read_in_whole_messages() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
        )
        .expect("test value");
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &schema).expect("test value");
        let schema_end = writer.get_ref().len();
        writer.write(&batch).expect("test value");
        let batch_end = writer.get_ref().len();
        writer.write(&batch).expect("test value");
        writer.finish().expect("test value");
        drop(writer);

        // The writer's bytes arrive in pieces cut anywhere: each read takes the whole messages
        // written, none of the one being written, and the reads together are the file.
        let path = std::env::temp_dir().join(format!("growing-{}.arrow", uuid::Uuid::new_v4()));
        let mut out = std::fs::File::create(&path).expect("test value");
        let file = std::fs::File::open(&path).expect("test value");
        let (mut at, mut read) = (0u64, Vec::new());
        let (mut batches, mut ended) = (false, false);
        let cuts = [
            5,
            schema_end - 1,
            schema_end + 7,
            batch_end - 1,
            batch_end,
            bytes.len(),
        ];
        for cut in cuts {
            let written = out.metadata().expect("test value").len() as usize;
            out.write_all(&bytes[written..cut]).expect("test value");
            out.flush().expect("test value");
            let (into, found) = read_whole_messages(&file, at, std::mem::take(&mut read));
            let found = found.expect("reads");
            read = into;
            at += found.bytes;
            batches |= found.has_batch;
            ended = found.ended;
            let whole = match cut {
                c if c < schema_end => 0,
                c if c < batch_end => schema_end,
                c if c < bytes.len() => batch_end,
                _ => bytes.len(),
            };
            assert_eq!(
                (at as usize, read.len()),
                (whole, whole),
                "after {cut} bytes"
            );
            assert_eq!(batches, cut >= batch_end, "after {cut} bytes");
        }
        assert!(ended, "the end-of-stream marker is the last message read");
        assert_eq!(read, bytes);

        // Bytes that are no message are an error, not a wait.
        let (_, damaged) = read_whole_messages(&file, 3, Vec::new());
        assert!(damaged.is_err());
        std::fs::remove_file(&path).expect("test value");
    }
}

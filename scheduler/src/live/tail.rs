//! A final partition read as its task writes it: the file of the newest attempt Ballista's
//! graph names, given message by message once it holds a batch, ended only when the graph
//! says the attempt succeeded, replaced unseen by the next attempt when it failed before
//! anything was given, and failing the query (`AnnouncedJob::broke`) when it breaks after.

use std::time::Duration;

use arrow_flight::error::FlightError;
use bytes::Bytes;
use futures::StreamExt;
use tonic::Status;
use tributary_proto::JobPartition;

use super::attempt_file::AttemptFile;
use super::{AnnouncedJob, Attempt, JobEnd, POLL, REMOTE_WAIT, RunningResults, what};
use crate::error::SchedulerError;
use crate::fetch::{IpcStream, PartitionFetcher};

/// One step of a read.
enum Step {
    Bytes(Bytes),
    Failed(FlightError),
    Done,
}

/// A final partition read as its task writes it.
pub(super) struct Tail {
    results: RunningResults,
    /// The job: its end, and where this read says that it broke after rows were sent.
    job: AnnouncedJob,
    partition: JobPartition,
    fetcher: PartitionFetcher,
    file: Option<AttemptFile>,
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
    pub(super) fn new(
        results: RunningResults,
        job: AnnouncedJob,
        partition: JobPartition,
        fetcher: PartitionFetcher,
    ) -> Self {
        Self {
            results,
            job,
            partition,
            fetcher,
            file: None,
            given: false,
            confirmed: false,
            failed_attempt: None,
            finished: None,
        }
    }

    /// The read as a stream of whole IPC messages, ending after the first error.
    pub(super) fn into_stream(self) -> IpcStream {
        futures::stream::unfold(self, |mut tail| async move {
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

    fn what(&self) -> String {
        what(&self.partition)
    }

    /// This read broke after rows were sent: the client's result is short, so the query
    /// fails with `cause` ([`AnnouncedJob::broke`]).
    fn broke(&self, cause: SchedulerError) {
        self.job.broke(cause);
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
                let ended = self.job.end.borrow().clone();
                if let Some(end) = ended {
                    if let Some(step) = self.after_job(end).await {
                        return step;
                    }
                    continue;
                }
                if self.job.end.has_changed().is_err() {
                    return Self::error(Status::internal(format!(
                        "{}: the query's job stopped being watched before it ended",
                        self.what()
                    )));
                }
            }
            let Some(file) = self.file.as_mut() else {
                let attempt = self
                    .results
                    .newest_attempt(&self.partition, self.failed_attempt)
                    .await;
                let Some((task_id, executor_id)) = attempt else {
                    self.wait(POLL).await;
                    continue;
                };
                match self
                    .results
                    .open(&self.partition, task_id, &executor_id, &self.fetcher)
                    .await
                {
                    Ok(file) => self.file = Some(file),
                    // Not written yet, or its executor not reached: the graph and the job's
                    // end tell what becomes of the attempt.
                    Err((e, again)) => {
                        tracing::debug!(partition = %what(&self.partition), task_id, error = %e, "attempt not opened yet");
                        self.wait(again).await;
                    }
                }
                continue;
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
            if !file.pending.is_empty() && (self.given || self.confirmed || file.has_batch) {
                // Whole messages: all of a confirmed file's (its end marker included), or
                // those before the end of one still written.
                self.given = true;
                let bytes = file.pending.pop_front().expect("not empty");
                if file.ended && file.pending.is_empty() {
                    self.finished = Some(futures::stream::empty().boxed());
                }
                return Step::Bytes(bytes);
            }
            if file.ended {
                self.finished = Some(futures::stream::empty().boxed());
                continue;
            }
            let grew = match file.grow(self.confirmed).await {
                Ok(grew) => grew,
                Err(e) if file.is_remote() && !self.given => {
                    // The executor's answer broke off before anything was given (an executor
                    // lost, its files removed): the graph tells what became of the attempt.
                    tracing::debug!(partition = %what(&self.partition), task_id, error = %e, "attempt read broke off");
                    self.file = None;
                    self.wait(REMOTE_WAIT).await;
                    continue;
                }
                Err(e) => {
                    let message =
                        format!("{}: cannot read {}: {e}", what(&self.partition), file.place);
                    let cause = if file.is_remote() {
                        SchedulerError::Unavailable(message.clone())
                    } else {
                        SchedulerError::Engine(message.clone())
                    };
                    self.broke(cause);
                    return Step::Failed(FlightError::ExternalError(message.into()));
                }
            };
            if !grew {
                if self.confirmed {
                    let damaged = format!(
                        "{}: {} ends inside a message ({} bytes)",
                        what(&self.partition),
                        file.place,
                        file.read_to
                    );
                    self.broke(SchedulerError::Engine(damaged.clone()));
                    return Step::Failed(FlightError::ExternalError(damaged.into()));
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
            Attempt::Running | Attempt::Unknown => self.wait(POLL).await,
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
            let message = format!(
                "{} failed after its first rows were sent (streaming_results): {error}",
                self.what()
            );
            self.broke(SchedulerError::job_failed(
                self.partition.job_id.clone(),
                message.clone(),
            ));
            return Some(Self::error(Status::aborted(message)));
        }
        self.failed_attempt = self.file.take().map(|f| f.task_id);
        None
    }

    /// Waits `how_long`, or until the job ends.
    async fn wait(&mut self, how_long: Duration) {
        if let Ok(Err(_)) = tokio::time::timeout(how_long, self.job.end.changed()).await {
            // (The job's watcher is gone; `next` tells.)
            tokio::time::sleep(how_long).await;
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

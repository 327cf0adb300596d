//! A result partition read while its task writes it, for a scheduler in another process
//! (`streaming_results` on a cluster of separate executors): the executor's answer to
//! [`TAIL_PARTITION_ACTION`]. It sends the whole IPC messages of the task attempt's file as
//! the task's writer flushes them, and ends after the file's end-of-stream marker.
//!
//! The file's end is not its task's success (Ballista's pass-through writer ends its file
//! even when its input failed): the scheduler asks its execution graph before it passes the
//! end on to the client. A request names one attempt (its task id), so that a scheduler never
//! reads another attempt's file as the one it asked for.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use prost::Message;
use tonic::Status;
use tributary_proto::result_files::read_whole_messages;
use tributary_proto::{TAIL_PARTITION_ACTION, TailPartition, TailedMessages};

/// How long a read waits before looking at the file again when it has not grown.
const POLL: Duration = Duration::from_millis(3);

/// How long a read waits for its attempt's file to appear (the task may still be queued on
/// this executor); the scheduler drops the read sooner when the attempt fails.
const OPEN_WAIT: Duration = Duration::from_secs(600);

/// How often a read that finds nothing new checks that its file is still there (a job's
/// files are removed once nothing needs them).
const STILL_THERE: Duration = Duration::from_secs(1);

/// The stream of one [`TAIL_PARTITION_ACTION`].
pub(crate) type TailStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;

/// Answers a [`TAIL_PARTITION_ACTION`] whose body is `body`, from files under `work_dir`.
pub(crate) fn tail_partition(work_dir: &str, body: &[u8]) -> Result<TailStream, Status> {
    let request = TailPartition::decode(body).map_err(|e| {
        Status::invalid_argument(format!("{TAIL_PARTITION_ACTION}: bad request: {e}"))
    })?;
    let path = attempt_file(Path::new(work_dir), &request)?;
    let what = format!(
        "result partition {} of job {} (task {})",
        request.partition_id, request.job_id, request.task_id
    );
    let tail = FileTail {
        path,
        what,
        file: None,
        at: 0,
        ended: false,
    };
    Ok(futures::stream::unfold(tail, |mut tail| async move {
        if tail.ended {
            return None;
        }
        let next = tail.next().await;
        if next.is_err() {
            tail.ended = true;
        }
        Some((next, tail))
    })
    .boxed())
}

/// Refuses a job id that would leave the work directory (Ballista's ids are alphanumeric).
pub(crate) fn check_job_id(job: &str) -> Result<(), Status> {
    if job.is_empty()
        || !job
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Status::invalid_argument(format!("bad job id {job:?}")));
    }
    Ok(())
}

/// The file a request names in `work_dir`, refusing job ids that would leave it.
fn attempt_file(work_dir: &Path, request: &TailPartition) -> Result<PathBuf, Status> {
    check_job_id(&request.job_id).map_err(|e| {
        Status::invalid_argument(format!("{TAIL_PARTITION_ACTION}: {}", e.message()))
    })?;
    let job = &request.job_id;
    Ok(work_dir
        .join(job)
        .join(request.stage_id.to_string())
        .join(request.partition_id.to_string())
        .join(format!("data-{}.arrow", request.task_id)))
}

/// One attempt's file, read as it grows.
struct FileTail {
    path: PathBuf,
    what: String,
    file: Option<Arc<std::fs::File>>,
    /// Bytes read so far (whole messages).
    at: u64,
    /// Whether the end-of-stream marker was sent.
    ended: bool,
}

impl FileTail {
    /// The next whole messages of the file, waiting until it has some.
    async fn next(&mut self) -> Result<arrow_flight::Result, Status> {
        let file = match &self.file {
            Some(file) => Arc::clone(file),
            None => {
                let file = Arc::new(self.open().await?);
                self.file = Some(Arc::clone(&file));
                file
            }
        };
        let mut looked = Instant::now();
        loop {
            let at = self.at;
            let read = Arc::clone(&file);
            let (messages, found) =
                tokio::task::spawn_blocking(move || read_whole_messages(&read, at, Vec::new()))
                    .await
                    .map_err(|e| Status::internal(format!("{}: {e}", self.what)))?;
            let found = found.map_err(|e| {
                Status::data_loss(format!(
                    "cannot read {} ({}): {e}",
                    self.what,
                    self.path.display()
                ))
            })?;
            if found.bytes > 0 {
                self.at += found.bytes;
                self.ended = found.ended;
                let body = TailedMessages {
                    messages: messages.into(),
                    has_batch: found.has_batch,
                    ended: found.ended,
                };
                return Ok(arrow_flight::Result {
                    body: body.encode_to_vec().into(),
                });
            }
            if looked.elapsed() > STILL_THERE {
                if !tokio::fs::try_exists(&self.path).await.unwrap_or(false) {
                    return Err(Status::not_found(format!(
                        "{}: its file {} was removed before its end",
                        self.what,
                        self.path.display()
                    )));
                }
                looked = Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Opens the file, once its task has created it.
    async fn open(&self) -> Result<std::fs::File, Status> {
        let started = Instant::now();
        loop {
            match std::fs::File::open(&self.path) {
                Ok(file) => return Ok(file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if started.elapsed() > OPEN_WAIT {
                        return Err(Status::not_found(format!(
                            "{}: no file {} after {} s",
                            self.what,
                            self.path.display(),
                            OPEN_WAIT.as_secs()
                        )));
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => {
                    return Err(Status::internal(format!(
                        "cannot open {} ({}): {e}",
                        self.what,
                        self.path.display()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_one_attempts_file_inside_the_work_dir() {
        let request = TailPartition {
            job_id: "aB3x_9-z".into(),
            stage_id: 4,
            partition_id: 2,
            task_id: 17,
        };
        assert_eq!(
            attempt_file(Path::new("/work"), &request).expect("a job id"),
            PathBuf::from("/work/aB3x_9-z/4/2/data-17.arrow")
        );
        for job in ["", "..", "../etc", "a/b", "a b"] {
            let request = TailPartition {
                job_id: job.into(),
                ..request.clone()
            };
            let err = attempt_file(Path::new("/work"), &request).expect_err(job);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{job}");
        }
    }
}

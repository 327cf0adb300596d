//! One task attempt's result file, read as it grows in whole IPC messages: from the work
//! directory of an executor in this process, or through the Flight port of an executor in
//! another ([`tributary_proto::TAIL_PARTITION_ACTION`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use tributary_proto::result_files::read_whole_messages;
use tributary_proto::{JobPartition, TailedMessages};

use super::REMOTE_WAIT;
use crate::fetch::{ExecutorClient, PartitionFetcher};

/// The file of one task attempt, read as it grows: whole IPC messages only.
pub(super) struct AttemptFile {
    pub(super) task_id: u64,
    /// The file's path, or the executor holding it (for messages).
    pub(super) place: String,
    reader: Reader,
    /// Bytes of the file read so far (whole messages).
    pub(super) read_to: u64,
    /// Whole messages read and not given yet.
    pub(super) pending: VecDeque<Bytes>,
    /// Whether the messages read include a record batch.
    pub(super) has_batch: bool,
    /// Whether the end-of-stream marker was read (the last of the messages read).
    pub(super) ended: bool,
}

/// Where an attempt's file is read from.
enum Reader {
    /// The work directory of an executor in this process.
    Local(Arc<std::fs::File>),
    /// An executor in another process.
    Remote(Box<RemoteRead>),
}

/// A file read through an executor in another process, answering
/// [`tributary_proto::TAIL_PARTITION_ACTION`]: its connection goes back to the fetcher's pool
/// once the file was read to its end.
struct RemoteRead {
    messages: tonic::Streaming<arrow_flight::Result>,
    client: Option<ExecutorClient>,
    fetcher: PartitionFetcher,
    location: JobPartition,
}

impl AttemptFile {
    /// Attempt `task_id`'s file as `location`'s executor sends it, on `client`'s connection
    /// (given back to `fetcher` at the file's end).
    pub(super) fn remote(
        task_id: u64,
        place: String,
        messages: tonic::Streaming<arrow_flight::Result>,
        client: ExecutorClient,
        fetcher: PartitionFetcher,
        location: JobPartition,
    ) -> Self {
        Self {
            task_id,
            place,
            reader: Reader::Remote(Box::new(RemoteRead {
                messages,
                client: Some(client),
                fetcher,
                location,
            })),
            read_to: 0,
            pending: VecDeque::new(),
            has_batch: false,
            ended: false,
        }
    }

    pub(super) fn local(task_id: u64, path: PathBuf) -> Result<Self, String> {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            task_id,
            place: path.display().to_string(),
            reader: Reader::Local(Arc::new(file)),
            read_to: 0,
            pending: VecDeque::new(),
            has_batch: false,
            ended: false,
        })
    }

    /// Reads the whole messages the file holds beyond those read; whether it read any. Of an
    /// executor in another process, it waits a little for them, or (`until_more`, the attempt
    /// known to have succeeded) until they come.
    pub(super) async fn grow(&mut self, until_more: bool) -> Result<bool, String> {
        if self.ended {
            return Ok(false);
        }
        match &mut self.reader {
            Reader::Local(file) => {
                let file = Arc::clone(file);
                let at = self.read_to;
                let (messages, read) =
                    tokio::task::spawn_blocking(move || read_whole_messages(&file, at, Vec::new()))
                        .await
                        .map_err(|e| e.to_string())?;
                let read = read.map_err(|e| e.to_string())?;
                if read.bytes > 0 {
                    self.read_to += read.bytes;
                    self.pending.push_back(Bytes::from(messages));
                }
                self.has_batch |= read.has_batch;
                self.ended |= read.ended;
                Ok(read.bytes > 0)
            }
            Reader::Remote(remote) => {
                let next = if until_more {
                    remote.messages.next().await
                } else {
                    match tokio::time::timeout(REMOTE_WAIT, remote.messages.next()).await {
                        Ok(next) => next,
                        Err(_) => return Ok(false),
                    }
                };
                let read = match next {
                    Some(Ok(result)) => TailedMessages::decode(result.body)
                        .map_err(|e| format!("bad answer from the executor: {e}"))?,
                    Some(Err(status)) => return Err(status.message().to_owned()),
                    None => {
                        return Err(format!(
                            "the executor's stream ended at byte {} before the file's end",
                            self.read_to
                        ));
                    }
                };
                self.read_to += read.messages.len() as u64;
                if !read.messages.is_empty() {
                    self.pending.push_back(read.messages);
                }
                self.has_batch |= read.has_batch;
                self.ended |= read.ended;
                if self.ended
                    && let Some(client) = remote.client.take()
                {
                    remote.fetcher.give_back(&remote.location, client);
                }
                Ok(true)
            }
        }
    }

    /// Whether the file is read through an executor in another process.
    pub(super) fn is_remote(&self) -> bool {
        matches!(self.reader, Reader::Remote(_))
    }
}

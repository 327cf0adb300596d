//! Reading a finished job's result partitions from the executors that hold them, over
//! pooled connections: as the Arrow IPC bytes the executor wrote (`fetch_ipc`, which the
//! Flight SQL results forward to clients without decoding what they can pass on as it is) or
//! as record batches (`fetch`, `fetch_as`: ordered merges and writes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use ballista_core::client::BlockDataStream;
use ballista_core::execution_plans::create_shuffle_path;
use ballista_core::serde::protobuf;
use ballista_core::serde::scheduler::{Action, ShuffleFileKind, ShuffleLayout};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::{Channel, Endpoint};
use tributary_connector::conform_batch;
use tributary_proto::result_files::read_whole_messages;
use tributary_proto::{JobPartition, TAIL_PARTITION_ACTION, TailPartition};
use tributary_security::InternalSecurity;

use crate::cluster::BallistaScheduler;
use crate::error::SchedulerError;
use crate::live::RunningResults;

/// Largest gRPC message the scheduler accepts from executors.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// HTTP/2 flow-control windows of a fetch (Ballista's data-plane defaults): with HTTP/2's
/// default of 64 KiB the executor waits for a window update every 64 KiB.
const STREAM_WINDOW: u32 = 16 << 20;
const CONNECTION_WINDOW: u32 = 64 << 20;

/// Ballista's executor action that streams a partition's file as written.
const BLOCK_TRANSPORT: &str = "IO_BLOCK_TRANSPORT";

/// The batches of one result partition.
pub(crate) type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch, FlightError>>;

/// The bytes of one result partition: an Arrow IPC stream (schema, then batches), in blocks
/// that need not end on message boundaries.
pub(crate) type IpcStream = futures::stream::BoxStream<'static, Result<Bytes, FlightError>>;

/// A connection to one executor's Flight port.
pub(crate) type ExecutorClient = FlightServiceClient<Channel>;

/// An executor running in the scheduler's process (`tributary standalone`): its result files
/// are read from its work directory, as Ballista's shuffle reader reads partitions of its own
/// executor, instead of through its Flight port.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// The host it registers with.
    pub host: String,
    /// Its Flight port.
    pub flight_port: u16,
    /// Its work directory.
    pub work_dir: PathBuf,
}

/// Opens result partitions on executors.
#[derive(Clone, Default)]
pub struct PartitionFetcher {
    /// Idle connections per executor. A connection serves one fetch at a time: fetches sharing
    /// an HTTP/2 connection share its flow-control window, and a stream the client reads later
    /// could then stall the one it reads now.
    executors: Arc<Mutex<IdleClients>>,
    /// TLS and the secret's token toward executors.
    internal: InternalSecurity,
    /// Work directories of the executors in this process, by (host, Flight port).
    local: Arc<HashMap<(String, u16), PathBuf>>,
    /// Results read while their jobs run.
    running: Option<RunningResults>,
}

/// Idle connections by executor (host, Flight port).
type IdleClients = HashMap<(String, u16), Vec<ExecutorClient>>;

impl std::fmt::Debug for PartitionFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionFetcher").finish_non_exhaustive()
    }
}

impl PartitionFetcher {
    /// A fetcher connecting to executors as `internal` says, reading the files of `local`
    /// executors itself.
    pub(crate) fn new(internal: InternalSecurity, local: &[LocalExecutor]) -> Self {
        Self {
            internal,
            local: Arc::new(
                local
                    .iter()
                    .map(|e| ((e.host.clone(), e.flight_port), e.work_dir.clone()))
                    .collect(),
            ),
            ..Self::default()
        }
    }

    /// Results can be read while their jobs run, Ballista's graph telling where their tasks
    /// run and how they end.
    pub(crate) fn with_running_results(mut self, scheduler: BallistaScheduler) -> Self {
        self.running = Some(RunningResults::new(scheduler, Arc::clone(&self.local)));
        self
    }

    /// Results read while their jobs run.
    pub(crate) fn running_results(&self) -> Option<&RunningResults> {
        self.running.as_ref()
    }

    /// Opens a final partition on the executor that wrote it: the bytes of its file (of a
    /// partition announced while its job runs: as its task writes it, `crate::live`).
    pub(crate) async fn fetch_ipc(&self, p: &JobPartition) -> Result<IpcStream, SchedulerError> {
        if p.running {
            let Some(running) = &self.running else {
                return Err(SchedulerError::UnknownHandle(format!(
                    "result partition {} of query {}",
                    p.partition_id, p.job_id
                )));
            };
            return Ok(running.read(p.clone(), self.clone()));
        }
        let port = u16::try_from(p.port)
            .map_err(|_| SchedulerError::Engine(format!("bad executor port {}", p.port)))?;
        let key = (p.host.clone(), port);
        if let Some(work_dir) = self.local.get(&key)
            && !p.is_sort_shuffle
        {
            return read_local(p, work_dir).await;
        }
        let action = fetch_action(p, port)?;
        let (client, blocks) = self.open_action(p, port, action).await?;
        // Give the connection back once the partition has been read to its end (a stream
        // dropped half-way drops its connection with it).
        let fetcher = self.clone();
        let location = p.clone();
        let give_back = futures::stream::once(async move {
            fetcher.give_back(&location, client);
        })
        .filter_map(|()| futures::future::ready(None));
        let partition = p.partition_id;
        let job = p.job_id.clone();
        Ok(blocks
            .map_ok(|block| block.body)
            .map_err(move |e| {
                FlightError::Tonic(Box::new(tonic::Status::new(
                    e.code(),
                    format!(
                        "cannot read result partition {partition} of query {job}: {}",
                        e.message()
                    ),
                )))
            })
            .chain(give_back)
            .boxed())
    }

    /// Asks the executor at `location` for the whole messages of a result partition's file
    /// while its task writes it ([`tributary_proto::TAIL_PARTITION_ACTION`]); the connection
    /// is the caller's until it gives it back.
    pub(crate) async fn tail(
        &self,
        location: &JobPartition,
        request: &TailPartition,
    ) -> Result<(ExecutorClient, tonic::Streaming<arrow_flight::Result>), SchedulerError> {
        let port = u16::try_from(location.port)
            .map_err(|_| SchedulerError::Engine(format!("bad executor port {}", location.port)))?;
        let action = arrow_flight::Action {
            r#type: TAIL_PARTITION_ACTION.into(),
            body: request.encode_to_vec().into(),
        };
        self.open_action(location, port, action).await
    }

    /// Sends `action` to the executor holding `p`, on an idle connection to it or a new one.
    async fn open_action(
        &self,
        p: &JobPartition,
        port: u16,
        action: arrow_flight::Action,
    ) -> Result<(ExecutorClient, tonic::Streaming<arrow_flight::Result>), SchedulerError> {
        let idle = self
            .executors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&(p.host.clone(), port))
            .and_then(Vec::pop);
        match idle {
            Some(mut client) => match client.do_action(action.clone()).await {
                Ok(response) => Ok((client, response.into_inner())),
                // The connection went stale: connect again.
                Err(_) => self.connect_and_fetch(p, port, action).await,
            },
            None => self.connect_and_fetch(p, port, action).await,
        }
    }

    /// A connection to the executor holding `p` is idle again (its stream read to its end).
    pub(crate) fn give_back(&self, p: &JobPartition, client: ExecutorClient) {
        let Ok(port) = u16::try_from(p.port) else {
            return;
        };
        self.executors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((p.host.clone(), port))
            .or_default()
            .push(client);
    }

    /// Opens a final partition on the executor that wrote it, decoded.
    pub(crate) async fn fetch(&self, p: &JobPartition) -> Result<BatchStream, SchedulerError> {
        let bytes = self
            .fetch_ipc(p)
            .await?
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)));
        let batches = BlockDataStream::try_new(bytes).await.map_err(|e| {
            SchedulerError::Unavailable(format!(
                "cannot read result partition {} of query {}: {e}",
                p.partition_id, p.job_id
            ))
        })?;
        Ok(batches
            .map_err(|e| FlightError::ExternalError(Box::new(e)))
            .boxed())
    }

    /// Opens a final partition, its batches given `schema` (the names, nullability and plain
    /// types announced to clients and expected by write targets).
    pub(crate) async fn fetch_as(
        &self,
        p: &JobPartition,
        schema: &SchemaRef,
    ) -> Result<BatchStream, SchedulerError> {
        let schema = Arc::clone(schema);
        Ok(self
            .fetch(p)
            .await?
            .map(move |b| b.and_then(|b| conform_batch(&b, &schema).map_err(FlightError::from)))
            .boxed())
    }

    async fn connect_and_fetch(
        &self,
        p: &JobPartition,
        port: u16,
        action: arrow_flight::Action,
    ) -> Result<(ExecutorClient, tonic::Streaming<arrow_flight::Result>), SchedulerError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            SchedulerError::Unavailable(format!(
                "cannot reach executor {} at {}:{port}: {e}",
                p.executor_id, p.host
            ))
        };
        let endpoint = Endpoint::from_shared(format!("http://{}:{port}", p.host))
            .map_err(|e| unreachable(&e))?
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW);
        let endpoint = self
            .internal
            .client_endpoint(endpoint)
            .map_err(|e| unreachable(&e))?;
        let channel = endpoint.connect().await.map_err(|e| unreachable(&e))?;
        let mut client = FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let blocks = client
            .do_action(action)
            .await
            .map_err(|e| {
                SchedulerError::Unavailable(format!(
                    "cannot fetch result partition {} of query {}: {}",
                    p.partition_id,
                    p.job_id,
                    e.message()
                ))
            })?
            .into_inner();
        Ok((client, blocks))
    }
}

/// A result partition's file in a local executor's work directory, read in blocks.
async fn read_local(p: &JobPartition, work_dir: &Path) -> Result<IpcStream, SchedulerError> {
    let path = create_shuffle_path(
        work_dir,
        &p.job_id.clone().into(),
        p.stage_id as usize,
        p.partition_id as usize,
        p.file_id,
        false,
    )
    .map_err(|e| SchedulerError::Engine(format!("no path for a result partition: {e}")))?;
    let what = format!("result partition {} of query {}", p.partition_id, p.job_id);
    let failed = move |e: std::io::Error, path: &Path| {
        FlightError::ExternalError(format!("cannot read {what} ({}): {e}", path.display()).into())
    };
    let opened = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&path))
            .await
            .map_err(|e| SchedulerError::Engine(format!("a file read stopped: {e}")))?
    };
    let file = opened.map_err(|e| {
        SchedulerError::Unavailable(format!(
            "cannot open result partition {} of query {} ({}): {e}",
            p.partition_id,
            p.job_id,
            path.display()
        ))
    })?;
    let path = Arc::new(path);
    let file = Arc::new(file);
    Ok(futures::stream::try_unfold(Some(0u64), move |at| {
        let path = Arc::clone(&path);
        let file = Arc::clone(&file);
        let failed = failed.clone();
        async move {
            let Some(at) = at else {
                return Ok(None);
            };
            let (block, found) =
                tokio::task::spawn_blocking(move || read_whole_messages(&file, at, Vec::new()))
                    .await
                    .map_err(|e| FlightError::ExternalError(Box::new(e)))?;
            let found = found.map_err(|e| failed(e, &path))?;
            if found.bytes == 0 {
                if at < found.length {
                    return Err(failed(
                        std::io::Error::other(format!(
                            "it ends inside a message at byte {at} of {}",
                            found.length
                        )),
                        &path,
                    ));
                }
                return Ok(None);
            }
            let next = (!found.ended).then_some(at + found.bytes);
            Ok(Some((Bytes::from(block), next)))
        }
    })
    .boxed())
}

/// The executor action asking for a result partition's whole file.
fn fetch_action(p: &JobPartition, port: u16) -> Result<arrow_flight::Action, SchedulerError> {
    let layout = if p.is_sort_shuffle {
        ShuffleLayout::Sort
    } else {
        ShuffleLayout::Passthrough
    };
    let action: protobuf::Action = Action::FetchPartition {
        job_id: p.job_id.clone().into(),
        stage_id: p.stage_id as usize,
        partition_id: p.partition_id as usize,
        host: p.host.clone(),
        port,
        file_id: p.file_id,
        layout,
        file_kind: ShuffleFileKind::Data,
        byte_ranges: vec![],
    }
    .try_into()
    .map_err(|e| SchedulerError::Engine(format!("cannot encode a partition fetch: {e}")))?;
    Ok(arrow_flight::Action {
        r#type: BLOCK_TRANSPORT.into(),
        body: action.encode_to_vec().into(),
    })
}

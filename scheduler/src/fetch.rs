//! Reading a finished job's result partitions from the executors that hold them, over
//! pooled connections: for clients (`flight_sql::results`) and for writes (INSERT, CTAS).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use ballista_core::client::BallistaClient;
use ballista_core::extension::BallistaConfigGrpcEndpoint;
use ballista_core::serde::scheduler::{PartitionId, ShuffleLayout};
use futures::{StreamExt, TryStreamExt};
use tributary_connector::conform_batch;
use tributary_proto::JobPartition;
use tributary_security::InternalSecurity;

use crate::error::SchedulerError;

/// Largest gRPC message the scheduler accepts from executors.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// The batches of one result partition.
pub(crate) type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch, FlightError>>;

/// Opens result partitions on executors.
#[derive(Clone, Default)]
pub struct PartitionFetcher {
    /// Idle connections per executor. A connection serves one fetch at a time: fetches sharing
    /// an HTTP/2 connection share its flow-control window, and a stream the client reads later
    /// could then stall the one it reads now.
    executors: Arc<Mutex<IdleClients>>,
    /// TLS and the secret's token toward executors.
    internal: InternalSecurity,
}

/// Idle connections by executor (host, Flight port).
type IdleClients = HashMap<(String, u16), Vec<BallistaClient>>;

impl std::fmt::Debug for PartitionFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionFetcher").finish_non_exhaustive()
    }
}

impl PartitionFetcher {
    /// A fetcher connecting to executors as `internal` says.
    pub(crate) fn new(internal: InternalSecurity) -> Self {
        Self {
            internal,
            ..Self::default()
        }
    }

    /// Opens a final partition on the executor that wrote it.
    pub(crate) async fn fetch(&self, p: &JobPartition) -> Result<BatchStream, SchedulerError> {
        let port = u16::try_from(p.port)
            .map_err(|_| SchedulerError::Engine(format!("bad executor port {}", p.port)))?;
        let key = (p.host.clone(), port);
        let id = PartitionId {
            job_id: p.job_id.clone().into(),
            stage_id: p.stage_id as usize,
            partition_id: p.partition_id as usize,
        };
        let layout = if p.is_sort_shuffle {
            ShuffleLayout::Sort
        } else {
            ShuffleLayout::Passthrough
        };
        let idle = self
            .executors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
            .and_then(Vec::pop);
        let (client, stream) = match idle {
            Some(mut client) => match client
                .fetch_partition(&p.executor_id, &id, p.file_id, layout, false)
                .await
            {
                Ok(stream) => (client, stream),
                // The connection went stale: connect again.
                Err(_) => self.connect_and_fetch(p, port, &id, layout).await?,
            },
            None => self.connect_and_fetch(p, port, &id, layout).await?,
        };
        // Give the connection back once the partition has been read to its end (a stream
        // dropped half-way drops its connection with it).
        let pool = Arc::clone(&self.executors);
        let give_back = futures::stream::once(async move {
            pool.lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .push(client);
        })
        .filter_map(|()| futures::future::ready(None));
        Ok(stream
            .map_err(|e| FlightError::ExternalError(Box::new(e)))
            .chain(give_back)
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
        id: &PartitionId,
        layout: ShuffleLayout,
    ) -> Result<
        (
            BallistaClient,
            datafusion::physical_plan::SendableRecordBatchStream,
        ),
        SchedulerError,
    > {
        let endpoint = Some(Arc::new(BallistaConfigGrpcEndpoint::new(
            self.internal.endpoint_override(),
        )));
        let mut client = BallistaClient::try_new(
            &p.host,
            port,
            MAX_MESSAGE_SIZE,
            self.internal.tls(),
            endpoint,
            3,
            250,
            0,
            0,
        )
        .await
        .map_err(|e| {
            SchedulerError::Unavailable(format!(
                "cannot reach executor {} at {}:{port}: {e}",
                p.executor_id, p.host
            ))
        })?;
        let stream = client
            .fetch_partition(&p.executor_id, id, p.file_id, layout, false)
            .await
            .map_err(|e| {
                SchedulerError::Unavailable(format!(
                    "cannot fetch result partition {} of query {}: {e}",
                    p.partition_id, p.job_id
                ))
            })?;
        Ok((client, stream))
    }
}

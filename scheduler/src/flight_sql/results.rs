//! Result tickets and streams: small results computed by the scheduler are kept here until
//! read; job partitions are streamed from the executor that holds them, re-encoded without
//! compression (the JDBC driver has no codec) and in the schema the FlightInfo announced.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightData, Ticket};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::Status;
use tributary_connector::conform_batch;
use tributary_proto::{JobPartition, ResultTicket, result_ticket::Target};

use crate::error::SchedulerError;
use crate::fetch::{BatchStream, PartitionFetcher};
use crate::leases::{CLIENT_TIMEOUT, ResultLeases};

/// Target size of one FlightData message towards clients (ADBC's limit is 16 MiB).
const FLIGHT_DATA_SIZE: usize = 2 * 1024 * 1024;

/// A stream of Flight data for DoGet.
pub(super) type FlightDataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// A result the scheduler computed itself, and when it was made.
type LocalResult = (SchemaRef, Vec<RecordBatch>, Instant);

/// Results waiting to be fetched.
pub(super) struct ResultStore {
    ttl: Duration,
    local: Mutex<HashMap<String, LocalResult>>,
    job_schemas: Mutex<HashMap<String, (SchemaRef, Instant)>>,
    fetcher: PartitionFetcher,
    leases: ResultLeases,
}

impl std::fmt::Debug for ResultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ResultStore {
    /// Results are forgotten `ttl` after they were made.
    pub(super) fn new(ttl: Duration, fetcher: PartitionFetcher, leases: ResultLeases) -> Self {
        Self {
            ttl,
            local: Mutex::default(),
            job_schemas: Mutex::default(),
            fetcher,
            leases,
        }
    }

    /// How long an unread result keeps executors' files needed after its last read: the
    /// client timeout, or less when results expire sooner.
    fn unread_timeout(&self) -> Duration {
        CLIENT_TIMEOUT.min(self.ttl)
    }

    /// Keeps a scheduler-computed result; returns its ticket.
    pub(super) fn put_local(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Ticket {
        let id = uuid::Uuid::new_v4().to_string();
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.retain(|_, (_, _, at)| at.elapsed() < self.ttl);
        local.insert(id.clone(), (schema, batches, Instant::now()));
        ticket(Target::Local(id))
    }

    /// Remembers the schema of a job's result; returns the tickets of its partitions. The
    /// executors holding them keep them (a draining one waits) until each is read or the
    /// TTL passes.
    pub(super) fn put_job(
        &self,
        job_id: &str,
        schema: SchemaRef,
        partitions: Vec<JobPartition>,
    ) -> Vec<Ticket> {
        let mut schemas = self.job_schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.retain(|_, (_, at)| at.elapsed() < self.ttl);
        schemas.insert(job_id.to_owned(), (schema, Instant::now()));
        self.leases.await_reads(
            job_id,
            partitions.iter().map(partition_key),
            self.unread_timeout(),
        );
        partitions
            .into_iter()
            .map(|p| ticket(Target::Partition(p)))
            .collect()
    }

    /// Streams the result a ticket names.
    pub(super) async fn stream(&self, handle: &[u8]) -> Result<FlightDataStream, SchedulerError> {
        let ticket = ResultTicket::decode(handle)
            .map_err(|_| SchedulerError::UnknownHandle("result ticket".into()))?;
        match ticket.target {
            Some(Target::Local(id)) => {
                let (schema, batches, _) = self
                    .local
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                    .ok_or_else(|| SchedulerError::UnknownHandle(format!("result {id}")))?;
                Ok(encode(
                    schema.clone(),
                    futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
                ))
            }
            Some(Target::Partition(partition)) => {
                let schema = self
                    .job_schemas
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&partition.job_id)
                    .map(|(s, _)| Arc::clone(s))
                    .ok_or_else(|| {
                        SchedulerError::UnknownHandle(format!(
                            "result of query {}",
                            partition.job_id
                        ))
                    })?;
                let batches = self.fetcher.fetch(&partition).await?;
                let target = Arc::clone(&schema);
                let conformed = batches.map(move |b| {
                    b.and_then(|b| conform_batch(&b, &target).map_err(FlightError::from))
                });
                // Read to its end: the executor may let it go.
                let leases = self.leases.clone();
                let timeout = self.unread_timeout();
                let read = futures::stream::once(async move {
                    leases.read(&partition.job_id, &partition_key(&partition), timeout);
                })
                .filter_map(|()| futures::future::ready(None));
                Ok(encode(schema, conformed.chain(read).boxed()))
            }
            None => Err(SchedulerError::UnknownHandle("empty result ticket".into())),
        }
    }
}

/// How the leases name a result partition.
fn partition_key(p: &JobPartition) -> (u32, u32, String, Option<u64>) {
    (p.stage_id, p.partition_id, p.executor_id.clone(), p.file_id)
}

fn ticket(target: Target) -> Ticket {
    let handle = ResultTicket {
        target: Some(target),
    }
    .encode_to_vec();
    Ticket::new(
        TicketStatementQuery {
            statement_handle: handle.into(),
        }
        .as_any()
        .encode_to_vec(),
    )
}

/// Gives a batch the announced schema (names, nullability, non-view types).
fn encode(schema: SchemaRef, batches: BatchStream) -> FlightDataStream {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(FLIGHT_DATA_SIZE)
        .build(batches)
        .map_err(|e| Status::internal(format!("cannot stream result: {e}")));
    Box::pin(stream)
}

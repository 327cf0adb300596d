//! Result tickets and streams: small results computed by the scheduler are kept here until
//! read; job partitions are streamed from the executor that holds them, without compression
//! (the JDBC driver has no codec) and in the schema the FlightInfo announced, forwarded as
//! they were written where they already are so (`forward`). An
//! ordered result is one ticket: its sorted partitions merged here as they stream
//! (`engine::ResultOrder`), with its LIMIT and OFFSET.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightData, FlightEndpoint, IpcMessage, SchemaAsIpc, Ticket};
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, UnboundedMemoryPool};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::{
    RecordBatchReceiverStreamBuilder, RecordBatchStreamAdapter,
};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::Status;
use tributary_proto::{
    DirectPartition, JobPartition, MergedResult, ResultSortKey, ResultTicket, result_ticket::Target,
};
use tributary_security::InternalSecurity;

use crate::engine::ResultOrder;
use crate::error::SchedulerError;
use crate::fetch::{BatchStream, PartitionFetcher};
use crate::leases::{ResultLeases, partition_key};
use crate::live::RunningResults;

/// Target size of one FlightData message towards clients.
pub(super) const FLIGHT_DATA_SIZE: usize = tributary_proto::CLIENT_FLIGHT_DATA_BYTES;

/// Rows per batch of a merged (ordered) result.
const MERGE_BATCH_ROWS: usize = 8192;

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
    /// Clients read job partitions from the executors, under tickets signed with this
    /// (`flight-sql.results-from-executors`).
    direct: Option<InternalSecurity>,
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
    pub(super) fn new(
        ttl: Duration,
        fetcher: PartitionFetcher,
        leases: ResultLeases,
        direct: Option<InternalSecurity>,
    ) -> Self {
        Self {
            ttl,
            local: Mutex::default(),
            job_schemas: Mutex::default(),
            fetcher,
            leases,
            direct,
        }
    }

    /// How long an unread result keeps executors' files needed after its last read: the
    /// client timeout, or less when results expire sooner.
    fn unread_timeout(&self) -> Duration {
        self.leases.client_timeout().min(self.ttl)
    }

    /// Keeps a scheduler-computed result; returns its ticket.
    pub(super) fn put_local(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Ticket {
        let id = uuid::Uuid::new_v4().to_string();
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.retain(|_, (_, _, at)| at.elapsed() < self.ttl);
        local.insert(id.clone(), (schema, batches, Instant::now()));
        ticket(Target::Local(id))
    }

    /// Remembers the schema of a job's result; returns the endpoints of its partitions (one
    /// merging them all when the result is ordered). The executors holding them keep them (a
    /// draining one waits) until each is read or the TTL passes. Under
    /// `flight-sql.results-from-executors` a finished partition's endpoint is its executor,
    /// with a signed ticket (`executor/src/direct.rs` checks it).
    pub(super) fn put_job(
        &self,
        job_id: &str,
        schema: SchemaRef,
        partitions: Vec<JobPartition>,
        order: Option<ResultOrder>,
    ) -> Result<Vec<FlightEndpoint>, SchedulerError> {
        let mut schemas = self.job_schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.retain(|_, (_, at)| at.elapsed() < self.ttl);
        schemas.insert(job_id.to_owned(), (Arc::clone(&schema), Instant::now()));
        drop(schemas);
        self.leases.await_reads(
            job_id,
            partitions.iter().map(partition_key),
            self.unread_timeout(),
        );
        match order {
            Some(order) if !partitions.is_empty() => Ok(vec![FlightEndpoint::new().with_ticket(
                ticket(Target::Merged(MergedResult {
                    partitions,
                    keys: order.keys,
                    skip: order.skip as u64,
                    fetch: order.fetch.map(|f| f as u64),
                })),
            )]),
            _ => partitions
                .into_iter()
                .map(|p| match &self.direct {
                    Some(internal) if !p.running => self.direct_endpoint(internal, &schema, p),
                    _ => Ok(FlightEndpoint::new().with_ticket(ticket(Target::Partition(p)))),
                })
                .collect(),
        }
    }

    /// The endpoint of a partition read from its executor: its Flight address, and a ticket
    /// naming the partition and the announced schema until the result's time to live has
    /// passed, signed with the cluster's secret.
    fn direct_endpoint(
        &self,
        internal: &InternalSecurity,
        schema: &SchemaRef,
        p: JobPartition,
    ) -> Result<FlightEndpoint, SchedulerError> {
        let IpcMessage(schema) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e| SchedulerError::Engine(format!("cannot encode result schema: {e}")))?;
        let expires = SystemTime::now() + self.ttl;
        let location = format!(
            "{}://{}:{}",
            if internal.tls() { "grpc+tls" } else { "grpc" },
            p.host,
            p.port
        );
        let mut direct = DirectPartition {
            partition: Some(p),
            schema,
            expires_unix_ms: DirectPartition::unix_ms(expires),
            signature: Bytes::new(),
        };
        direct.signature = internal.sign(&direct.signed()).unwrap_or_default().into();
        Ok(FlightEndpoint::new()
            .with_ticket(ticket(Target::Direct(direct)))
            .with_location(location))
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
            // (A client that fetched a signed partition here instead of from its executor.)
            Some(Target::Direct(DirectPartition {
                partition: Some(partition),
                ..
            })) => self.partition(partition).await,
            Some(Target::Partition(partition)) => {
                let watch = self.closed_early(partition.running.then(|| {
                    let what = format!(
                        "result partition {} of query {}",
                        partition.partition_id, partition.job_id
                    );
                    (partition.job_id.clone(), what)
                }));
                watch.over(self.partition(partition).await)
            }
            Some(Target::Merged(merged)) => {
                let watch =
                    self.closed_early(merged.partitions.iter().find(|p| p.running).map(|p| {
                        (
                            p.job_id.clone(),
                            format!("the ordered result of query {}", p.job_id),
                        )
                    }));
                watch.over(self.merged(merged).await)
            }
            Some(Target::Direct(DirectPartition {
                partition: None, ..
            }))
            | None => Err(SchedulerError::UnknownHandle("empty result ticket".into())),
        }
    }
}

impl ResultStore {
    /// A job's result partition, forwarded as read.
    async fn partition(&self, partition: JobPartition) -> Result<FlightDataStream, SchedulerError> {
        let schema = self.job_schema(&partition.job_id)?;
        let blocks = self.fetcher.fetch_ipc(&partition).await?;
        // Read to its end: the executor may let it go.
        let read = self.read_marker(vec![partition]);
        let stream =
            super::forward::forward(schema, blocks)
                .chain(read.filter_map(|_| {
                    futures::future::ready(None::<Result<FlightData, FlightError>>)
                }))
                .map_err(stream_error);
        Ok(Box::pin(stream))
    }

    /// A job's sorted result partitions, merged.
    async fn merged(&self, merged: MergedResult) -> Result<FlightDataStream, SchedulerError> {
        let Some(job_id) = merged.partitions.first().map(|p| p.job_id.clone()) else {
            return Err(SchedulerError::UnknownHandle("empty merged result".into()));
        };
        let schema = self.job_schema(&job_id)?;
        let streams = futures::future::try_join_all(
            merged
                .partitions
                .iter()
                .map(|p| self.fetcher.fetch_as(p, &schema)),
        )
        .await?;
        let merged_rows = merge(
            Arc::clone(&schema),
            streams,
            &merged.keys,
            usize::try_from(merged.skip).unwrap_or(usize::MAX),
            merged
                .fetch
                .map(|f| usize::try_from(f).unwrap_or(usize::MAX)),
        )?;
        // Read to its end (or its LIMIT): the executors may let every partition go.
        let read = self.read_marker(merged.partitions);
        Ok(encode(schema, merged_rows.chain(read).boxed()))
    }

    /// Armed from a DoGet's start when `running` (the job and what the stream is) names a
    /// result announced while its job ran: the client going away before the stream's end
    /// cancels the query, even while the stream is still being opened.
    fn closed_early(&self, running: Option<(String, String)>) -> ClosedEarly {
        ClosedEarly::new(running.and_then(|(job_id, what)| {
            Some((self.fetcher.running_results()?.clone(), job_id, what))
        }))
    }

    /// The announced schema of a job's result.
    fn job_schema(&self, job_id: &str) -> Result<SchemaRef, SchedulerError> {
        self.job_schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
            .map(|(s, _)| Arc::clone(s))
            .ok_or_else(|| SchedulerError::UnknownHandle(format!("result of query {job_id}")))
    }

    /// An empty stream telling the leases, when polled, that `partitions` have been read.
    fn read_marker(&self, partitions: Vec<JobPartition>) -> BatchStream {
        let leases = self.leases.clone();
        let timeout = self.unread_timeout();
        futures::stream::once(async move {
            for partition in &partitions {
                leases.read(&partition.job_id, &partition_key(partition), timeout);
            }
        })
        .filter_map(|()| futures::future::ready(None))
        .boxed()
    }
}

/// A client that goes away before the end of a result stream of a job announced while
/// running (the JDBC driver and ADBC cancel a query by cancelling its `DoGet`; a gRPC
/// deadline runs out; the connection is lost) cancels the query, as Trino's clients cancel by
/// closing their result. A stream that ended, or failed with its query's error, does not.
/// While one is open the result is being read (`query.client.timeout` does not run). It tells
/// the job's [`RunningResults`] when it opens and when it is dropped.
struct ClosedEarly {
    /// The results, the job and what the stream is (none: not a running job's).
    watched: Option<(RunningResults, String, String)>,
    /// The stream ended (or could not open): closing it cancels nothing.
    ended: bool,
}

impl ClosedEarly {
    fn new(watched: Option<(RunningResults, String, String)>) -> Self {
        if let Some((results, job_id, _)) = &watched {
            results.stream_opened(job_id);
        }
        Self {
            watched,
            ended: false,
        }
    }

    /// The stream opened, watched until its end; or why it could not be (the query's own
    /// error: nothing to cancel).
    fn over(
        mut self,
        opened: Result<FlightDataStream, SchedulerError>,
    ) -> Result<FlightDataStream, SchedulerError> {
        match opened {
            Ok(stream) if self.watched.is_some() => Ok(Box::pin(UntilRead {
                stream,
                watch: self,
            })),
            opened => {
                self.ended = true;
                opened
            }
        }
    }
}

impl Drop for ClosedEarly {
    fn drop(&mut self) {
        if let Some((results, job_id, what)) = self.watched.take() {
            results.stream_closed(&job_id, (!self.ended).then_some(what));
        }
    }
}

/// A result stream watched until its end.
struct UntilRead {
    stream: FlightDataStream,
    watch: ClosedEarly,
}

impl Stream for UntilRead {
    type Item = Result<FlightData, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = self.stream.as_mut().poll_next(cx);
        if matches!(next, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.watch.ended = true;
        }
        next
    }
}

/// Sorted partitions merged by `keys` (columns of `schema`), `skip` rows skipped and at most
/// `fetch` returned; the merge runs ahead of the reads ([`read_ahead`]).
fn merge(
    schema: SchemaRef,
    partitions: Vec<BatchStream>,
    keys: &[ResultSortKey],
    skip: usize,
    fetch: Option<usize>,
) -> Result<BatchStream, SchedulerError> {
    let mut ordering = Vec::with_capacity(keys.len());
    for key in keys {
        let index = key.column as usize;
        let field = schema.fields().get(index).ok_or_else(|| {
            SchedulerError::UnknownHandle(format!("sort key {index} of a merged result"))
        })?;
        ordering.push(PhysicalSortExpr::new(
            Arc::new(Column::new(field.name(), index)),
            SortOptions {
                descending: key.descending,
                nulls_first: key.nulls_first,
            },
        ));
    }
    let ordering = LexOrdering::new(ordering)
        .ok_or_else(|| SchedulerError::UnknownHandle("merged result without keys".into()))?;
    let inputs = partitions
        .into_iter()
        .map(|p| {
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&schema),
                p.map_err(|e| DataFusionError::External(Box::new(e))),
            )) as SendableRecordBatchStream
        })
        .collect();
    // The merge holds one batch per partition; the scheduler's memory is not a query's.
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
    let merged = StreamingMergeBuilder::new()
        .with_streams(inputs)
        .with_schema(schema)
        .with_expressions(&ordering)
        .with_metrics(BaselineMetrics::new(&ExecutionPlanMetricsSet::new(), 0))
        .with_batch_size(MERGE_BATCH_ROWS)
        .with_fetch(fetch.map(|f| f.saturating_add(skip)))
        .with_reservation(MemoryConsumer::new("result merge").register(&pool))
        .build()?;
    let mut to_skip = skip;
    Ok(read_ahead(merged)
        .filter_map(move |batch| {
            let batch = match batch {
                Ok(batch) if to_skip > 0 => {
                    let rows = batch.num_rows();
                    if rows <= to_skip {
                        to_skip -= rows;
                        None
                    } else {
                        let rest = batch.slice(to_skip, rows - to_skip);
                        to_skip = 0;
                        Some(Ok(rest))
                    }
                }
                Ok(batch) => Some(Ok(batch)),
                Err(e) => Some(Err(FlightError::ExternalError(Box::new(e)))),
            };
            futures::future::ready(batch)
        })
        .boxed())
}

/// Merged batches computed ahead of the client's reads.
const MERGE_READ_AHEAD: usize = 4;

/// Runs `batches` in a task of its own, up to [`MERGE_READ_AHEAD`] batches ahead of the
/// returned stream, so that the merge and the encoding of Flight data for the client run on
/// both cores (a merge polled by the response stream's task alone keeps one busy while the
/// other waits: 0.1-0.2 s of the fetch of the seed query's 6.9 M ordered rows). DataFusion's
/// receiver stream: dropping it (the client went away) aborts the task, and a panic in the
/// task reaches the reader instead of ending the result early as if it were whole.
fn read_ahead(mut batches: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let mut builder = RecordBatchReceiverStreamBuilder::new(batches.schema(), MERGE_READ_AHEAD);
    let tx = builder.tx();
    builder.spawn(async move {
        while let Some(batch) = batches.next().await {
            let failed = batch.is_err();
            if tx.send(batch).await.is_err() || failed {
                break;
            }
        }
        Ok(())
    });
    builder.build()
}

/// How the leases name a result partition.
/// A result stream's error for the client: a query's own status as it is (a failed or
/// cancelled query, `crate::live`), anything else as an internal error.
fn stream_error(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(status) => *status,
        e => Status::internal(format!("cannot stream result: {e}")),
    }
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
        .map_err(stream_error);
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[tokio::test]
    async fn the_read_ahead_keeps_order_and_stops_when_the_reader_goes_away() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let stream_schema = Arc::clone(&schema);
        let made = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&made);
        // An endless merge: only the reader's going away ends it.
        let endless = futures::stream::iter(0..).map(move |n: i64| {
            counter.fetch_add(1, Ordering::SeqCst);
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(vec![n]))],
            )
            .map_err(DataFusionError::from)
        });
        let batches = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&stream_schema),
            endless,
        ));
        let mut ahead = read_ahead(batches);
        for expected in 0..10 {
            let batch = ahead.next().await.expect("a batch").expect("no error");
            let column = batch.column(0).as_any().downcast_ref::<Int64Array>();
            assert_eq!(column.map(|c| c.value(0)), Some(expected));
        }
        drop(ahead);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stopped_at = made.load(Ordering::SeqCst);
        assert!(
            stopped_at <= 10 + MERGE_READ_AHEAD + 2,
            "{stopped_at} batches made"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(made.load(Ordering::SeqCst), stopped_at, "the merge went on");
    }

    #[tokio::test]
    async fn a_merge_that_panics_fails_the_read_instead_of_ending_it() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let first = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .map_err(DataFusionError::from);
        let broken = futures::stream::iter([first]).chain(futures::stream::poll_fn(
            |_| -> std::task::Poll<Option<_>> { panic!("the merge broke") },
        ));
        let batches = Box::pin(RecordBatchStreamAdapter::new(schema, broken));
        let read =
            tokio::spawn(async move { read_ahead(batches).collect::<Vec<_>>().await.len() }).await;
        assert!(
            read.is_err_and(|e| e.is_panic()),
            "the result ended as if whole"
        );
    }
}

//! A result partition read by a client straight from this executor
//! (`flight-sql.results-from-executors`): the client holds a ticket the scheduler signed with
//! the cluster's shared secret (`tributary_proto::DirectPartition`), which stands for the
//! client's credentials here (the executor has none of them). The partition's file is sent as
//! the scheduler would send it: the announced schema first, then each batch in that schema,
//! uncompressed. A partition read to its end is told to the scheduler
//! (`tributary_proto::RESULT_READ_ACTION`), which lets the job's files go once all are read.

use std::io::BufReader;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightData, IpcMessage};
use ballista_core::execution_plans::create_shuffle_path;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::Status;
use tonic::transport::Channel;
use tributary_connector::conform_batch;
use tributary_proto::{DirectPartition, RESULT_READ_ACTION};
use tributary_security::InternalSecurity;

use crate::tail::check_job_id;

/// Batches read ahead of the client.
const READ_AHEAD: usize = 2;

/// A client's stream of Flight data.
pub(crate) type ClientStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// The stream of the partition a signed ticket names, once its signature and expiry are
/// checked; read to its end, it is told to the `scheduler`.
pub(crate) fn serve(
    work_dir: &str,
    internal: &InternalSecurity,
    direct: &DirectPartition,
    scheduler: &Channel,
) -> Result<ClientStream, Status> {
    if !internal.verify(&direct.signed(), &direct.signature) {
        return Err(Status::unauthenticated(
            "result ticket not signed by this cluster's scheduler",
        ));
    }
    if direct.expired() {
        return Err(Status::permission_denied(
            "result ticket expired: run the query again",
        ));
    }
    let Some(p) = &direct.partition else {
        return Err(Status::invalid_argument(
            "result ticket without a partition",
        ));
    };
    check_job_id(&p.job_id)?;
    let schema: SchemaRef = Arc::new(
        Schema::try_from(IpcMessage(direct.schema.clone()))
            .map_err(|e| Status::invalid_argument(format!("result ticket's schema: {e}")))?,
    );
    let path = create_shuffle_path(
        Path::new(work_dir),
        &p.job_id.clone().into(),
        p.stage_id as usize,
        p.partition_id as usize,
        p.file_id,
        p.is_sort_shuffle,
    )
    .map_err(|e| Status::internal(format!("no path for a result partition: {e}")))?;
    let what = format!(
        "result partition {} of query {} ({})",
        p.partition_id,
        p.job_id,
        path.display()
    );
    let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Status::not_found(format!(
            "{what} is not on this executor (removed after its time to live, or never here)"
        )),
        _ => Status::internal(format!("cannot open {what}: {e}")),
    })?;
    // The file is read and decoded on a blocking thread, a few batches ahead of the client.
    let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
    let target = Arc::clone(&schema);
    tokio::task::spawn_blocking(move || {
        let batches = match StreamReader::try_new(BufReader::new(file), None) {
            Ok(reader) => reader,
            Err(e) => {
                let _ = sender.blocking_send(Err(FlightError::ExternalError(
                    format!("cannot read {what}: {e}").into(),
                )));
                return;
            }
        };
        for batch in batches {
            let batch = batch
                .and_then(|b| conform_batch(&b, &target))
                .map_err(|e| FlightError::ExternalError(format!("cannot read {what}: {e}").into()));
            let failed = batch.is_err();
            if sender.blocking_send(batch).is_err() || failed {
                return;
            }
        }
    });
    let batches = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(tributary_proto::CLIENT_FLIGHT_DATA_BYTES)
        .build(batches)
        .map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            e => Status::internal(e.to_string()),
        });
    Ok(told_when_read(stream, scheduler.clone(), direct.clone()))
}

/// `stream`, which tells the scheduler that `direct` was read once it has sent all of it
/// without an error (a client that goes away before the end has not read it).
fn told_when_read(
    stream: impl Stream<Item = Result<FlightData, Status>> + Send + 'static,
    scheduler: Channel,
    direct: DirectPartition,
) -> ClientStream {
    let failed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&failed);
    let tell = futures::stream::once(async move {
        if !seen.load(Ordering::Relaxed) {
            // Not on the client's time: its stream ends now.
            tokio::spawn(tell_read(scheduler, direct));
        }
    })
    .filter_map(|()| futures::future::ready(None));
    stream
        .inspect(move |item| {
            if item.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        })
        .chain(tell)
        .boxed()
}

/// Tells the scheduler a client read `direct` to its end. Best effort: if the scheduler does
/// not hear it, the job's files go when `query.client.timeout` or the result TTL has passed.
async fn tell_read(scheduler: Channel, direct: DirectPartition) {
    let action = Action {
        r#type: RESULT_READ_ACTION.to_owned(),
        body: direct.encode_to_vec().into(),
    };
    if let Err(e) = FlightServiceClient::new(scheduler).do_action(action).await {
        tracing::warn!(
            "cannot tell the scheduler a result partition was read (its files stay until the \
             client timeout): {}",
            e.message()
        );
    }
}

//! A result partition read by a client straight from this executor
//! (`flight-sql.results-from-executors`): the client holds a ticket the scheduler signed with
//! the cluster's shared secret (`tributary_proto::DirectPartition`), which stands for the
//! client's credentials here (the executor has none of them). The partition's file is sent as
//! the scheduler would send it: the announced schema first, then each batch in that schema,
//! uncompressed.

use std::io::BufReader;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightData, IpcMessage};
use ballista_core::execution_plans::create_shuffle_path;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::Status;
use tributary_connector::conform_batch;
use tributary_proto::DirectPartition;
use tributary_security::InternalSecurity;

use crate::tail::check_job_id;

/// Batches read ahead of the client.
const READ_AHEAD: usize = 2;

/// A client's stream of Flight data.
pub(crate) type ClientStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// The stream of the partition a signed ticket names, once its signature and expiry are
/// checked.
pub(crate) fn serve(
    work_dir: &str,
    internal: &InternalSecurity,
    direct: &DirectPartition,
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
    Ok(stream.boxed())
}

//! The Flight SQL service: authentication, sessions, statements, prepared statements,
//! metadata commands and cancellation, on top of [`Engine`].

use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::results::{FlightDataStream, ResultStore};
use super::{
    metadata, prepared::Prepared, prepared::PreparedStore, session_actions, sql_info, xdbc,
};
use crate::auth::Authenticator;
use crate::engine::{Engine, Outcome};
use crate::error::SchedulerError;
use crate::session::{SessionRef, SessionStore};
use crate::statement;

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// Tributary's Flight SQL service.
pub struct TributaryFlightSql {
    engine: Engine,
    auth: Authenticator,
    sessions: SessionStore,
    prepared: PreparedStore,
    results: ResultStore,
    sql_info: SqlInfoData,
}

impl std::fmt::Debug for TributaryFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TributaryFlightSql")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl TributaryFlightSql {
    /// A service running statements on `engine`; results stay fetchable for `result_ttl`.
    pub fn new(
        engine: Engine,
        auth: Authenticator,
        result_ttl: std::time::Duration,
    ) -> Result<Self, SchedulerError> {
        Ok(Self {
            engine,
            auth,
            sessions: SessionStore::new(),
            prepared: PreparedStore::default(),
            results: ResultStore::new(result_ttl),
            sql_info: sql_info::sql_info_data(),
        })
    }

    /// The session of a request: its bearer token, or basic credentials, or (without a
    /// password file) the anonymous session.
    pub(super) fn session<T>(&self, request: &Request<T>) -> Result<SessionRef, SchedulerError> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match header.as_deref() {
            Some(h) if h.starts_with("Bearer ") => {
                let token = h.trim_start_matches("Bearer ").trim();
                match self.sessions.get(token) {
                    Some(s) => Ok(s),
                    None if !self.auth.required() => Ok(self.sessions.anonymous()),
                    None => Err(SchedulerError::Unauthenticated(
                        "unknown or expired session token: authenticate again".into(),
                    )),
                }
            }
            Some(h) if h.starts_with("Basic ") => {
                let user = self.auth.check_basic(h)?;
                Ok(self.sessions.get_or_open(h, &user))
            }
            _ if !self.auth.required() => Ok(self.sessions.anonymous()),
            _ => Err(SchedulerError::Unauthenticated(
                "authentication required: send basic credentials or a bearer token".into(),
            )),
        }
    }

    pub(super) fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    pub(super) fn token<T>(request: &Request<T>) -> Option<String> {
        request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
    }

    /// Runs a statement and describes where its result is.
    async fn run(
        &self,
        session: &SessionRef,
        statement: &statement::Statement,
        params: Option<datafusion::common::ParamValues>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, SchedulerError> {
        let outcome = self.engine.execute(session, statement, params).await?;
        let info = match outcome {
            Outcome::Rows(schema, batches) => {
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let ticket = self.results.put_local(Arc::clone(&schema), batches);
                flight_info(&schema, vec![ticket], rows as i64)?
            }
            Outcome::Update(n) => {
                flight_info(&Arc::new(arrow::datatypes::Schema::empty()), vec![], n)?
            }
            Outcome::Job(job) => {
                let tickets =
                    self.results
                        .put_job(&job.job_id, Arc::clone(&job.schema), job.partitions);
                flight_info(&job.schema, tickets, job.total_records)?
            }
        };
        Ok(info.with_descriptor(descriptor))
    }

    async fn update(
        &self,
        session: &SessionRef,
        statement: &statement::Statement,
        params: Option<datafusion::common::ParamValues>,
    ) -> Result<i64, SchedulerError> {
        Ok(
            match self.engine.execute(session, statement, params).await? {
                Outcome::Update(n) => n,
                Outcome::Rows(_, batches) => batches.iter().map(|b| b.num_rows() as i64).sum(),
                Outcome::Job(job) => job.total_records.max(0),
            },
        )
    }

    fn metadata_info(
        &self,
        schema: &SchemaRef,
        command: impl ProstMessageExt,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(command.as_any().encode_to_vec());
        let info = flight_info(schema, vec![ticket], -1)?.with_descriptor(descriptor);
        Ok(Response::new(info))
    }
}

fn flight_info(
    schema: &SchemaRef,
    tickets: Vec<Ticket>,
    total_records: i64,
) -> Result<FlightInfo, SchedulerError> {
    let mut info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| SchedulerError::Engine(format!("cannot encode result schema: {e}")))?
        .with_total_records(total_records)
        .with_ordered(true);
    for ticket in tickets {
        // No location: the client fetches on the same connection, under its own credentials.
        info = info.with_endpoint(FlightEndpoint::new().with_ticket(ticket));
    }
    Ok(info)
}

fn batch_stream(batch: RecordBatch) -> FlightDataStream {
    let schema = batch.schema();
    let stream = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(|e| Status::internal(e.to_string()));
    Box::pin(stream)
}

fn status<E: Into<SchedulerError>>(e: E) -> Status {
    Status::from(e.into())
}

#[tonic::async_trait]
impl FlightSqlService for TributaryFlightSql {
    type FlightService = TributaryFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let token = match header.as_deref() {
            Some(h) if h.starts_with("Basic ") => {
                let user = self.auth.check_basic(h).map_err(status)?;
                self.sessions.open(&user)
            }
            Some(h) if h.starts_with("Bearer ") => {
                let token = h.trim_start_matches("Bearer ").trim().to_owned();
                if self.sessions.get(&token).is_none() {
                    return Err(status(SchedulerError::Unauthenticated(
                        "unknown or expired token".into(),
                    )));
                }
                token
            }
            _ if !self.auth.required() => self.sessions.open("anonymous"),
            _ => {
                return Err(status(SchedulerError::Unauthenticated(
                    "authentication required: send basic credentials".into(),
                )));
            }
        };
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response =
            Response::new(Box::pin(futures::stream::iter([Ok(response)])) as HandshakeStream);
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|e| Status::internal(e.to_string()))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request).map_err(status)?;
        let statement = statement::parse(&query.query).map_err(status)?;
        let info = self
            .run(&session, &statement, None, request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request).map_err(status)?;
        let prepared = self
            .prepared
            .get(&query.prepared_statement_handle)
            .map_err(status)?;
        let params = prepared.param_values().map_err(status)?;
        let info = self
            .run(&session, &prepared.statement, params, request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        let stream = self
            .results
            .stream(&ticket.statement_handle)
            .await
            .map_err(status)?;
        Ok(Response::new(stream))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = self.session(&request).map_err(status)?;
        let statement = statement::parse(&command.query).map_err(status)?;
        self.update(&session, &statement, None)
            .await
            .map_err(status)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.session(&request).map_err(status)?;
        let batches = read_parameters(request.into_inner()).await?;
        if let Some(batch) = batches.into_iter().rev().find(|b| b.num_rows() > 0) {
            self.prepared
                .bind(&query.prepared_statement_handle, batch)
                .map_err(status)?;
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = self.session(&request).map_err(status)?;
        let batches = read_parameters(request.into_inner()).await?;
        if let Some(batch) = batches.into_iter().rev().find(|b| b.num_rows() > 0) {
            self.prepared
                .bind(&query.prepared_statement_handle, batch)
                .map_err(status)?;
        }
        let prepared = self
            .prepared
            .get(&query.prepared_statement_handle)
            .map_err(status)?;
        let params = prepared.param_values().map_err(status)?;
        self.update(&session, &prepared.statement, params)
            .await
            .map_err(status)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request).map_err(status)?;
        let statement = statement::parse(&query.query).map_err(status)?;
        let prepared = match &statement {
            statement::Statement::Sql(sql) => {
                let snapshot = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let plan = self.engine.plan_sql(&snapshot, sql).await.map_err(status)?;
                Prepared::new(statement.clone(), Some(&plan)).map_err(status)?
            }
            _ => Prepared::new(statement.clone(), None).map_err(status)?,
        };
        let dataset_schema = ipc_schema(&prepared.dataset_schema)?;
        let parameter_schema = ipc_schema(&prepared.parameter_schema)?;
        let handle = self.prepared.insert(prepared);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        self.prepared.remove(&query.prepared_statement_handle);
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        self.session(&request).map_err(status)?;
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("bad FlightInfo: {e}")))?;
        let cancelled = session_actions::cancel_info(&self.engine, &info)
            .await
            .map_err(status)?;
        // 1 = cancelled, 3 = not cancellable (already finished).
        Ok(ActionCancelQueryResult {
            result: if cancelled { 1 } else { 3 },
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        session_actions::handle(self, request).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &query.clone().into_builder().schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &query.clone().into_builder().schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &query.clone().into_builder().schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &query.clone().into_builder().schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(&self.sql_info.schema(), query, request.into_inner())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &xdbc::xdbc_type_info_data().schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &metadata::primary_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &metadata::exported_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &metadata::imported_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).map_err(status)?;
        self.metadata_info(
            &metadata::cross_reference_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.metadata_context(&request).await?;
        Ok(Response::new(batch_stream(
            metadata::catalogs(&ctx).map_err(status)?,
        )))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.metadata_context(&request).await?;
        Ok(Response::new(batch_stream(
            metadata::db_schemas(&ctx, &query).map_err(status)?,
        )))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.metadata_context(&request).await?;
        Ok(Response::new(batch_stream(
            metadata::tables(&ctx, &query).await.map_err(status)?,
        )))
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        Ok(Response::new(batch_stream(
            metadata::table_types().map_err(status)?,
        )))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        let batch = query.into_builder(&self.sql_info).build().map_err(status)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        let data = xdbc::xdbc_type_info_data();
        let batch = query.into_builder(&data).build().map_err(status)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        Ok(Response::new(batch_stream(metadata::empty_batch(
            metadata::primary_keys_schema(),
        ))))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        Ok(Response::new(batch_stream(metadata::empty_batch(
            metadata::exported_keys_schema(),
        ))))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        Ok(Response::new(batch_stream(metadata::empty_batch(
            metadata::imported_keys_schema(),
        ))))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.session(&request).map_err(status)?;
        Ok(Response::new(batch_stream(metadata::empty_batch(
            metadata::cross_reference_schema(),
        ))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl TributaryFlightSql {
    async fn metadata_context<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Arc<datafusion::prelude::SessionContext>, Status> {
        let session = self.session(request).map_err(status)?;
        let snapshot = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.engine.context(&snapshot).await.map_err(status)
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Reads the parameter batches of a DoPut. Messages without an IPC header (the descriptor
/// alone, as clients send for statements without parameters) carry no data.
async fn read_parameters(stream: PeekableFlightDataStream) -> Result<Vec<RecordBatch>, Status> {
    let data = stream.try_filter(|d| futures::future::ready(!d.data_header.is_empty()));
    FlightRecordBatchStream::new_from_flight_data(data.map_err(Into::into))
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read parameters: {e}")))
}

fn ipc_schema(schema: &SchemaRef) -> Result<bytes::Bytes, Status> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let message: IpcMessage =
        SchemaAsIpc::new(schema, &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| {
                Status::internal(format!("cannot encode schema: {e}"))
            })?;
    Ok(message.0)
}

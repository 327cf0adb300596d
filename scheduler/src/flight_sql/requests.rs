//! How a Flight SQL request finds its session, runs its statement and describes the result;
//! the encoding helpers the service's handlers share.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::sql::ProstMessageExt;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use futures::TryStreamExt;
use prost::Message;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::prepared::PreparedStore;
use super::results::{FlightDataStream, ResultStore};
use super::service::TributaryFlightSql;
use super::sql_info;
use crate::admission::{Admission, QueryFacts};
use crate::auth::Authenticator;
use crate::engine::{Engine, Outcome};
use crate::error::SchedulerError;
use crate::session::{SessionDefaults, SessionRef, SessionStore};
use crate::statement;

impl TributaryFlightSql {
    /// A service running statements on `engine`; results stay fetchable for `result_ttl`;
    /// sessions start from `defaults`; with `direct`, clients read job results from the
    /// executors under tickets signed with its secret.
    pub fn new(
        engine: Engine,
        auth: Authenticator,
        result_ttl: std::time::Duration,
        defaults: SessionDefaults,
        direct: Option<tributary_security::InternalSecurity>,
    ) -> Result<Self, SchedulerError> {
        let results = ResultStore::new(
            result_ttl,
            engine.fetcher().clone(),
            engine.leases().clone(),
            direct,
        );
        Ok(Self {
            engine,
            auth,
            sessions: SessionStore::new(defaults),
            prepared: PreparedStore::default(),
            results,
            sql_info: sql_info::sql_info_data(),
        })
    }

    /// The session of a request: its bearer token, or basic credentials, or (without a
    /// password file) its session cookie, or the anonymous session.
    pub(super) fn session<T>(&self, request: &Request<T>) -> Result<SessionRef, SchedulerError> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match header.as_deref() {
            Some(h) if h.starts_with("Bearer ") => {
                let token = h.trim_start_matches("Bearer ").trim();
                // Session tokens are UUIDs; the store's other keys ("Basic …", "jwt:…",
                // "cookie:…") must not be usable as bearer tokens.
                let issued = super::session_token(token)
                    .then(|| self.sessions.get(token))
                    .flatten();
                match issued {
                    Some(s) => Ok(s),
                    // A JWT, checked on every request (it may expire); its session is kept
                    // by token.
                    None if self.auth.accepts_jwt() => {
                        let user = self.auth.check_jwt(token)?;
                        Ok(self
                            .sessions
                            .get_or_open(&super::jwt_session_key(token), &user))
                    }
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
            _ if !self.auth.required() => {
                Ok(match super::cookies::session_cookie(request.metadata()) {
                    Some(id) => self
                        .sessions
                        .get_or_open(&format!("cookie:{id}"), "anonymous"),
                    None => self.sessions.anonymous(),
                })
            }
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
    pub(super) async fn run(
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
                flight_info(&schema, vec![endpoint(ticket)], rows as i64)?
            }
            Outcome::Update(n) => {
                flight_info(&Arc::new(arrow::datatypes::Schema::empty()), vec![], n)?
            }
            Outcome::Job(job) => {
                let endpoints = self.results.put_job(
                    &job.job_id,
                    Arc::clone(&job.schema),
                    job.partitions,
                    job.order,
                )?;
                flight_info(&job.schema, endpoints, job.total_records)?
            }
        };
        Ok(info.with_descriptor(descriptor))
    }

    /// Runs `work` (parsing and running one statement) as a query of `session`: it appears in
    /// `system.runtime.queries` from now on, under a `query` span (a child of the client's
    /// W3C `traceparent`, when sent), and can be killed while it runs.
    pub(super) async fn tracked<T, F>(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        session: &SessionRef,
        sql: &str,
        work: F,
    ) -> Result<T, SchedulerError>
    where
        F: std::future::Future<Output = Result<T, SchedulerError>>,
    {
        self.tracked_with(metadata, session, sql, true, work).await
    }

    /// Records a statement that failed before it could run (it failed to prepare) as a
    /// failed query, without waiting for a place in its resource group.
    pub(super) async fn failed_query(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        session: &SessionRef,
        sql: &str,
        error: SchedulerError,
    ) -> SchedulerError {
        match self
            .tracked_with(metadata, session, sql, false, async { Err::<(), _>(error) })
            .await
        {
            Err(e) => e,
            Ok(()) => SchedulerError::Engine("preparing the statement failed".into()),
        }
    }

    async fn tracked_with<T, F>(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        session: &SessionRef,
        sql: &str,
        admit: bool,
        work: F,
    ) -> Result<T, SchedulerError>
    where
        F: std::future::Future<Output = Result<T, SchedulerError>>,
    {
        let monitor = self.engine.monitor();
        let user = session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .user
            .clone();
        let header = |name: &str| {
            metadata
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let source = header("x-trino-source")
            .or_else(|| header("x-tributary-source"))
            .or_else(|| header("user-agent"))
            .unwrap_or_default();
        let query = monitor.queries.begin(&user, &source, sql);
        let span = tracing::info_span!("query", query_id = %query.id(), user = %user);
        if let Some(parent) =
            header("traceparent").and_then(|h| tributary_telemetry::TraceParent::parse(&h))
        {
            tributary_telemetry::set_parent(&span, &parent);
        }
        // Its resource group decides when it starts (it is QUEUED until then); waiting counts
        // against query_max_run_time, as in Trino.
        let admission = if admit {
            self.admit(&query, &user, &source, sql)
        } else {
            Ok(None)
        };
        let max_run_time = session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .max_run_time();
        // The place in its resource group is held until the query ends: past the statement
        // when its result streams while its job runs.
        let held = std::sync::Mutex::new(None);
        let admitted_work = async {
            let running = match admission? {
                Some(Admission::Run(running)) => Some(running),
                Some(Admission::Wait(waiting)) => {
                    match tokio::time::timeout(max_run_time, waiting.started()).await {
                        Ok(running) => Some(running),
                        Err(_) => {
                            return Err(SchedulerError::Timeout {
                                limit: max_run_time,
                                property: "query_max_run_time",
                            });
                        }
                    }
                }
                None => None,
            };
            *held.lock().unwrap_or_else(|e| e.into_inner()) = running;
            query.planning();
            work.await
        };
        let killable = async {
            let stopped = || match query.killed() {
                Some(kill) if kill.administrative => SchedulerError::Killed(kill.message),
                _ => SchedulerError::Cancelled(query.id()),
            };
            tokio::select! {
                // A write refused at its point of no return fails as killed, too.
                result = admitted_work => result.map_err(|e| match query.killed() {
                    Some(_) => stopped(),
                    None => e,
                }),
                () = query.wait_killed() => Err(stopped()),
            }
        };
        // If the client goes away, this future is dropped mid-statement: the guard still ends
        // the query (as cancelled), so it never stays RUNNING.
        let mut guard = EndOnDrop {
            monitor: monitor.clone(),
            query: Some(query.clone()),
        };
        let result = query.scope(killable.instrument(span.clone())).await;
        let running = held.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Ok(_), Some(job_end)) = (&result, query.take_job_end()) {
            // Its rows stream while its job runs: the query ends with the job.
            guard.query = None;
            let engine = self.engine.clone();
            tokio::spawn(
                async move {
                    let error = job_ended(&engine, &query, job_end).await;
                    engine.monitor().complete(&query, error.as_deref()).await;
                    drop(running);
                }
                .instrument(span),
            );
            return result;
        }
        monitor
            .complete(&query, result.as_ref().err())
            .instrument(span)
            .await;
        guard.query = None;
        drop(running);
        result
    }

    /// Places a query in its resource group: runs now, waits, or is rejected.
    fn admit(
        &self,
        query: &crate::monitor::QueryHandle,
        user: &str,
        source: &str,
        sql: &str,
    ) -> Result<Option<Admission>, SchedulerError> {
        let Some(groups) = self.engine.admission() else {
            return Ok(None);
        };
        let facts = QueryFacts {
            user,
            source,
            query_type: crate::admission::query_type(sql),
        };
        let selected = groups.config().select(&facts).ok_or_else(|| {
            SchedulerError::QueryRejected(format!(
                "Query did not match any selection rule of {} (user '{user}', source '{source}', \
                 query type {})",
                groups.config().file.display(),
                facts.query_type
            ))
        })?;
        query.set_resource_group(&selected.name());
        groups.admit(&selected).map(Some)
    }

    pub(super) async fn update(
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

    pub(super) fn metadata_info(
        &self,
        schema: &SchemaRef,
        command: impl ProstMessageExt,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(command.as_any().encode_to_vec());
        let info = flight_info(schema, vec![endpoint(ticket)], -1)?.with_descriptor(descriptor);
        Ok(Response::new(info))
    }
}

impl TributaryFlightSql {
    pub(super) async fn metadata_context<T>(
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
pub(super) async fn read_parameters(
    stream: PeekableFlightDataStream,
) -> Result<Vec<RecordBatch>, Status> {
    let data = stream.try_filter(|d| futures::future::ready(!d.data_header.is_empty()));
    FlightRecordBatchStream::new_from_flight_data(data.map_err(Into::into))
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read parameters: {e}")))
}

pub(super) fn ipc_schema(schema: &SchemaRef) -> Result<bytes::Bytes, Status> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let message: IpcMessage =
        SchemaAsIpc::new(schema, &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| {
                Status::internal(format!("cannot encode schema: {e}"))
            })?;
    Ok(message.0)
}

pub(super) fn flight_info(
    schema: &SchemaRef,
    endpoints: Vec<FlightEndpoint>,
    total_records: i64,
) -> Result<FlightInfo, SchedulerError> {
    let mut info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| SchedulerError::Engine(format!("cannot encode result schema: {e}")))?
        .with_total_records(total_records)
        .with_ordered(true);
    for endpoint in endpoints {
        info = info.with_endpoint(endpoint);
    }
    Ok(info)
}

/// An endpoint without a location: the client fetches on the same connection, under its own
/// credentials.
pub(super) fn endpoint(ticket: Ticket) -> FlightEndpoint {
    FlightEndpoint::new().with_ticket(ticket)
}

pub(super) fn batch_stream(batch: RecordBatch) -> FlightDataStream {
    let schema = batch.schema();
    let stream = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(|e| Status::internal(e.to_string()));
    Box::pin(stream)
}

pub(super) fn status<E: Into<SchedulerError>>(e: E) -> Status {
    Status::from(e.into())
}

/// Waits for the end of a query's job whose result was announced while it ran; a kill
/// cancels the job. The query's error, if it failed.
async fn job_ended(
    engine: &crate::engine::Engine,
    query: &crate::monitor::QueryHandle,
    mut end: crate::live::JobEndReceiver,
) -> Option<std::sync::Arc<SchedulerError>> {
    let ended = async {
        match end.wait_for(Option::is_some).await {
            Ok(end) => end.clone().and_then(Result::err),
            Err(_) => Some(std::sync::Arc::new(SchedulerError::Engine(
                "the query's job stopped being watched before it ended".into(),
            ))),
        }
    };
    tokio::select! {
        error = ended => error,
        () = query.wait_killed() => {
            if let Some(job_id) = query.job_id()
                && let Err(e) = engine.cancel(&job_id).await
            {
                tracing::warn!(job_id, "cannot cancel a killed query's job: {e}");
            }
            Some(std::sync::Arc::new(match query.killed() {
                Some(kill) if kill.administrative => SchedulerError::Killed(kill.message),
                _ => SchedulerError::Cancelled(query.id()),
            }))
        }
    }
}

/// Ends a query whose statement future was dropped before it finished.
struct EndOnDrop {
    monitor: crate::monitor::Monitor,
    query: Option<crate::monitor::QueryHandle>,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let (Some(query), Ok(runtime)) =
            (self.query.take(), tokio::runtime::Handle::try_current())
        {
            let monitor = self.monitor.clone();
            runtime.spawn(async move {
                let error = SchedulerError::Cancelled(query.id());
                monitor.complete(&query, Some(&error)).await;
            });
        }
    }
}

//! The Flight SQL service: authentication, sessions, statements, prepared statements,
//! metadata commands and cancellation, on top of [`Engine`].

use std::pin::Pin;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::Stream;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::requests::{batch_stream, ipc_schema, read_parameters, status};
use super::results::{FlightDataStream, ResultStore};
use super::{metadata, prepared::Prepared, prepared::PreparedStore, session_actions, xdbc};
use crate::auth::Authenticator;
use crate::engine::Engine;
use crate::error::SchedulerError;
use crate::session::SessionStore;
use crate::statement;

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// Tributary's Flight SQL service.
pub struct TributaryFlightSql {
    pub(super) engine: Engine,
    pub(super) auth: Authenticator,
    pub(super) sessions: SessionStore,
    pub(super) prepared: PreparedStore,
    pub(super) results: ResultStore,
    pub(super) sql_info: SqlInfoData,
}

impl std::fmt::Debug for TributaryFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TributaryFlightSql")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
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
                if super::session_token(&token) && self.sessions.get(&token).is_some() {
                    token
                } else if self.auth.accepts_jwt() {
                    // A JWT stays the client's bearer token, checked on every request (so its
                    // expiry holds); its session is kept by token.
                    let user = self.auth.check_jwt(&token).map_err(status)?;
                    self.sessions
                        .get_or_open(&super::jwt_session_key(&token), &user);
                    token
                } else {
                    return Err(status(SchedulerError::Unauthenticated(
                        "unknown or expired token".into(),
                    )));
                }
            }
            _ if !self.auth.required() => self.sessions.open("anonymous"),
            _ => {
                return Err(status(SchedulerError::Unauthenticated(
                    "authentication required: send basic credentials or a bearer token".into(),
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
        let metadata = request.metadata().clone();
        let descriptor = request.into_inner();
        let info = self
            .tracked(&metadata, &session, &query.query, async {
                let statement = statement::parse(&query.query)?;
                self.run(&session, &statement, None, descriptor).await
            })
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
        let metadata = request.metadata().clone();
        let sql = prepared.sql.clone();
        let info = self
            .tracked(
                &metadata,
                &session,
                &sql,
                self.run(&session, &prepared.statement, params, request.into_inner()),
            )
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
        let metadata = request.metadata().clone();
        self.tracked(&metadata, &session, &command.query, async {
            let statement = statement::parse(&command.query)?;
            self.update(&session, &statement, None).await
        })
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
        let metadata = request.metadata().clone();
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
        let sql = prepared.sql.clone();
        self.tracked(
            &metadata,
            &session,
            &sql,
            self.update(&session, &prepared.statement, params),
        )
        .await
        .map_err(status)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request).map_err(status)?;
        let prepare = async {
            let statement = statement::parse(&query.query)?;
            match &statement {
                statement::Statement::Sql(sql) => {
                    let snapshot = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let plan = self.engine.plan_sql(&snapshot, sql).await?;
                    Prepared::new(statement.clone(), Some(&plan))
                }
                _ => Prepared::new(statement.clone(), None),
            }
        };
        // A statement that cannot even be prepared is a failed query (as in Trino); one that
        // can becomes a query when it is executed.
        let prepared = match prepare.await {
            Ok(prepared) => Prepared {
                sql: query.query.clone(),
                ..prepared
            },
            Err(e) => {
                let metadata = request.metadata().clone();
                return Err(status(
                    self.failed_query(&metadata, &session, &query.query, e)
                        .await,
                ));
            }
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
        self.metadata_info(&query.into_builder().schema(), query, request.into_inner())
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
        self.metadata_info(&query.into_builder().schema(), query, request.into_inner())
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
            metadata::db_schemas(&ctx, self.engine.catalogs(), &query).map_err(status)?,
        )))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.metadata_context(&request).await?;
        Ok(Response::new(batch_stream(
            metadata::tables(&ctx, self.engine.catalogs(), &query)
                .await
                .map_err(status)?,
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

//! Flight RPC actions arrow-rs 59 has no types for: `SetSessionOptions`,
//! `GetSessionOptions`, `CloseSession` and `CancelFlightInfo` (bodies are raw protobuf).

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, TicketStatementQuery};
use arrow_flight::{Action, CancelFlightInfoRequest, CancelFlightInfoResult, FlightInfo};
use prost::Message;
use tonic::{Request, Response, Status};
use tributary_proto::{
    CloseSessionResult, DirectPartition, GetSessionOptionsResult, ResultTicket, SessionOptionValue,
    SetSessionOptionsError, SetSessionOptionsRequest, SetSessionOptionsResult,
    result_ticket::Target, session_option_value::OptionValue,
};

use super::service::TributaryFlightSql;
use crate::engine::Engine;
use crate::error::SchedulerError;
use crate::statement::Statement;

type ActionStream = <TributaryFlightSql as FlightService>::DoActionStream;

fn one_result(body: Vec<u8>) -> Response<ActionStream> {
    let result = arrow_flight::Result { body: body.into() };
    Response::new(Box::pin(futures::stream::iter([Ok(result)])))
}

/// Dispatches the actions the Flight SQL trait does not know.
pub(super) async fn handle(
    service: &TributaryFlightSql,
    request: Request<Action>,
) -> Result<Response<ActionStream>, Status> {
    let kind = request.get_ref().r#type.clone();
    match kind.as_str() {
        "SetSessionOptions" => {
            let session = service.session(&request).map_err(Status::from)?;
            let body =
                SetSessionOptionsRequest::decode(request.get_ref().body.as_ref()).map_err(|e| {
                    Status::invalid_argument(format!("bad SetSessionOptions body: {e}"))
                })?;
            let mut errors = std::collections::HashMap::new();
            for (name, value) in body.session_options {
                let Some(value) = option_string(&value) else {
                    errors.insert(name, SetSessionOptionsError { value: 2 });
                    continue;
                };
                let statement = match name.as_str() {
                    "catalog" => {
                        let schema = session
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .schema
                            .clone();
                        match schema {
                            Some(s) => Statement::Use {
                                schema: vec![value.clone(), s],
                            },
                            None => {
                                session.lock().unwrap_or_else(|e| e.into_inner()).catalog =
                                    Some(value);
                                continue;
                            }
                        }
                    }
                    "schema" => {
                        let catalog = session
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .catalog
                            .clone();
                        match catalog {
                            Some(c) => Statement::Use {
                                schema: vec![c, value.clone()],
                            },
                            None => Statement::Use {
                                schema: vec![value.clone()],
                            },
                        }
                    }
                    _ => Statement::SetSession {
                        name: name.clone(),
                        value,
                    },
                };
                if let Err(e) = service.engine().execute(&session, &statement, None).await {
                    tracing::info!("SetSessionOptions {name}: {e}");
                    errors.insert(
                        name,
                        SetSessionOptionsError {
                            value: if matches!(e, SchedulerError::SessionProperty(_)) {
                                1
                            } else {
                                2
                            },
                        },
                    );
                }
            }
            Ok(one_result(
                SetSessionOptionsResult { errors }.encode_to_vec(),
            ))
        }
        "GetSessionOptions" => {
            let session = service.session(&request).map_err(Status::from)?;
            let s = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut options = std::collections::HashMap::new();
            let string = |v: String| SessionOptionValue {
                option_value: Some(OptionValue::StringValue(v)),
            };
            if let Some(c) = s.catalog {
                options.insert("catalog".to_owned(), string(c));
            }
            if let Some(sc) = s.schema {
                options.insert("schema".to_owned(), string(sc));
            }
            for (k, v) in s.properties {
                options.insert(k, string(v));
            }
            Ok(one_result(
                GetSessionOptionsResult {
                    session_options: options,
                }
                .encode_to_vec(),
            ))
        }
        "CloseSession" => {
            if let Some(token) = TributaryFlightSql::token(&request) {
                service.sessions().close(&token);
            }
            Ok(one_result(CloseSessionResult { status: 1 }.encode_to_vec()))
        }
        "CancelFlightInfo" => {
            service.session(&request).map_err(Status::from)?;
            let body = CancelFlightInfoRequest::decode(request.get_ref().body.as_ref())
                .map_err(|e| Status::invalid_argument(format!("bad CancelFlightInfo body: {e}")))?;
            let info = body
                .info
                .ok_or_else(|| Status::invalid_argument("CancelFlightInfo without a FlightInfo"))?;
            let cancelled = cancel_info(service.engine(), &info)
                .await
                .map_err(Status::from)?;
            // CancelStatus: 1 cancelled, 3 not cancellable.
            Ok(one_result(
                CancelFlightInfoResult {
                    status: if cancelled { 1 } else { 3 },
                }
                .encode_to_vec(),
            ))
        }
        other => Err(Status::invalid_argument(format!(
            "unknown action '{other}'"
        ))),
    }
}

fn option_string(value: &SessionOptionValue) -> Option<String> {
    match value.option_value.as_ref()? {
        OptionValue::StringValue(s) => Some(s.clone()),
        OptionValue::BoolValue(b) => Some(b.to_string()),
        OptionValue::Int64Value(i) => Some(i.to_string()),
        OptionValue::DoubleValue(d) => Some(d.to_string()),
        OptionValue::StringListValue(_) => None,
    }
}

/// Cancels the jobs whose partitions a FlightInfo's endpoints name.
pub(super) async fn cancel_info(
    engine: &Engine,
    info: &FlightInfo,
) -> Result<bool, SchedulerError> {
    let mut cancelled = false;
    for endpoint in &info.endpoint {
        let Some(ticket) = &endpoint.ticket else {
            continue;
        };
        let Ok(any) = Any::decode(ticket.ticket.as_ref()) else {
            continue;
        };
        let Ok(Some(statement)) = any.unpack::<TicketStatementQuery>() else {
            continue;
        };
        let Ok(result) = ResultTicket::decode(statement.statement_handle.as_ref()) else {
            continue;
        };
        let job_id = match result.target {
            Some(Target::Partition(p))
            | Some(Target::Direct(DirectPartition {
                partition: Some(p), ..
            })) => p.job_id,
            Some(Target::Merged(m)) => match m.partitions.into_iter().next() {
                Some(p) => p.job_id,
                None => continue,
            },
            _ => continue,
        };
        engine.cancel(&job_id).await?;
        // Its result will not be read: executors need not keep it for a drain.
        engine.leases().forget(&job_id);
        cancelled = true;
    }
    Ok(cancelled)
}

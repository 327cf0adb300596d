//! The executor's Flight service (shuffle and result partitions), Ballista's own
//! [`BallistaFlightService`], served by Tributary so that it can take internal TLS and refuse
//! requests without the cluster's shared secret (`tributary_security::internal`), with one
//! action of Tributary's beside Ballista's: [`TAIL_PARTITION_ACTION`] (a result partition read
//! while its task writes it, `crate::tail`), and result partitions read by clients under the
//! scheduler's signature (`crate::direct`).

use std::sync::Arc;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::{Any, TicketStatementQuery};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, PollInfo, SchemaResult, Ticket,
};
use ballista_core::error::BallistaError;
use ballista_core::utils::create_grpc_server;
use ballista_executor::ArrowFlightServerProvider;
use ballista_executor::flight_service::BallistaFlightService;
use futures::StreamExt;
use prost::Message;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};
use tributary_proto::result_ticket::Target;
use tributary_proto::{DirectPartition, ResultTicket, TAIL_PARTITION_ACTION};
use tributary_security::InternalSecurity;

use crate::direct;
use crate::tail::tail_partition;

/// Ballista's limit for messages of the executor's Flight service (its default).
const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Serves Ballista's Flight service with `internal`'s TLS and token check; clients' reads of
/// result partitions are told to the scheduler at `scheduler`.
pub(crate) fn provider(
    internal: InternalSecurity,
    scheduler: Endpoint,
) -> Arc<ArrowFlightServerProvider> {
    Arc::new(move |work_dir, address, mut shutdown, grpc| {
        let internal = internal.clone();
        let scheduler = scheduler.clone();
        tokio::spawn(async move {
            // Connected when first used, and again after a failure.
            let scheduler = scheduler.connect_lazy();
            let mut server = create_grpc_server(&grpc);
            if let Some(tls) = internal.server_tls() {
                server = server.tls_config(tls).map_err(BallistaError::TonicError)?;
            }
            tracing::info!(%address, tls = internal.tls(), "executor Flight service listening");
            server
                .layer(tonic::service::InterceptorLayer::new(
                    internal.marking_interceptor(),
                ))
                .add_service(
                    FlightServiceServer::new(ExecutorFlightService::new(
                        work_dir, internal, scheduler,
                    ))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
                )
                .serve_with_shutdown(address, shutdown.recv())
                .await
                .map_err(BallistaError::TonicError)
        })
    })
}

/// Ballista's executor Flight service with Tributary's actions. Every call needs the
/// cluster's token, except a `DoGet` of a result ticket the scheduler signed (`crate::direct`:
/// a client reading its result from here).
#[derive(Clone)]
struct ExecutorFlightService {
    ballista: BallistaFlightService,
    work_dir: String,
    internal: InternalSecurity,
    /// The scheduler's cluster port, told of result partitions clients read from here.
    scheduler: Channel,
}

impl ExecutorFlightService {
    fn new(work_dir: String, internal: InternalSecurity, scheduler: Channel) -> Self {
        Self {
            ballista: BallistaFlightService::new(work_dir.clone()),
            work_dir,
            internal,
            scheduler,
        }
    }
}

/// The signed result partition a `DoGet` ticket names, if it is one.
fn direct_partition(ticket: &Ticket) -> Option<DirectPartition> {
    let any = Any::decode(ticket.ticket.as_ref()).ok()?;
    let statement = any.unpack::<TicketStatementQuery>().ok()??;
    match ResultTicket::decode(statement.statement_handle.as_ref())
        .ok()?
        .target?
    {
        Target::Direct(direct) => Some(direct),
        _ => None,
    }
}

type Ballista = BallistaFlightService;

#[tonic::async_trait]
impl FlightService for ExecutorFlightService {
    type HandshakeStream = <Ballista as FlightService>::HandshakeStream;
    type ListFlightsStream = <Ballista as FlightService>::ListFlightsStream;
    type DoGetStream = <Ballista as FlightService>::DoGetStream;
    type DoPutStream = <Ballista as FlightService>::DoPutStream;
    type DoActionStream = <Ballista as FlightService>::DoActionStream;
    type ListActionsStream = <Ballista as FlightService>::ListActionsStream;
    type DoExchangeStream = <Ballista as FlightService>::DoExchangeStream;

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        InternalSecurity::check_internal(&request)?;
        if request.get_ref().r#type == TAIL_PARTITION_ACTION {
            let tail = tail_partition(&self.work_dir, &request.get_ref().body)?;
            return Ok(Response::new(tail));
        }
        self.ballista.do_action(request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        InternalSecurity::check_internal(&request)?;
        let ballista = self.ballista.list_actions(request).await?.into_inner();
        let ours = futures::stream::iter([Ok(ActionType {
            r#type: TAIL_PARTITION_ACTION.to_owned(),
            description: "a result partition's file read while its task writes it".to_owned(),
        })]);
        Ok(Response::new(ballista.chain(ours).boxed()))
    }

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        InternalSecurity::check_internal(&request)?;
        self.ballista.handshake(request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        InternalSecurity::check_internal(&request)?;
        self.ballista.list_flights(request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        InternalSecurity::check_internal(&request)?;
        self.ballista.get_flight_info(request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        InternalSecurity::check_internal(&request)?;
        self.ballista.poll_flight_info(request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        InternalSecurity::check_internal(&request)?;
        self.ballista.get_schema(request).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        if let Some(direct) = direct_partition(request.get_ref()) {
            let stream = direct::serve(&self.work_dir, &self.internal, &direct, &self.scheduler)?;
            return Ok(Response::new(stream));
        }
        InternalSecurity::check_internal(&request)?;
        self.ballista.do_get(request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        InternalSecurity::check_internal(&request)?;
        self.ballista.do_put(request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        InternalSecurity::check_internal(&request)?;
        self.ballista.do_exchange(request).await
    }
}

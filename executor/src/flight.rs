//! The executor's Flight service (shuffle and result partitions), Ballista's own
//! [`BallistaFlightService`], served by Tributary so that it can take internal TLS and refuse
//! requests without the cluster's shared secret (`tributary_security::internal`).

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::error::BallistaError;
use ballista_core::utils::create_grpc_server;
use ballista_executor::ArrowFlightServerProvider;
use ballista_executor::flight_service::BallistaFlightService;
use tributary_security::InternalSecurity;

/// Ballista's limit for messages of the executor's Flight service (its default).
const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Serves Ballista's Flight service with `internal`'s TLS and token check.
pub(crate) fn provider(internal: InternalSecurity) -> Arc<ArrowFlightServerProvider> {
    Arc::new(move |work_dir, address, mut shutdown, grpc| {
        let internal = internal.clone();
        tokio::spawn(async move {
            let mut server = create_grpc_server(&grpc);
            if let Some(tls) = internal.server_tls() {
                server = server.tls_config(tls).map_err(BallistaError::TonicError)?;
            }
            tracing::info!(%address, tls = internal.tls(), "executor Flight service listening");
            server
                .layer(tonic::service::InterceptorLayer::new(
                    internal.interceptor(),
                ))
                .add_service(
                    FlightServiceServer::new(BallistaFlightService::new(work_dir))
                        .max_decoding_message_size(MAX_MESSAGE_SIZE)
                        .max_encoding_message_size(MAX_MESSAGE_SIZE),
                )
                .serve_with_shutdown(address, shutdown.recv())
                .await
                .map_err(BallistaError::TonicError)
        })
    })
}

//! The Tributary scheduler: the Flight SQL service, the Trino-flavoured SQL front end and
//! the embedded Ballista scheduler that runs queries as stages on executors.
//!
//! Start reading at [`start_scheduler`]; a query's path is `flight_sql::service` →
//! [`statement::parse`] → [`engine::Engine::execute`] → Ballista → `flight_sql::results`.

pub mod access;
pub mod admission;
mod auth;
mod cluster;
mod dynamic_filters;
pub mod engine;
pub mod error;
mod estimates;
mod explain;
mod fetch;
mod flight_sql;
mod http;
mod join_order;
mod joins;
mod leases;
mod live;
mod local;
pub mod monitor;
mod planner;
pub mod session;
pub mod statement;
mod system;
mod table_functions;
mod trino_functions;
mod views;

use std::net::SocketAddr;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::utils::{GrpcServerConfig, create_grpc_server, create_grpc_server_incoming};
use tributary_connector::Catalogs;

pub use auth::{Authenticator, JwtConfig, JwtVerifier, PASSWORD_AUTHENTICATOR_PROPERTIES};
pub use cluster::{BallistaScheduler, MEMORY_CATALOG, RetryPolicy};
pub use engine::Engine;
pub use error::{Result, SchedulerError};
pub use fetch::LocalExecutor;
pub use flight_sql::TributaryFlightSql;
pub use leases::{CLIENT_TIMEOUT, Lease, PartitionKey, ResultLeases};
pub use monitor::{HistoryOptions, Monitor};

/// Largest message the Flight SQL service accepts (DoPut of parameters and data).
const MAX_DECODING_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// How to run the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Where Flight SQL clients connect.
    pub flight_sql_addr: SocketAddr,
    /// Where executors connect (Ballista's scheduler gRPC).
    pub scheduler_addr: SocketAddr,
    /// Host name executors use to reach the scheduler.
    pub external_host: String,
    /// Who may connect (`--password-file`, `etc/password-authenticator.properties`); `None`:
    /// anyone.
    pub authenticator: Option<Authenticator>,
    /// Seconds results stay fetchable after a query ends.
    pub result_ttl_seconds: u64,
    /// `query.client.timeout`: how long a client may leave a result unread before it counts
    /// as gone (its query abandoned while it runs; [`CLIENT_TIMEOUT`] by default).
    pub client_timeout: Duration,
    /// Defaults of session properties (`etc/config.properties`: Trino's
    /// `join-distribution-type`, `query.max-run-time`, …).
    pub session_defaults: session::SessionDefaults,
    /// Clients read job results straight from the executors holding them
    /// (`flight-sql.results-from-executors`): endpoints with the executors' locations and
    /// tickets the scheduler signs with the shared secret; results are then announced once
    /// their query has finished.
    pub results_from_executors: bool,
    /// Where the HTTP server (metrics, web UI, `/v1/…`) listens; `None`: no HTTP server.
    pub http_addr: Option<SocketAddr>,
    /// Start without the HTTP server (with a warning) when `http_addr` cannot be bound (the
    /// default address; an explicit one must work).
    pub http_optional: bool,
    /// Where finished queries are kept; `None`: in memory only.
    pub history: Option<HistoryOptions>,
    /// Seconds without a heartbeat after which an executor counts as lost.
    pub executor_timeout_seconds: u64,
    /// What is retried when tasks fail or executors are lost.
    pub retry: RetryPolicy,
    /// Resource groups (`etc/resource-groups.properties`); `None`: no admission control.
    pub resource_groups: Option<admission::ResourceGroupsConfig>,
    /// Access-control rules (`etc/access-control.properties`); `None`: everyone may do
    /// everything.
    pub access_control: Option<access::AccessControl>,
    /// TLS of the Flight SQL port (`http-server.https.*`); `None`: plain gRPC.
    pub flight_sql_tls: Option<tonic::transport::ServerTlsConfig>,
    /// TLS and the shared secret between nodes (`internal-communication.*`).
    pub internal: tributary_security::InternalSecurity,
    /// Executors in this process (`tributary standalone`), whose result files are read from
    /// their work directories.
    pub local_executors: Vec<LocalExecutor>,
}

/// A running scheduler.
#[derive(Debug)]
pub struct RunningScheduler {
    /// The engine (for in-process use and tests).
    pub engine: Engine,
    /// The Flight SQL server task.
    pub flight_sql: tokio::task::JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    /// Where the HTTP server listens.
    pub http_addr: Option<SocketAddr>,
}

/// Starts the embedded Ballista scheduler and the Flight SQL service.
pub async fn start_scheduler(
    options: SchedulerOptions,
    catalogs: Catalogs,
) -> Result<RunningScheduler> {
    let auth = options
        .authenticator
        .clone()
        .unwrap_or_else(Authenticator::open);
    let history = match options.history.clone() {
        Some(history) => match monitor::History::open(history.clone()).await {
            Ok(store) => Some(store),
            Err(e) if history.optional => {
                tracing::warn!("query history kept in memory only: {e}");
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let monitor = Monitor::new(history).await;
    let leases = leases::ResultLeases::default().with_client_timeout(options.client_timeout);
    let (ballista, jobs) = cluster::start(
        &cluster::ClusterOptions {
            scheduler_addr: options.scheduler_addr,
            external_host: options.external_host.clone(),
            result_ttl_seconds: options.result_ttl_seconds,
            executor_timeout_seconds: options.executor_timeout_seconds,
            retry: options.retry,
            leases: leases.clone(),
            internal: options.internal.clone(),
            session_defaults: options.session_defaults.clone(),
        },
        catalogs.clone(),
        &monitor,
    )
    .await?;
    // A job nothing needs any more (its result read, cancelled or abandoned) has its files
    // deleted on every executor now, not when the result TTL has passed (`leases.rs`).
    {
        let executors = ballista.state.executor_manager.clone();
        leases.on_unused(move |job_id| {
            // (Ballista sends the requests from a task of its own; outside a runtime, at
            // shutdown, the TTL's clean-up is left to do it.)
            if tokio::runtime::Handle::try_current().is_ok() {
                executors.clean_up_job_data(ballista_core::JobId::from(job_id.to_owned()));
            }
        });
    }
    let http_addr = match options.http_addr {
        Some(addr) => match http::start(addr, monitor.clone(), auth.clone()).await {
            Ok(bound) => Some(bound),
            Err(e) if options.http_optional => {
                tracing::warn!("no web UI or /metrics: {e} (set --http-addr)");
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    if let Some(addr) = http_addr {
        monitor.set_http_uri(format!("http://{}:{}", options.external_host, addr.port()));
    }
    let engine = Engine::new(ballista, jobs, catalogs, monitor, leases, options.retry)
        .with_fetcher(
            fetch::PartitionFetcher::new(options.internal.clone(), &options.local_executors),
            !options.results_from_executors,
        )
        .with_admission(options.resource_groups.map(admission::ResourceGroups::new))
        .with_access_control(options.access_control);
    let service = TributaryFlightSql::new(
        engine.clone(),
        auth,
        Duration::from_secs(options.result_ttl_seconds),
        options.session_defaults,
        options
            .results_from_executors
            .then(|| options.internal.clone()),
    )?;
    let grpc = GrpcServerConfig {
        timeout_seconds: 24 * 3600,
        ..GrpcServerConfig::default()
    };
    let incoming = create_grpc_server_incoming(options.flight_sql_addr, &grpc).map_err(|e| {
        SchedulerError::Config(format!(
            "cannot listen for Flight SQL on {}: {e}",
            options.flight_sql_addr
        ))
    })?;
    let server =
        FlightServiceServer::new(service).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
    let mut server_builder = create_grpc_server(&grpc);
    if let Some(tls) = options.flight_sql_tls.clone() {
        server_builder = server_builder
            .tls_config(tls)
            .map_err(|e| SchedulerError::Config(format!("http-server.https: {e}")))?;
    }
    let flight_sql = tokio::spawn(
        server_builder
            .layer(flight_sql::CookieSessionLayer)
            .add_service(server)
            .serve_with_incoming(incoming),
    );
    tracing::info!(flight_sql = %options.flight_sql_addr, scheduler = %options.scheduler_addr, http = ?http_addr, "scheduler started");
    Ok(RunningScheduler {
        engine,
        flight_sql,
        http_addr,
    })
}

//! The embedded Ballista scheduler: our session builder (catalogs), codecs and
//! configuration, served on our own tonic server with TCP_NODELAY.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::BallistaPhysicalExtensionCodec;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_core::utils::{
    GrpcServerConfig, create_grpc_server, create_grpc_server_incoming, default_session_builder,
};
use ballista_scheduler::cluster::{BallistaCluster, JobState};
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tributary_connector::{
    Catalogs, ConnectorCodec, ConnectorStores, MAX_TASK_BYTES, register_connector_store,
};

use tributary_security::InternalSecurity;

use crate::error::{Result, SchedulerError};
use crate::leases::{ClusterActions, ResultLeases};
use crate::monitor::{BallistaMetrics, Monitor, TaskStatusTap};

/// The Ballista scheduler as Tributary embeds it.
pub type BallistaScheduler = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

/// Name of the in-memory catalog that `CREATE EXTERNAL TABLE` / `CREATE TABLE` write to
/// when no connector catalog is named (shared by all sessions of this scheduler).
pub const MEMORY_CATALOG: &str = "memory";

/// Settings of the embedded scheduler.
#[derive(Debug, Clone)]
pub(crate) struct ClusterOptions {
    /// Address of Ballista's scheduler gRPC service (executors connect here).
    pub scheduler_addr: SocketAddr,
    /// Host executors and clients use to reach the scheduler.
    pub external_host: String,
    /// Seconds finished jobs' results stay fetchable before executors delete them.
    pub result_ttl_seconds: u64,
    /// Seconds without a heartbeat after which an executor is lost (its running tasks run
    /// again elsewhere and its shuffle outputs are computed again).
    pub executor_timeout_seconds: u64,
    /// What is retried when tasks fail or executors are lost.
    pub retry: RetryPolicy,
    /// Which finished jobs' files are still needed (answered to draining executors).
    pub leases: ResultLeases,
    /// TLS and the shared secret between nodes.
    pub internal: InternalSecurity,
    /// The deployment's session property defaults (`system.metadata.session_properties`).
    pub session_defaults: crate::session::SessionDefaults,
}

/// What is retried when a task fails or an executor is lost: Trino's `retry-policy`.
///
/// Ballista's limits are per scheduler, so the policy is the cluster's (`--retry-policy`),
/// not a session property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// A failed task fails its query (a lost executor's work is still recomputed).
    None,
    /// A failed task runs again, up to `attempts` more times; a stage whose input was lost
    /// runs again too.
    Task {
        /// Retries per task (Trino's `task-retry-attempts-per-task`).
        attempts: usize,
    },
    /// A failed query runs again from the start, up to `attempts` more times, before any
    /// row reached the client (Trino's `query-retry-attempts`).
    Query {
        /// Retries per query.
        attempts: usize,
    },
}

impl RetryPolicy {
    /// Ballista's task and stage attempt limit (1: no retry).
    fn task_attempts(self) -> usize {
        match self {
            RetryPolicy::Task { attempts } => attempts + 1,
            RetryPolicy::None | RetryPolicy::Query { .. } => 1,
        }
    }

    /// How many times the engine submits a failed query again.
    pub(crate) fn query_retries(self) -> usize {
        match self {
            RetryPolicy::Query { attempts } => attempts,
            RetryPolicy::None | RetryPolicy::Task { .. } => 0,
        }
    }
}

/// Rows per batch (`datafusion.execution.batch_size`; DataFusion's default is 8192). Larger
/// batches spread each operator's per-batch work (a sort's runs to merge, a join's probe
/// setup, an IPC message's header and flush) over 4x the rows: the seed's query spent a
/// third less CPU in its sort, join and projection. Result batches of wide rows are still
/// written as messages the scheduler forwards as they are (`executor/src/compact.rs`).
const BATCH_ROWS: usize = 32 * 1024;

/// The base session configuration of every query (with the query's telemetry, which every
/// task carries to its executor). Its gRPC client settings are also those the scheduler
/// launches tasks with: up to [`MAX_TASK_BYTES`] a task.
pub(crate) fn base_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_batch_size(BATCH_ROWS)
        .with_information_schema(true)
        .with_option_extension(tributary_telemetry::QueryTelemetry::default())
        .set_usize(
            ballista_core::config::BALLISTA_CLIENT_GRPC_MAX_MESSAGE_SIZE,
            MAX_TASK_BYTES,
        )
}

/// Starts the embedded Ballista scheduler and serves its gRPC API; returns it with its job
/// store (finished jobs' execution graphs, for EXPLAIN ANALYZE).
pub(crate) async fn start(
    options: &ClusterOptions,
    catalogs: Catalogs,
    monitor: &Monitor,
) -> Result<(BallistaScheduler, Arc<dyn JobState>)> {
    let system = crate::system::catalog(
        monitor.clone(),
        catalogs.clone(),
        options.session_defaults.clone(),
    )?;
    let memory = Arc::new(MemoryCatalogProvider::new());
    memory
        .register_schema("default", Arc::new(MemorySchemaProvider::new()))
        .map_err(SchedulerError::from)?;
    let session_catalogs = catalogs.clone();
    // One registry for every session: connector stores (S3 clients) are made once.
    let stores = Arc::new(ConnectorStores::new(catalogs.clone()));
    let session_builder = Arc::new(move |config: SessionConfig| {
        let scope = config.get_extension::<crate::access::AccessScope>();
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&stores) as _)
            .build_arc()?;
        let mut builder = datafusion::execution::SessionStateBuilder::new_from_existing(
            default_session_builder(config)?,
        )
        .with_runtime_env(runtime)
        .with_query_planner(Arc::new(crate::planner::TributaryQueryPlanner));
        for rule in session_catalogs.optimizer_rules() {
            builder = builder.with_optimizer_rule(rule);
        }
        if let Some(functions) = builder.table_functions() {
            crate::table_functions::wrap_generators(functions);
        }
        // Access control: the session's catalogs as its user may see them.
        if let Some(scope) = scope
            && let Some(list) = builder.catalog_list()
        {
            *list = Arc::new(crate::access::FilteredCatalogList::new(
                Arc::clone(list),
                scope,
            ));
        }
        let mut state = builder.build();
        crate::trino_functions::register(&mut state)?;
        register_connector_store(state.runtime_env())?;
        let list = state.catalog_list();
        list.register_catalog(
            MEMORY_CATALOG.to_owned(),
            Arc::clone(&memory) as Arc<dyn CatalogProvider>,
        );
        list.register_catalog(
            crate::system::SYSTEM_CATALOG.to_owned(),
            Arc::clone(&system),
        );
        for name in session_catalogs.names() {
            let connector = session_catalogs.get(name)?;
            list.register_catalog(name.to_owned(), connector.catalog_provider());
        }
        Ok(state)
    });
    let codec = ConnectorCodec::new(
        catalogs,
        Arc::new(BallistaPhysicalExtensionCodec::default()),
    );

    let mut config = SchedulerConfig {
        bind_host: options.scheduler_addr.ip().to_string(),
        bind_port: options.scheduler_addr.port(),
        external_host: options.external_host.clone(),
        scheduling_policy: TaskSchedulingPolicy::PushStaged,
        finished_job_data_clean_up_interval_seconds: options.result_ttl_seconds,
        override_session_builder: Some(session_builder),
        override_config_producer: Some(Arc::new(base_config)),
        override_physical_codec: Some(Arc::new(codec)),
        ..SchedulerConfig::default()
    };
    // A draining executor reports Terminating and keeps heartbeating until nothing needs its
    // files; one that stops heartbeating is lost after the grace period.
    config.executor_termination_grace_period = options.executor_timeout_seconds.max(1);
    config.executor_timeout_seconds = options.executor_timeout_seconds.max(1);
    config.expire_dead_executor_interval_seconds =
        (options.executor_timeout_seconds / 5).clamp(1, 15);
    config.task_max_failures = options.retry.task_attempts();
    config.stage_max_failures = options.retry.task_attempts();
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let jobs = cluster.job_state();
    // Ballista's `create_scheduler`, with our metrics collector (pending tasks).
    let codec = ballista_core::serde::BallistaCodec::new(
        Arc::new(ballista_core::serde::BallistaLogicalExtensionCodec::default()),
        config
            .override_physical_codec
            .clone()
            .unwrap_or_else(|| Arc::new(BallistaPhysicalExtensionCodec::default())),
    );
    let mut scheduler: BallistaScheduler = SchedulerServer::new(
        config.scheduler_endpoint(),
        cluster,
        codec,
        Arc::clone(&config),
        Arc::new(BallistaMetrics(Arc::clone(&monitor.metrics))),
    );
    scheduler.init().await?;
    monitor.attach(scheduler.clone(), Arc::clone(&jobs));

    let grpc = GrpcServerConfig::default();
    let incoming = create_grpc_server_incoming(options.scheduler_addr, &grpc).map_err(|e| {
        SchedulerError::Config(format!("cannot listen on {}: {e}", options.scheduler_addr))
    })?;
    // Executors' task statuses pass through the monitor's tap (system.runtime.tasks).
    let tap = TaskStatusTap::new(
        scheduler.clone(),
        Arc::clone(&monitor.tasks),
        Arc::clone(&monitor.metrics),
    );
    let service = SchedulerGrpcServer::new(tap)
        .max_decoding_message_size(config.grpc_server_max_decoding_message_size as usize)
        .max_encoding_message_size(config.grpc_server_max_encoding_message_size as usize);
    let actions = FlightServiceServer::new(ClusterActions::new(
        scheduler.clone(),
        options.leases.clone(),
        options.internal.clone(),
    ));
    let mut server = create_grpc_server(&grpc);
    if let Some(tls) = options.internal.server_tls() {
        server = server
            .tls_config(tls)
            .map_err(|e| SchedulerError::Config(format!("internal TLS: {e}")))?;
    }
    // Executors register, heartbeat and report here: only with the cluster's secret.
    let mut server = server.layer(tonic::service::InterceptorLayer::new(
        options.internal.interceptor(),
    ));
    tokio::spawn(async move {
        if let Err(e) = server
            .add_service(service)
            .add_service(actions)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!("scheduler gRPC service stopped: {e}");
        }
    });
    Ok((scheduler, jobs))
}

#[cfg(test)]
mod tests {
    use super::RetryPolicy;

    #[test]
    fn retry_policies_map_to_ballista_attempts_and_query_retries() {
        assert_eq!(RetryPolicy::None.task_attempts(), 1);
        assert_eq!(RetryPolicy::None.query_retries(), 0);
        let task = RetryPolicy::Task { attempts: 4 };
        assert_eq!((task.task_attempts(), task.query_retries()), (5, 0));
        let query = RetryPolicy::Query { attempts: 2 };
        assert_eq!((query.task_attempts(), query.query_retries()), (1, 2));
    }
}

//! Runs one Ballista executor with Tributary's codec, runtime and session configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::BallistaPhysicalExtensionCodec;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{
    ExecutorProcessConfig, start_executor_process, structure_executor_metadata,
};
use ballista_executor::health::ExecutorHealth;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use tributary_connector::{
    Catalogs, ConnectorCodec, ConnectorStores, MAX_TASK_BYTES, register_connector_store,
};

use crate::drain::{DrainContext, DrainControl};
use crate::error::ExecutorError;
use crate::memory::{MemoryConfig, NodeMemory};
use crate::observe::{ExecutorMetrics, ObservedEngine, serve_metrics};
use ballista_core::extension::BallistaConfigGrpcEndpoint;
use ballista_executor::execution_engine::DefaultExecutionEngine;
use tonic::transport::Endpoint;
use tributary_security::InternalSecurity;
use tributary_telemetry::QueryTelemetry;

/// Memory for Parquet footers (and page indexes) kept between tasks of an executor.
const FOOTER_CACHE_BYTES: usize = 256 << 20;

/// How to run one executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Scheduler gRPC address, `host:port`.
    pub scheduler: String,
    /// Address the executor's servers bind to.
    pub bind_host: String,
    /// Host other nodes reach this executor at (defaults to `bind_host`).
    pub external_host: Option<String>,
    /// Port of the Flight service that serves shuffle and result partitions.
    pub flight_port: u16,
    /// Port of the gRPC service the scheduler pushes tasks to.
    pub grpc_port: u16,
    /// Where shuffle and result files are written.
    pub work_dir: Option<PathBuf>,
    /// Task slots (0 = number of cores).
    pub vcores: usize,
    /// Seconds finished jobs' files are kept before this executor deletes them.
    pub job_data_ttl_seconds: u64,
    /// Where `/metrics`, `/healthz`, `/readyz` and `/v1/info/state` are served; `None`: not
    /// served.
    pub http_addr: Option<std::net::SocketAddr>,
    /// Drains this executor (SIGTERM, HTTP); `None`: it cannot be drained (the executors of
    /// `tributary standalone`, which share one process).
    pub drain: Option<DrainControl>,
    /// A drain that takes longer ends anyway.
    pub drain_timeout: Duration,
    /// Memory and spill limits (`etc/config.properties`).
    pub memory: MemoryConfig,
    /// TLS and the shared secret between nodes (`internal-communication.*`).
    pub internal: InternalSecurity,
}

/// How often executors tell the scheduler they are alive (and whether they drain); the
/// scheduler's `--executor-timeout-seconds` must be a few of these.
const HEARTBEAT_INTERVAL_SECONDS: u64 = 3;

/// Runs an executor until it fails or the process is told to stop.
///
/// Uses Ballista's `start_executor_process`, which stops the executor at once on Ctrl-C
/// (SIGINT) and, where the process has not taken SIGTERM for draining
/// ([`crate::intercept_sigterm`]), on SIGTERM: this is the executor of a process
/// (`tributary executor`, or each executor of `tributary standalone`).
///
/// Without a work directory it works in one of its own under the system's temporary
/// directory ([`temporary_work_dir`]), removed when it stops.
pub async fn run_executor(
    mut options: ExecutorOptions,
    catalogs: Catalogs,
) -> Result<(), ExecutorError> {
    let temporary = options.work_dir.is_none().then(temporary_work_dir);
    if temporary.is_some() {
        options.work_dir.clone_from(&temporary);
    }
    let ran = serve(options, catalogs).await;
    if let Some(dir) = temporary {
        remove_work_dir(&dir);
    }
    ran
}

/// How temporary work directories' names begin: `tributary-executor-<pid>-<uuid>`.
const WORK_DIR_PREFIX: &str = "tributary-executor-";

/// A fresh work directory's path under the system's temporary directory, named after this
/// process. The first call of a process removes the temporary work directories of processes
/// that are gone: a process killed with SIGKILL, or one that exited without stopping its
/// executors (a test process), could not remove its own, and result files are large.
pub fn temporary_work_dir() -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let parent = std::env::temp_dir();
    SWEPT.call_once(|| remove_stale_work_dirs(&parent));
    parent.join(format!(
        "{WORK_DIR_PREFIX}{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ))
}

/// Removes the temporary work directories in `parent` whose process is gone.
fn remove_stale_work_dirs(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORK_DIR_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if pid > 0 && !process_alive(pid) {
            tracing::info!(dir = %entry.path().display(), pid, "removing the work directory of a process that is gone");
            remove_work_dir(&entry.path());
        }
    }
}

/// Whether process `pid` exists (one of another user counts: it cannot be signalled, but is there).
fn process_alive(pid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Removes a work directory and the result and shuffle files in it (a missing one is fine).
pub fn remove_work_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), "cannot remove work directory: {e}");
    }
}

async fn serve(options: ExecutorOptions, catalogs: Catalogs) -> Result<(), ExecutorError> {
    let metrics = Arc::new(ExecutorMetrics::new());
    let http_addr = options.http_addr;
    let drain = options.drain.clone();
    let drain_timeout = options.drain_timeout;
    let scheduler = options.scheduler.clone();
    let internal = options.internal.clone();
    // Requests from these addresses come from this host (drain requests are accepted).
    let own_ips: Vec<std::net::IpAddr> = [Some(&options.bind_host), options.external_host.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|host| host.parse().ok())
        .filter(|ip: &std::net::IpAddr| !ip.is_unspecified())
        .collect();
    let (mut config, memory) = process_config(options, catalogs)?;
    metrics.slots.set(config.vcores as i64);
    metrics.watch_memory(memory);
    // As Ballista does: client_ttl 0 means no pooling of shuffle-read connections.
    let engine = if config.client_ttl > 0 {
        let pool = crate::client_pool::ClientPool::with_eviction(
            std::time::Duration::from_secs(config.client_ttl),
            Some(Arc::new(BallistaConfigGrpcEndpoint::new(
                internal.endpoint_override(),
            ))),
        );
        DefaultExecutionEngine::with_client_pool(Arc::new(pool))
    } else {
        DefaultExecutionEngine::new()
    };
    config.override_execution_engine = Some(Arc::new(ObservedEngine::new(
        Arc::new(engine),
        Arc::clone(&metrics),
    )));
    let health = tributary_telemetry::Health::default();
    health.set_ready(false);
    if let Some(addr) = http_addr {
        let routes = match &drain {
            Some(control) => crate::drain::routes(control.clone(), own_ips),
            None => axum::Router::new(),
        };
        let bound = serve_metrics(addr, Arc::clone(&metrics), routes, health.clone()).await?;
        tracing::info!(http = %bound, "executor metrics served");
    }
    let config = Arc::new(config);
    // Without a drain control (standalone) nothing can start a drain: the task still keeps
    // `/readyz` current.
    {
        let control = drain.unwrap_or_default();
        let grpc_host = match config.bind_host.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            host => host,
        };
        let ctx = DrainContext {
            control,
            scheduler: scheduler_endpoint(&scheduler, &internal)?,
            own_grpc_url: format!("http://{grpc_host}:{}", config.grpc_port),
            registration: structure_executor_metadata(&config, config.vcores as u32),
            work_dir: PathBuf::from(config.work_dir.clone().unwrap_or_default()),
            metrics: Arc::clone(&metrics),
            health,
            ballista_health: config.health.clone(),
            timeout: drain_timeout,
        };
        tokio::spawn(crate::drain::run(ctx));
    }
    start_executor_process(config).await?;
    Ok(())
}

/// The scheduler's cluster port (Ballista's gRPC and Tributary's actions), over internal TLS
/// with the token.
fn scheduler_endpoint(
    scheduler: &str,
    internal: &InternalSecurity,
) -> Result<Endpoint, ExecutorError> {
    Ok(internal
        .client_endpoint(
            Endpoint::from_shared(format!("http://{scheduler}"))
                .map_err(|_| ExecutorError::SchedulerAddress(scheduler.to_owned()))?,
        )?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10)))
}

fn process_config(
    options: ExecutorOptions,
    catalogs: Catalogs,
) -> Result<(ExecutorProcessConfig, Arc<NodeMemory>), ExecutorError> {
    let (host, port) = options
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
        .ok_or_else(|| ExecutorError::SchedulerAddress(options.scheduler.clone()))?;
    let work_dir = options.work_dir.unwrap_or_else(temporary_work_dir);
    std::fs::create_dir_all(&work_dir).map_err(|source| ExecutorError::WorkDir {
        path: work_dir.display().to_string(),
        source,
    })?;
    let memory = NodeMemory::new(&options.memory, &work_dir)?;
    let work_dir = work_dir.display().to_string();
    let node_memory = Arc::clone(&memory);
    // One registry for every task: connector stores (S3 clients) are made once per process.
    let stores = Arc::new(ConnectorStores::new(catalogs.clone()));
    // One Parquet footer cache for every task: each task gets a fresh runtime, and without a
    // shared cache every task of every query would fetch the footers of its files again.
    let footers: Arc<FileMetadataCache> =
        Arc::new(DefaultCache::new(FOOTER_CACHE_BYTES).with_name("TributaryFileMetadataCache"));
    // Each task's runtime: its query's memory pool on this node and the node's spill disk.
    let runtime_producer: RuntimeProducer = Arc::new(move |config: &SessionConfig| {
        let mut builder = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&stores) as _)
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(Arc::clone(&footers)))
                    .with_metadata_cache_limit(FOOTER_CACHE_BYTES),
            )
            .with_memory_pool(node_memory.pool_for(config));
        builder.disk_manager = Some(node_memory.disk());
        let runtime = builder.build()?;
        register_connector_store(&runtime)?;
        Ok(Arc::new(runtime))
    });
    // Shuffle reads of a task connect to other executors over internal TLS, with the token.
    let internal = options.internal.clone();
    let config_producer: ConfigProducer = Arc::new(move || {
        SessionConfig::new_with_ballista()
            .with_option_extension(QueryTelemetry::default())
            .with_ballista_override_create_grpc_client_endpoint(internal.endpoint_override())
    });
    let codec = ConnectorCodec::new(
        catalogs,
        Arc::new(BallistaPhysicalExtensionCodec::default()),
    );

    let mut config = ExecutorProcessConfig {
        executor_id: uuid::Uuid::new_v4().to_string(),
        executor_heartbeat_interval_seconds: HEARTBEAT_INTERVAL_SECONDS,
        health: ExecutorHealth::new(),
        bind_host: options.bind_host.clone(),
        // Ballista's scheduler learns an executor's host from the registration (its gRPC server
        // is ours and does not record the peer address), so always send one.
        external_host: Some(
            options
                .external_host
                .clone()
                .unwrap_or_else(|| options.bind_host.clone()),
        ),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 60,
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: Some(work_dir),
        job_data_ttl_seconds: options.job_data_ttl_seconds,
        job_data_clean_up_interval_seconds: options.job_data_ttl_seconds.clamp(1, 300),
        override_runtime_producer: Some(runtime_producer),
        override_config_producer: Some(config_producer),
        override_physical_codec: Some(Arc::new(codec)),
        // Memory pools are ours (one per query, `memory.rs`), made for every task: Ballista's
        // per-task pools and its per-session runtime cache are off.
        memory_pool_size: Some(0),
        session_runtime_cache_capacity: 0,
        // To the scheduler over internal TLS, with the token; shuffle and result data served
        // the same way.
        override_create_grpc_client_endpoint: Some(options.internal.endpoint_override()),
        override_arrow_flight_service: Some(crate::flight::provider(
            options.internal.clone(),
            scheduler_endpoint(&options.scheduler, &options.internal)?,
        )),
        // Tasks carry in-memory tables: as large as the scheduler sends.
        grpc_max_decoding_message_size: MAX_TASK_BYTES as u32,
        grpc_max_encoding_message_size: MAX_TASK_BYTES as u32,
        ..ExecutorProcessConfig::default()
    };
    config.vcores = if options.vcores > 0 {
        options.vcores
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    Ok((config, memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dirs_of_processes_that_are_gone_are_removed() {
        let parent = std::env::temp_dir().join(format!("work-dirs-{}", uuid::Uuid::new_v4()));
        // A process that has exited: its pid is free (until reused).
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let gone = child.id();
        child.wait().expect("wait");
        let stale = parent.join(format!("{WORK_DIR_PREFIX}{gone}-1234"));
        let ours = parent.join(format!("{WORK_DIR_PREFIX}{}-5678", std::process::id()));
        let other = parent.join("tributary-cluster-1");
        for dir in [&stale, &ours, &other] {
            std::fs::create_dir_all(dir.join("job/1")).expect("mkdir");
            std::fs::write(dir.join("job/1/data.arrow"), b"rows").expect("write");
        }
        remove_stale_work_dirs(&parent);
        assert!(!stale.exists(), "the exited process's directory is removed");
        assert!(ours.exists(), "a live process's directory stays");
        assert!(other.exists(), "other directories stay");
        remove_work_dir(&parent);
    }

    #[test]
    fn temporary_work_dirs_carry_the_process_id() {
        let dir = temporary_work_dir();
        let name = dir.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name.starts_with(&format!("{WORK_DIR_PREFIX}{}-", std::process::id())),
            "{name}"
        );
    }
}

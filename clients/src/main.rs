//! `tributary`: one binary for every role — `standalone`, `scheduler`, `executor` — and the
//! `sql` shell. It is the composition root: it builds the one connector registry and hands
//! it to the scheduler and the executors.

mod config;
mod drain;
mod shell;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use config::NodeConfig;
use tributary_connector::{Catalogs, ConnectorRegistry};
use tributary_executor::{
    DrainControl, ExecutorOptions, intercept_sigterm, remove_work_dir, run_executor,
    temporary_work_dir,
};
use tributary_scheduler::admission::ResourceGroupsConfig;
use tributary_scheduler::{
    HistoryOptions, LocalExecutor, RetryPolicy, SchedulerOptions, start_scheduler,
};
use tributary_telemetry::TelemetryOptions;

/// Tributary: a distributed, federated SQL engine with an Arrow Flight SQL front door.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scheduler and executors in one process (a demo or a laptop).
    Standalone(StandaloneArgs),
    /// The scheduler alone: Flight SQL service and Ballista scheduler.
    Scheduler(SchedulerArgs),
    /// One executor, connecting to a scheduler (`tributary executor drain`: drain one).
    Executor(ExecutorCommand),
    /// A Flight SQL client shell (like trino-cli).
    Sql(shell::SqlArgs),
}

/// Telemetry and history flags of the scheduler (and of `standalone`).
#[derive(Debug, Args)]
struct ObservabilityArgs {
    /// Query history store: a SQLite file path or URL (default: <etc>/../var/history.db), or
    /// postgresql://user:password@host/db; `none` keeps history in memory only.
    #[arg(long, env = "TRIBUTARY_HISTORY_URL")]
    history_url: Option<String>,
    /// Finished queries older than this are deleted from the history (e.g. 7d, 12h, 30m).
    #[arg(long, env = "TRIBUTARY_HISTORY_MAX_AGE", default_value = "7d")]
    history_max_age: String,
    /// At most this many finished queries are kept in the history.
    #[arg(long, env = "TRIBUTARY_HISTORY_MAX_QUERIES", default_value_t = 10000)]
    history_max_queries: usize,
}

/// Where spans go (every role).
#[derive(Debug, Args)]
struct TraceArgs {
    /// OTLP/gRPC endpoint spans are exported to, e.g. http://otel-collector:4317 (Trino's
    /// otel.exporter.endpoint; OTEL_EXPORTER_OTLP_ENDPOINT is read too). Unset: no export.
    #[arg(
        long = "otel-exporter-endpoint",
        env = "TRIBUTARY_OTEL_EXPORTER_ENDPOINT"
    )]
    otel_exporter_endpoint: Option<String>,
}

impl TraceArgs {
    fn options(&self, service_name: &str) -> TelemetryOptions {
        TelemetryOptions {
            service_name: service_name.to_owned(),
            otlp_endpoint: self
                .otel_exporter_endpoint
                .clone()
                .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
                .filter(|e| !e.trim().is_empty()),
        }
    }
}

impl ObservabilityArgs {
    fn options(&self, etc: &Path) -> Result<Option<HistoryOptions>, String> {
        // The default location may be unwritable: then history stays in memory (a warning);
        // an explicit --history-url must work.
        let (url, optional) = match self.history_url.as_deref() {
            Some("none") => return Ok(None),
            Some(url) => (url.to_owned(), false),
            None => (
                tributary_connector::installation_dir(etc)
                    .join("var")
                    .join("history.db")
                    .display()
                    .to_string(),
                true,
            ),
        };
        let max_age = tributary_scheduler::session::parse_duration(&self.history_max_age)
            .ok_or_else(|| {
                format!(
                    "--history-max-age: '{}' is not a duration (e.g. 7d, 12h, 30m)",
                    self.history_max_age
                )
            })?;
        Ok(Some(HistoryOptions {
            url,
            max_age,
            max_queries: self.history_max_queries,
            optional,
        }))
    }
}

#[derive(Debug, Args)]
struct StandaloneArgs {
    /// Directory holding catalog/*.properties.
    #[arg(long, env = "TRIBUTARY_ETC", default_value = "etc")]
    etc: PathBuf,
    /// Number of executors to run in this process.
    #[arg(long, env = "TRIBUTARY_EXECUTORS", default_value_t = 2)]
    executors: usize,
    /// Address of the Flight SQL service.
    #[arg(
        long,
        env = "TRIBUTARY_FLIGHT_SQL_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    flight_sql_addr: SocketAddr,
    /// Address of the Ballista scheduler gRPC service (executors connect here).
    #[arg(
        long,
        env = "TRIBUTARY_SCHEDULER_ADDR",
        default_value = "127.0.0.1:50050"
    )]
    scheduler_addr: SocketAddr,
    /// Task slots per executor (0: all cores).
    #[arg(long, env = "TRIBUTARY_VCORES", default_value_t = 0)]
    vcores: usize,
    /// Seconds results stay fetchable after a query ends.
    #[arg(long, env = "TRIBUTARY_RESULT_TTL_SECONDS", default_value_t = 600)]
    result_ttl_seconds: u64,
    /// Address of the HTTP server: web UI, /metrics, /v1/query (default 127.0.0.1:8080;
    /// "off": none).
    #[arg(long, env = "TRIBUTARY_HTTP_ADDR")]
    http_addr: Option<String>,
    #[command(flatten)]
    observability: ObservabilityArgs,
    #[command(flatten)]
    trace: TraceArgs,
}

#[derive(Debug, Args)]
struct SchedulerArgs {
    /// Directory holding catalog/*.properties.
    #[arg(long, env = "TRIBUTARY_ETC", default_value = "etc")]
    etc: PathBuf,
    /// Address of the Flight SQL service.
    #[arg(
        long,
        env = "TRIBUTARY_FLIGHT_SQL_ADDR",
        default_value = "0.0.0.0:50051"
    )]
    flight_sql_addr: SocketAddr,
    /// Address of the Ballista scheduler gRPC service (executors connect here).
    #[arg(
        long,
        env = "TRIBUTARY_SCHEDULER_ADDR",
        default_value = "0.0.0.0:50050"
    )]
    scheduler_addr: SocketAddr,
    /// Host name executors reach this scheduler at.
    #[arg(long, env = "TRIBUTARY_EXTERNAL_HOST", default_value = "localhost")]
    external_host: String,
    /// File of `user:password` lines; without it any client may connect.
    #[arg(long, env = "TRIBUTARY_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Seconds results stay fetchable after a query ends.
    #[arg(long, env = "TRIBUTARY_RESULT_TTL_SECONDS", default_value_t = 600)]
    result_ttl_seconds: u64,
    /// Address of the HTTP server: web UI, /metrics, /v1/query (default 0.0.0.0:8080;
    /// "off": none).
    #[arg(long, env = "TRIBUTARY_HTTP_ADDR")]
    http_addr: Option<String>,
    #[command(flatten)]
    observability: ObservabilityArgs,
    #[command(flatten)]
    recovery: RecoveryArgs,
    #[command(flatten)]
    trace: TraceArgs,
}

/// What the scheduler does when executors or tasks fail.
#[derive(Debug, Args)]
struct RecoveryArgs {
    /// Seconds without a heartbeat after which an executor is lost: its running tasks run
    /// again elsewhere and its shuffle outputs are computed again (executors beat every 3 s).
    #[arg(long, env = "TRIBUTARY_EXECUTOR_TIMEOUT_SECONDS", default_value_t = 15)]
    executor_timeout_seconds: u64,
    /// What is retried when a task fails (Trino's retry-policy): NONE, TASK (a failed task
    /// runs again, as a stage whose input was lost) or QUERY (the whole query runs again).
    #[arg(long, env = "TRIBUTARY_RETRY_POLICY", default_value = "TASK", value_parser = ["NONE", "TASK", "QUERY", "none", "task", "query"])]
    retry_policy: String,
    /// Retries of a failed task under TASK (Trino's task-retry-attempts-per-task).
    #[arg(long, env = "TRIBUTARY_TASK_RETRY_ATTEMPTS", default_value_t = 4)]
    task_retry_attempts: usize,
    /// Retries of a failed query under QUERY (Trino's query-retry-attempts).
    #[arg(long, env = "TRIBUTARY_QUERY_RETRY_ATTEMPTS", default_value_t = 4)]
    query_retry_attempts: usize,
}

impl RecoveryArgs {
    fn retry(&self) -> RetryPolicy {
        match self.retry_policy.to_ascii_uppercase().as_str() {
            "NONE" => RetryPolicy::None,
            "QUERY" => RetryPolicy::Query {
                attempts: self.query_retry_attempts,
            },
            _ => RetryPolicy::Task {
                attempts: self.task_retry_attempts,
            },
        }
    }
}

/// `tributary executor [flags]` runs an executor; `tributary executor drain` drains one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ExecutorCommand {
    #[command(subcommand)]
    action: Option<ExecutorAction>,
    #[command(flatten)]
    run: ExecutorArgs,
}

#[derive(Debug, Subcommand)]
enum ExecutorAction {
    /// Drains a running executor (as SIGTERM does): it takes no new tasks, finishes its work,
    /// keeps its shuffle files until no query needs them, then exits. Run on the executor's
    /// host (Kubernetes: the pod's preStop hook).
    Drain(drain::DrainArgs),
}

#[derive(Debug, Args)]
struct ExecutorArgs {
    /// Scheduler gRPC address, HOST:PORT.
    #[arg(long, env = "TRIBUTARY_SCHEDULER", default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// Directory holding catalog/*.properties (the same files as the scheduler's).
    #[arg(long, env = "TRIBUTARY_ETC", default_value = "etc")]
    etc: PathBuf,
    /// Address the executor's services bind to.
    #[arg(long, env = "TRIBUTARY_BIND_HOST", default_value = "127.0.0.1")]
    bind_host: String,
    /// Host other nodes reach this executor at (default: bind host).
    #[arg(long, env = "TRIBUTARY_EXTERNAL_HOST")]
    external_host: Option<String>,
    /// Port of the Flight service serving shuffle and result partitions.
    #[arg(long, env = "TRIBUTARY_FLIGHT_PORT", default_value_t = 50052)]
    flight_port: u16,
    /// Port of the gRPC service the scheduler pushes tasks to.
    #[arg(long, env = "TRIBUTARY_GRPC_PORT", default_value_t = 50053)]
    grpc_port: u16,
    /// Directory for shuffle and result files (default: a new temporary directory).
    #[arg(long, env = "TRIBUTARY_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Task slots (0: all cores).
    #[arg(long, env = "TRIBUTARY_VCORES", default_value_t = 0)]
    vcores: usize,
    /// Seconds finished queries' files are kept.
    #[arg(long, env = "TRIBUTARY_RESULT_TTL_SECONDS", default_value_t = 600)]
    result_ttl_seconds: u64,
    /// Port of the HTTP server (/metrics, /healthz, /readyz, /v1/info/state); unset: none.
    #[arg(long, env = "TRIBUTARY_HTTP_PORT")]
    http_port: Option<u16>,
    /// Seconds a drain (SIGTERM, `tributary executor drain`) may take before the executor
    /// exits anyway; keep it below Kubernetes' terminationGracePeriodSeconds.
    #[arg(long, env = "TRIBUTARY_DRAIN_TIMEOUT_SECONDS", default_value_t = 570)]
    drain_timeout_seconds: u64,
    #[command(flatten)]
    trace: TraceArgs,
}

fn registry() -> ConnectorRegistry {
    let mut registry = ConnectorRegistry::new().register(std::sync::Arc::new(
        tributary_connector_tpch::TpchConnectorFactory,
    ));
    for factory in tributary_connector_sql::SqlConnectorFactory::all() {
        registry = registry.register(factory);
    }
    registry
        .register(std::sync::Arc::new(
            tributary_connector_hive::HiveConnectorFactory,
        ))
        .register(std::sync::Arc::new(
            tributary_connector_hive::DeltaLakeConnectorFactory,
        ))
        .register(std::sync::Arc::new(
            tributary_connector_kafka::KafkaConnectorFactory,
        ))
}

fn load_catalogs(etc: &Path) -> Result<Catalogs, String> {
    registry().load_catalogs(etc).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tributary_security::install_crypto();
    // An executor drains on SIGTERM; the signal must be taken before any thread starts.
    let drain_control = DrainControl::default();
    if matches!(&cli.command, Command::Executor(e) if e.action.is_none())
        && let Err(e) = intercept_sigterm(drain_control.clone())
    {
        eprintln!("cannot take SIGTERM for draining: {e}");
        return ExitCode::FAILURE;
    }
    // 8 MiB stacks (tokio's default is 2 MiB): DataFusion plans, optimizes and evaluates by
    // recursion, so deeply nested SQL needs depth, and debug builds keep large futures.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let telemetry = match &cli.command {
            Command::Sql(_) => None,
            Command::Standalone(a) => Some(a.trace.options("tributary")),
            Command::Scheduler(a) => Some(a.trace.options("tributary-scheduler")),
            Command::Executor(ExecutorCommand {
                action: Some(_), ..
            }) => None,
            Command::Executor(a) => Some(a.run.trace.options("tributary-executor")),
        };
        let _telemetry = match telemetry.as_ref().map(tributary_telemetry::init) {
            Some(Err(e)) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            Some(Ok(guard)) => Some(guard),
            None => None,
        };
        let result = match cli.command {
            Command::Sql(args) => return shell::run(args).await,
            Command::Standalone(args) => standalone(args).await,
            Command::Scheduler(args) => scheduler(args).await,
            Command::Executor(ExecutorCommand {
                action: Some(ExecutorAction::Drain(args)),
                ..
            }) => drain::drain(args).await,
            Command::Executor(args) => executor(args.run, drain_control.clone()).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // Executors and their servers are detached tasks; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// `--http-addr`: an address, or `off`; unset: `default` (and a busy default port is only a
/// warning). Returns the address and whether it may be skipped.
fn http_addr(text: Option<&str>, default: &str) -> Result<(Option<SocketAddr>, bool), String> {
    let (text, optional) = match text {
        Some(text) => (text, false),
        None => (default, true),
    };
    if text.eq_ignore_ascii_case("off") {
        return Ok((None, optional));
    }
    text.parse()
        .map(|a| (Some(a), optional))
        .map_err(|e| format!("--http-addr: '{text}' is not HOST:PORT ({e})"))
}

async fn scheduler(args: SchedulerArgs) -> Result<(), String> {
    let catalogs = load_catalogs(&args.etc)?;
    let node = NodeConfig::load(&args.etc)?;
    let http = http_addr(args.http_addr.as_deref(), "0.0.0.0:8080")?;
    // --password-file, else etc/password-authenticator.properties (Trino's file), and JWT as
    // etc/config.properties says.
    let authenticator = node.authenticator(&args.etc, args.password_file.as_deref())?;
    node.check_results_from_executors(&args.etc, authenticator.is_some())?;
    let options = SchedulerOptions {
        flight_sql_addr: args.flight_sql_addr,
        scheduler_addr: args.scheduler_addr,
        external_host: args.external_host,
        authenticator,
        result_ttl_seconds: args.result_ttl_seconds,
        client_timeout: node.client_timeout,
        session_defaults: node.session_defaults.clone(),
        results_from_executors: node.results_from_executors,
        http_addr: http.0,
        http_optional: http.1,
        history: args.observability.options(&args.etc)?,
        executor_timeout_seconds: args.recovery.executor_timeout_seconds,
        retry: args.recovery.retry(),
        resource_groups: ResourceGroupsConfig::load(&args.etc).map_err(|e| e.to_string())?,
        access_control: tributary_scheduler::access::AccessControl::from_etc(&args.etc)
            .map_err(|e| e.to_string())?,
        flight_sql_tls: node.flight_sql_tls.clone(),
        internal: node.internal.clone(),
        local_executors: Vec::new(),
    };
    let running = start_scheduler(options, catalogs)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "tributary scheduler: Flight SQL on grpc://{}{}",
        args.flight_sql_addr,
        running
            .http_addr
            .map(|a| format!(", web UI and metrics on http://{a}/"))
            .unwrap_or_default()
    );
    tokio::select! {
        served = running.flight_sql => served.map_err(|e| e.to_string())?.map_err(|e| format!("Flight SQL service failed: {e}")),
        _ = shutdown_signal() => Ok(()),
    }
}

/// SIGINT or SIGTERM (Kubernetes stops pods with SIGTERM).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn executor(args: ExecutorArgs, drain: DrainControl) -> Result<(), String> {
    let catalogs = load_catalogs(&args.etc)?;
    let node = NodeConfig::load(&args.etc)?;
    let options = ExecutorOptions {
        scheduler: args.scheduler,
        bind_host: args.bind_host.clone(),
        external_host: args.external_host,
        flight_port: args.flight_port,
        grpc_port: args.grpc_port,
        work_dir: args.work_dir,
        vcores: args.vcores,
        job_data_ttl_seconds: args.result_ttl_seconds,
        http_addr: match args.http_port {
            Some(port) => Some(
                format!("{}:{port}", args.bind_host)
                    .parse()
                    .map_err(|e| format!("--http-port: {e}"))?,
            ),
            None => None,
        },
        drain: Some(drain),
        drain_timeout: std::time::Duration::from_secs(args.drain_timeout_seconds),
        memory: node.memory,
        internal: node.internal,
    };
    run_executor(options, catalogs)
        .await
        .map_err(|e| e.to_string())
}

async fn standalone(args: StandaloneArgs) -> Result<(), String> {
    let catalogs = load_catalogs(&args.etc)?;
    let node = NodeConfig::load(&args.etc)?;
    // The executors run in this process: the scheduler reads their result files itself.
    let local = (0..args.executors)
        .map(|_| {
            Ok(LocalExecutor {
                host: "127.0.0.1".into(),
                flight_port: free_port()?,
                work_dir: temporary_work_dir(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let http = http_addr(args.http_addr.as_deref(), "127.0.0.1:8080")?;
    let options = SchedulerOptions {
        flight_sql_addr: args.flight_sql_addr,
        scheduler_addr: args.scheduler_addr,
        external_host: args.scheduler_addr.ip().to_string(),
        authenticator: None,
        result_ttl_seconds: args.result_ttl_seconds,
        client_timeout: node.client_timeout,
        session_defaults: node.session_defaults.clone(),
        results_from_executors: node.results_from_executors,
        http_addr: http.0,
        http_optional: http.1,
        history: args.observability.options(&args.etc)?,
        executor_timeout_seconds: 15,
        retry: RetryPolicy::Task { attempts: 4 },
        resource_groups: ResourceGroupsConfig::load(&args.etc).map_err(|e| e.to_string())?,
        access_control: tributary_scheduler::access::AccessControl::from_etc(&args.etc)
            .map_err(|e| e.to_string())?,
        flight_sql_tls: node.flight_sql_tls.clone(),
        internal: node.internal.clone(),
        local_executors: local.clone(),
    };
    let running = start_scheduler(options, catalogs.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut executors = Vec::new();
    let work_dirs: Vec<PathBuf> = local.iter().map(|e| e.work_dir.clone()).collect();
    for (n, executor) in local.into_iter().enumerate() {
        let options = ExecutorOptions {
            scheduler: args.scheduler_addr.to_string(),
            bind_host: executor.host,
            external_host: None,
            flight_port: executor.flight_port,
            grpc_port: free_port()?,
            work_dir: Some(executor.work_dir),
            vcores: args.vcores,
            job_data_ttl_seconds: args.result_ttl_seconds,
            http_addr: None,
            drain: None,
            drain_timeout: std::time::Duration::ZERO,
            memory: node.memory.clone(),
            internal: node.internal.clone(),
        };
        let catalogs = catalogs.clone();
        executors.push(tokio::spawn(async move {
            if let Err(e) = run_executor(options, catalogs).await {
                eprintln!("executor {n} stopped: {e}");
            }
        }));
    }
    eprintln!(
        "tributary standalone: Flight SQL on grpc://{} with {} executors{}",
        args.flight_sql_addr,
        args.executors,
        running
            .http_addr
            .map(|a| format!(", web UI and metrics on http://{a}/"))
            .unwrap_or_default()
    );
    let stopped = tokio::select! {
        served = running.flight_sql => served.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| format!("Flight SQL service failed: {e}"))),
        _ = shutdown_signal() => Ok(()),
    };
    // Result and shuffle files of the executors go with them.
    for dir in &work_dirs {
        remove_work_dir(dir);
    }
    stopped
}

/// A port free right now on loopback (for in-process executors).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

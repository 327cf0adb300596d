//! What the scheduler knows about queries, stages and tasks while they run and after:
//! `queries.rs` (every statement from arrival to end, kill), `tasks.rs` (each task's metrics
//! as its executor reports them, tapped from Ballista's scheduler gRPC by `tap.rs`),
//! `stages.rs` (stages and tasks of a job, live from Ballista's execution graph or as
//! recorded at the end), `history.rs` (finished queries in SQLite or PostgreSQL, so they
//! survive a restart) and `metrics.rs` (the scheduler's Prometheus metrics).
//!
//! The system tables (`crate::system`), the web UI and `/v1/query` (`crate::http`) and
//! EXPLAIN ANALYZE read from here.

mod history;
mod metrics;
mod queries;
mod query_info;
mod stages;
mod tap;
mod tasks;

pub use history::{History, HistoryOptions};
pub use metrics::SchedulerMetrics;
pub use queries::{Kill, KillOutcome};
pub use queries::{QueryHandle, QueryTracker, current_query};
pub use query_info::{QueryInfo, QueryState};
pub use stages::{SKEW_MIN_ROWS, SKEW_RATIO, Spread, StageInfo, job_stages};
pub use tap::TaskStatusTap;
pub use tasks::{TaskRecord, TaskTracker};

pub(crate) use metrics::BallistaMetrics;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ballista_core::serde::protobuf::executor_status;
use ballista_scheduler::cluster::JobState;

use crate::cluster::BallistaScheduler;
use crate::error::SchedulerError;

/// Ended queries waiting to be written to the history store.
const HISTORY_QUEUE: usize = 4096;

/// How long the end of a query waits for Ballista to file its finished job's graph.
const GRAPH_WAIT: Duration = Duration::from_secs(2);

/// Everything the scheduler monitors, shared by the engine, the system tables and HTTP.
#[derive(Clone)]
pub struct Monitor {
    /// Queries, running and recent.
    pub queries: Arc<QueryTracker>,
    /// Tasks' reported metrics.
    pub tasks: Arc<TaskTracker>,
    /// Prometheus metrics.
    pub metrics: Arc<SchedulerMetrics>,
    history: Option<History>,
    cluster: Arc<OnceLock<(BallistaScheduler, Arc<dyn JobState>)>>,
    http_uri: Arc<OnceLock<String>>,
    started_ms: i64,
}

/// One node of the cluster (`system.runtime.nodes`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Executor id, or `scheduler`.
    pub node_id: String,
    /// Where it serves (Flight for executors, Flight SQL's host for the scheduler).
    pub http_uri: Option<String>,
    /// Tributary's version.
    pub node_version: String,
    /// Whether this is the scheduler (Trino's coordinator).
    pub coordinator: bool,
    /// As Trino writes it: active, draining (terminating), dead or unknown.
    pub state: String,
    /// Task slots.
    pub task_slots: i64,
    /// Its last heartbeat (ms since the epoch).
    pub last_heartbeat_ms: Option<i64>,
}

impl Monitor {
    /// A monitor persisting finished queries to `history` (if any); restores what it holds.
    pub async fn new(history: Option<History>) -> Self {
        let monitor = Self {
            queries: Arc::new(QueryTracker::default()),
            tasks: Arc::new(TaskTracker::default()),
            metrics: Arc::new(SchedulerMetrics::new()),
            history,
            cluster: Arc::default(),
            http_uri: Arc::default(),
            started_ms: now_ms(),
        };
        if let Some(history) = &monitor.history {
            match history.load(500).await {
                Ok(queries) => monitor.queries.restore(queries),
                Err(e) => tracing::warn!("cannot read query history: {e}"),
            }
        }
        // One writer, behind a bounded queue: a slow store never piles up tasks; when the
        // queue is full, records are dropped with a warning.
        let writer = monitor.history.clone().map(|history| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<QueryInfo>(HISTORY_QUEUE);
            tokio::spawn(async move {
                while let Some(info) = rx.recv().await {
                    if let Err(e) = history.save(&info).await {
                        tracing::warn!(query_id = info.query_id, "cannot save query history: {e}");
                    }
                }
            });
            tx
        });
        let metrics = Arc::clone(&monitor.metrics);
        monitor.queries.on_end(move |info| {
            metrics.query_ended(info);
            if let Some(tx) = &writer
                && tx.try_send(info.clone()).is_err()
            {
                tracing::warn!(
                    query_id = info.query_id,
                    "query history store is behind: this query is not recorded"
                );
            }
        });
        monitor
    }

    /// Connects the monitor to the embedded Ballista scheduler once it runs.
    pub(crate) fn attach(&self, scheduler: BallistaScheduler, jobs: Arc<dyn JobState>) {
        let _ = self.cluster.set((scheduler, jobs));
    }

    /// Where the scheduler's HTTP server listens (`system.runtime.nodes.http_uri`).
    pub(crate) fn set_http_uri(&self, uri: String) {
        let _ = self.http_uri.set(uri);
    }

    fn scheduler(&self) -> Option<&BallistaScheduler> {
        self.cluster.get().map(|(s, _)| s)
    }

    /// Whether a task of a running job has started (the query is RUNNING, not STARTING).
    pub(crate) async fn job_has_running_task(&self, job_id: &str) -> bool {
        let Some(scheduler) = self.scheduler() else {
            return false;
        };
        let cache = scheduler.state.task_manager.get_running_job_cache();
        let key: ballista_core::JobId = job_id.to_owned().into();
        match cache.get(&key) {
            Some(job) => stages::has_running_task(job.execution_graph.read().await.as_ref()),
            None => false,
        }
    }

    /// When this scheduler started (ms since the epoch).
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// Running queries (with live statistics) and recent ones, newest first.
    pub async fn queries(&self) -> Vec<QueryInfo> {
        let mut out = Vec::new();
        for handle in self.queries.running() {
            out.push(self.live(&handle, false).await);
        }
        let mut recent = self.queries.recent();
        recent.reverse();
        let running: std::collections::HashSet<String> =
            out.iter().map(|q| q.query_id.clone()).collect();
        out.extend(
            recent
                .into_iter()
                .filter(|q| !running.contains(&q.query_id)),
        );
        out.sort_by_key(|q| std::cmp::Reverse(q.created_ms));
        out
    }

    /// One query, with its stages (live while it runs).
    pub async fn query(&self, query_id: &str) -> Option<QueryInfo> {
        if let Some(handle) = self.queries.find(query_id) {
            return Some(self.live(&handle, true).await);
        }
        self.queries
            .recent()
            .into_iter()
            .rev()
            .find(|q| q.query_id == query_id)
    }

    /// A running query with statistics (and stages) from its tasks so far.
    async fn live(&self, handle: &QueryHandle, with_stages: bool) -> QueryInfo {
        let mut info = handle.info();
        let Some(job_id) = info.job_id.clone() else {
            return info;
        };
        let (tasks, stages) = self.job_tasks(&job_id, with_stages).await;
        summarize(&mut info, &tasks, &stages);
        if with_stages {
            info.stages = stages;
        }
        info
    }

    /// A job's tasks (those reported, then those running now) and, when asked and the job
    /// runs, its stages.
    async fn job_tasks(
        &self,
        job_id: &str,
        with_stages: bool,
    ) -> (Vec<TaskRecord>, Vec<StageInfo>) {
        let mut tasks = self.tasks.of_job(job_id);
        let mut stages = Vec::new();
        if let Some(scheduler) = self.scheduler() {
            let cache = scheduler.state.task_manager.get_running_job_cache();
            let key: ballista_core::JobId = job_id.to_owned().into();
            if let Some(job) = cache.get(&key) {
                let graph = job.execution_graph.read().await;
                let running = stages::running_tasks(graph.as_ref(), &tasks);
                tasks.extend(running);
                if with_stages {
                    stages = job_stages(graph.as_ref(), &tasks);
                }
            }
        }
        (tasks, stages)
    }

    /// The tasks of one query (running or recent).
    pub async fn query_tasks(&self, query_id: &str) -> Vec<TaskRecord> {
        let job_id = match self.queries.find(query_id) {
            Some(handle) => handle.job_id(),
            None => self
                .queries
                .recent()
                .into_iter()
                .rev()
                .find(|q| q.query_id == query_id)
                .and_then(|q| q.job_id),
        };
        match job_id {
            Some(job_id) => self.job_tasks(&job_id, false).await.0,
            None => Vec::new(),
        }
    }

    /// Tasks of running and recent queries, with their query ids.
    pub async fn task_rows(&self) -> Vec<(String, TaskRecord)> {
        let running = self.queries.running();
        let queries = running
            .iter()
            .map(QueryHandle::info)
            .chain(self.queries.recent());
        // A query that is ending is briefly both running and recent: list it once.
        let mut seen = std::collections::HashSet::new();
        let jobs: Vec<(String, String)> = queries
            .filter(|q| seen.insert(q.query_id.clone()))
            .filter_map(|q| Some((q.query_id, q.job_id?)))
            .collect();
        let mut out = Vec::new();
        for (query_id, job_id) in jobs {
            let (tasks, _) = self.job_tasks(&job_id, false).await;
            out.extend(tasks.into_iter().map(|t| (query_id.clone(), t)));
        }
        out
    }

    /// The scheduler and the executors.
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        let version = env!("CARGO_PKG_VERSION").to_owned();
        let mut nodes = vec![NodeInfo {
            node_id: "scheduler".to_owned(),
            http_uri: self.http_uri.get().cloned(),
            node_version: version.clone(),
            coordinator: true,
            state: "active".to_owned(),
            task_slots: 0,
            last_heartbeat_ms: None,
        }];
        let Some(scheduler) = self.scheduler() else {
            return nodes;
        };
        let manager = &scheduler.state.executor_manager;
        let Ok(executors) = manager.get_executors_state().await else {
            return nodes;
        };
        for (metadata, heartbeat, _) in executors {
            let status = manager
                .get_executor_hearbeat(&metadata.id)
                .and_then(|hb| hb.status)
                .and_then(|s| s.status);
            let state = match status {
                Some(executor_status::Status::Active(_)) | None => "active",
                Some(executor_status::Status::Terminating(_)) => "shutting_down",
                Some(executor_status::Status::Dead(_)) => "dead",
                Some(executor_status::Status::Unknown(_)) => "unknown",
            };
            nodes.push(NodeInfo {
                node_id: metadata.id.clone(),
                http_uri: Some(format!("grpc://{}:{}", metadata.host, metadata.port)),
                node_version: version.clone(),
                coordinator: false,
                state: state.to_owned(),
                task_slots: i64::from(metadata.specification.vcores),
                last_heartbeat_ms: heartbeat.map(|d| d.as_millis() as i64),
            });
        }
        nodes
    }

    /// Updates the gauges `/metrics` reports that are read, not counted.
    pub async fn refresh_gauges(&self) {
        let mut running = 0;
        let mut queued = 0;
        for handle in self.queries.running() {
            match handle.info().state {
                QueryState::Running | QueryState::Finishing => running += 1,
                _ => queued += 1,
            }
        }
        self.metrics.running_queries.set(running);
        self.metrics.queued_queries.set(queued);
        let nodes = self.nodes().await;
        let executors: Vec<_> = nodes.iter().filter(|n| !n.coordinator).collect();
        self.metrics.executors.set(executors.len() as i64);
        self.metrics
            .task_slots
            .set(executors.iter().map(|n| n.task_slots).sum());
    }

    /// Ends a query: records its final statistics and stages (from Ballista's job store,
    /// waited for briefly), then its outcome.
    pub async fn complete(&self, handle: &QueryHandle, error: Option<&SchedulerError>) {
        if let Some(job_id) = handle.job_id() {
            let tasks = self.tasks.of_job(&job_id);
            let mut stages = Vec::new();
            if let Some((_, jobs)) = self.cluster.get() {
                let id = job_id.clone().into();
                let mut waited = Duration::ZERO;
                loop {
                    match jobs.get_execution_graph(&id).await {
                        Ok(Some(graph)) => {
                            stages = job_stages(graph.as_ref(), &tasks);
                            break;
                        }
                        // A failed job's graph may never be filed: do not hold its error back.
                        _ if waited >= GRAPH_WAIT || error.is_some() => break,
                        _ => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            waited += Duration::from_millis(20);
                        }
                    }
                }
            }
            let mut stats = handle.info();
            record_stage_spans(&stats, &job_id, &stages);
            summarize(&mut stats, &tasks, &stages);
            stats.stages = stages;
            handle.set_final_stats(stats);
        }
        let failure = error.map(|e| {
            let (error_type, code) = e.trino_error();
            (error_type, code, e.to_string())
        });
        handle.finish(failure);
    }
}

/// Each stage of a traced query becomes a span, child of the query's span, with the id its
/// tasks' spans already name as their parent (`TraceParent::stage`).
fn record_stage_spans(info: &QueryInfo, job_id: &str, stages: &[StageInfo]) {
    let Some(parent) = info
        .traceparent
        .as_deref()
        .and_then(tributary_telemetry::TraceParent::parse)
    else {
        return;
    };
    let at = |ms: i64| std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let now = now_ms();
    for stage in stages {
        // Stages that did not finish (failed, cancelled) end now: their tasks' spans name them.
        let Some(start) = stage.start_ms else {
            continue;
        };
        let end = stage.end_ms.unwrap_or(now);
        tributary_telemetry::record_span(
            &format!("stage {}", stage.stage_id),
            &parent.stage(job_id, stage.stage_id),
            &parent,
            at(start),
            at(end.max(start)),
            vec![
                ("tributary.query_id", info.query_id.clone()),
                ("tributary.job_id", job_id.to_owned()),
                ("tributary.stage_id", stage.stage_id.to_string()),
                ("tributary.state", stage.state.clone()),
                ("tributary.tasks", stage.tasks.to_string()),
            ],
        );
    }
}

/// A query's statistics from its tasks: compute time, peak memory, input, and output (the
/// final stage's).
fn summarize(info: &mut QueryInfo, tasks: &[TaskRecord], stages: &[StageInfo]) {
    info.cpu_time_ms = tasks.iter().map(|t| t.cpu_time_ms).sum();
    info.peak_memory_bytes = tasks.iter().map(|t| t.peak_memory_bytes).max().unwrap_or(0);
    info.input_rows = tasks.iter().map(|t| t.raw_input_rows).sum();
    info.input_bytes = tasks.iter().map(|t| t.raw_input_bytes).sum();
    let final_stages: Vec<usize> = stages
        .iter()
        .filter(|s| s.output_links.is_empty())
        .map(|s| s.stage_id)
        .collect();
    let last = final_stages
        .first()
        .copied()
        .or_else(|| tasks.iter().map(|t| t.stage_id).max());
    let output = tasks
        .iter()
        .filter(|t| Some(t.stage_id) == last && t.state == "FINISHED");
    let (rows, bytes) = output.fold((0, 0), |(r, b), t| (r + t.output_rows, b + t.output_bytes));
    info.output_rows = rows;
    info.output_bytes = bytes;
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

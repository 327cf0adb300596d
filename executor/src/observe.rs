//! What an executor shows of its work: every task runs under a `task` span (a child of its
//! stage's span in the query's trace, see `tributary_telemetry::TraceParent::stage`), and is
//! counted in the executor's Prometheus metrics (running tasks, slots, tasks by outcome, rows
//! and bytes read per catalog, shuffle bytes written, bytes spilled, memory reserved).
//!
//! Ballista runs tasks through an [`ExecutionEngine`]; [`ObservedEngine`] wraps its default
//! engine and each stage executor it makes.

use std::sync::{Arc, OnceLock};

use ballista_core::JobId;
use ballista_core::serde::protobuf::ShuffleWritePartition;
use ballista_executor::execution_engine::{ExecutionEngine, QueryStageExecutor};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{MetricValue, MetricsSet};
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use datafusion::prelude::SessionConfig;
use tracing::Instrument;
use tributary_connector::PlanOperator;
use tributary_telemetry::prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tributary_telemetry::{QueryTelemetry, TraceParent};

use crate::broadcast::{BuildLease, SharedBuilds};
use crate::memory::NodeMemory;
use crate::skew::{SkewContext, WrittenSizes};

/// An executor's metrics.
#[derive(Debug)]
pub struct ExecutorMetrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    running: IntGauge,
    /// Task slots of this executor.
    pub slots: IntGauge,
    /// 1 while the executor drains.
    pub draining: IntGauge,
    memory: IntGauge,
    memory_limit: IntGauge,
    memory_peak: IntGauge,
    spill_disk: IntGauge,
    tasks: IntCounterVec,
    input_rows: IntCounterVec,
    input_bytes: IntCounterVec,
    shuffle_bytes: IntCounter,
    spilled: IntCounter,
    broadcast_builds: IntCounter,
    broadcast_reuses: IntCounter,
    skew_splits: IntCounter,
    node_memory: OnceLock<Arc<NodeMemory>>,
}

impl ExecutorMetrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric name");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric name");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        Self {
            running: gauge(
                "tributary_executor_running_tasks",
                "Tasks running on this executor",
            ),
            slots: gauge(
                "tributary_executor_task_slots",
                "Task slots of this executor",
            ),
            draining: gauge(
                "tributary_executor_draining",
                "1 while this executor drains (takes no new tasks)",
            ),
            memory: gauge(
                "tributary_executor_memory_reserved_bytes",
                "Memory reserved by the running tasks' operators",
            ),
            memory_limit: gauge(
                "tributary_executor_memory_limit_bytes",
                "Memory all queries together may reserve (query.max-total-memory-per-node)",
            ),
            memory_peak: gauge(
                "tributary_executor_memory_peak_bytes",
                "Most memory reserved at once since the executor started",
            ),
            spill_disk: gauge(
                "tributary_executor_spill_disk_bytes",
                "Bytes of spill files on disk now",
            ),
            tasks: counter_vec(
                "tributary_executor_tasks_total",
                "Tasks ended, by outcome",
                "state",
            ),
            input_rows: counter_vec(
                "tributary_executor_input_rows_total",
                "Rows read from sources, by catalog",
                "catalog",
            ),
            input_bytes: counter_vec(
                "tributary_executor_input_bytes_total",
                "Bytes read from sources, by catalog",
                "catalog",
            ),
            shuffle_bytes: counter(
                "tributary_executor_shuffle_written_bytes_total",
                "Bytes of shuffle and result partitions written",
            ),
            spilled: counter(
                "tributary_executor_spilled_bytes_total",
                "Bytes spilled to disk",
            ),
            broadcast_builds: counter(
                "tributary_executor_broadcast_builds_total",
                "Broadcast join build sides fetched and built on this executor (once per stage and join while its tasks run here)",
            ),
            broadcast_reuses: counter(
                "tributary_executor_broadcast_reuses_total",
                "Tasks that probed a broadcast build side another task on this executor built",
            ),
            skew_splits: counter(
                "tributary_executor_skew_splits_total",
                "Skewed partitions of partitioned joins joined in pieces on this executor",
            ),
            node_memory: OnceLock::new(),
            registry,
        }
    }

    /// Tasks running now.
    pub(crate) fn running_tasks(&self) -> i64 {
        self.running.get()
    }

    /// Reads the gauges that are sampled, not counted (memory reserved now). Tasks of one
    /// session may share a pool: each pool counts once.
    pub fn refresh(&self) {
        if let Some(node) = self.node_memory.get() {
            self.memory.set(node.reserved() as i64);
            self.memory_limit.set(node.total() as i64);
            self.memory_peak.set(node.peak() as i64);
            self.spill_disk.set(node.spilled() as i64);
        }
    }

    /// Reports this executor's memory (`memory.rs`).
    pub(crate) fn watch_memory(&self, node: Arc<NodeMemory>) {
        let _ = self.node_memory.set(node);
    }
}

impl Default for ExecutorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A task counted as running until it ends; a task Ballista aborts (cancelled job, failed
/// sibling) is dropped mid-way and counted as cancelled.
struct RunningTask {
    metrics: Arc<ExecutorMetrics>,
    ended: bool,
}

impl RunningTask {
    fn new(metrics: &Arc<ExecutorMetrics>) -> Self {
        metrics.running.inc();
        Self {
            metrics: Arc::clone(metrics),
            ended: false,
        }
    }

    /// The task ended: `Some(bytes written)` when it succeeded.
    fn ended(mut self, written: Option<u64>) {
        self.ended = true;
        match written {
            Some(bytes) => {
                self.metrics.tasks.with_label_values(&["finished"]).inc();
                self.metrics.shuffle_bytes.inc_by(bytes);
            }
            None => self.metrics.tasks.with_label_values(&["failed"]).inc(),
        }
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        if !self.ended {
            self.metrics.tasks.with_label_values(&["cancelled"]).inc();
        }
        self.metrics.running.dec();
    }
}

/// Ballista's execution engine with spans and metrics around each task, sorts of broadcast
/// joins' output moved onto their probe sides (`presort.rs`), broadcast build sides shared by
/// the tasks on this executor (`broadcast.rs`) and skewed join partitions split (`skew.rs`).
pub(crate) struct ObservedEngine {
    inner: Arc<dyn ExecutionEngine>,
    metrics: Arc<ExecutorMetrics>,
    builds: Arc<SharedBuilds>,
    /// What this executor's map tasks wrote into each shuffle.
    written: Arc<WrittenSizes>,
}

impl ObservedEngine {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn ExecutionEngine>, metrics: Arc<ExecutorMetrics>) -> Self {
        Self {
            inner,
            metrics,
            builds: Arc::default(),
            written: Arc::default(),
        }
    }
}

impl ExecutionEngine for ObservedEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        let telemetry = config
            .options()
            .extensions
            .get::<QueryTelemetry>()
            .cloned()
            .unwrap_or_default();
        let span = tracing::info_span!(
            "task",
            query_id = %telemetry.query_id,
            job_id = %job_id,
            stage_id,
            task_id,
        );
        if let Some(stage) = TraceParent::parse(&telemetry.traceparent)
            .map(|query| query.stage(job_id.as_ref(), stage_id))
        {
            tributary_telemetry::set_parent(&span, &stage);
        }
        // Connector split reads become children of the task span.
        let plan = tributary_connector::trace_scans_under(plan, &span)?;
        let uncompressed = crate::uncompressed::writes_whole_partitions(plan.as_ref());
        // Sorts of broadcast joins' output sort the probe rows below the join instead.
        let (plan, moves) = crate::presort::presort_below_joins(plan)?;
        // Broadcast joins share their build side with the stage's other tasks here.
        let shared = self.builds.share(job_id.as_ref(), stage_id, plan)?;
        self.metrics.broadcast_builds.inc_by(shared.built);
        self.metrics.broadcast_reuses.inc_by(shared.reused);
        // Partitioned joins split their skewed partitions.
        let skew = SkewContext::new(
            job_id.as_ref(),
            &telemetry,
            Arc::clone(&self.written),
            self.metrics.skew_splits.clone(),
        );
        let plan = crate::skew::split_skewed(shared.plan, &skew)?;
        // The shuffle writer counts and writes its input in its real size. (After sharing:
        // the wrapper delegates its identity, so a join it wrapped would be replaced by its
        // shared build, wrapper and all.)
        let plan = crate::compact::compact_shuffle_input(plan)?;
        // A hash shuffle's sizes per partition, kept for the tasks that will read it, when
        // the task writes into every partition (a map task; a task writing its own slice of
        // partitions says nothing of the others).
        let shuffle = match plan.properties().output_partitioning() {
            Partitioning::Hash(_, partitions)
                if global_output_partition_ids.len() == *partitions =>
            {
                Some(Shuffle {
                    job_id: job_id.to_string(),
                    stage_id,
                    partitions: *partitions,
                    sizes: Arc::clone(&self.written),
                })
            }
            _ => None,
        };
        let inner = self.inner.create_query_stage_exec(
            job_id.clone(),
            stage_id,
            task_id,
            global_output_partition_ids.clone(),
            Arc::clone(&plan),
            work_dir,
            config,
        )?;
        Ok(Arc::new(ObservedStage {
            inner,
            plan,
            span,
            metrics: Arc::clone(&self.metrics),
            peak: Arc::default(),
            uncompressed,
            builds: shared.leases,
            shuffle,
            moves,
        }))
    }
}

/// One task's stage executor, observed.
struct ObservedStage {
    inner: Arc<dyn QueryStageExecutor>,
    plan: Arc<dyn ExecutionPlan>,
    /// The task's span (a child of its stage's span when the query is traced).
    span: tracing::Span,
    metrics: Arc<ExecutorMetrics>,
    /// The query's peak memory on this executor when the task ended.
    peak: Arc<std::sync::atomic::AtomicUsize>,
    /// Its partitions are read whole: written without compression (`uncompressed.rs`).
    uncompressed: bool,
    /// The broadcast build sides it shares (`broadcast.rs`), released when it is dropped.
    builds: Vec<BuildLease>,
    /// The hash shuffle it writes, whose sizes it records.
    shuffle: Option<Shuffle>,
    /// The sorts its plan runs elsewhere than the scheduler's plan has them (`presort.rs`).
    moves: Vec<crate::presort::Moved>,
}

/// A hash shuffle a task writes.
struct Shuffle {
    job_id: String,
    stage_id: usize,
    partitions: usize,
    sizes: Arc<WrittenSizes>,
}

impl std::fmt::Debug for ObservedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.inner, f)
    }
}

impl std::fmt::Display for ObservedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for ObservedStage {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        let running = RunningTask::new(&self.metrics);
        let context = self.task_context(context);
        let pool = std::sync::Arc::clone(context.memory_pool());
        let peak = Arc::clone(&self.peak);
        let result = self
            .inner
            .execute_query_stage(task_id, context)
            .instrument(self.span.clone())
            .await
            .map_err(|e| crate::memory::explain_exhaustion(&pool, e));
        if let Some(bytes) = crate::memory::query_peak(&pool) {
            peak.store(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        if result.is_err() {
            self.builds.iter().for_each(BuildLease::forget);
        }
        if let (Ok(written), Some(shuffle)) = (&result, &self.shuffle) {
            shuffle.sizes.record(
                &shuffle.job_id,
                shuffle.stage_id,
                shuffle.partitions,
                written,
            );
        }
        running.ended(match &result {
            Ok(partitions) => Some(partitions.iter().map(|p| p.num_bytes).sum()),
            Err(_) => None,
        });
        self.count_input();
        result
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        // In the scheduler's order: it lines them up with its plan by position.
        let mut sets =
            crate::presort::planned_order(self.inner.collect_plan_metrics(), &self.moves);
        // The query's peak memory on this executor, reported with the task (the scheduler
        // takes it as the task's peak memory, at least).
        let peak = self.peak.load(std::sync::atomic::Ordering::Relaxed);
        if peak > 0
            && let Some(first) = sets.first_mut()
        {
            let gauge = datafusion::physical_plan::metrics::Gauge::new();
            gauge.set(peak);
            first.push(Arc::new(datafusion::physical_plan::metrics::Metric::new(
                MetricValue::Gauge {
                    name: tributary_telemetry::QUERY_PEAK_MEMORY.into(),
                    gauge,
                },
                None,
            )));
        }
        sets
    }

    fn collect_runtime_stats_reports(
        &self,
    ) -> Vec<ballista_core::serde::protobuf::RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(
        &self,
    ) -> Result<Vec<ballista_core::serde::protobuf::WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<ballista_core::serde::protobuf::TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}

impl ObservedStage {
    /// The task's context with our settings: the sort reservation and the batch size fitted
    /// to the query's memory (`memory.rs`) and, for partitions read whole, no compression
    /// (`uncompressed.rs`). Made anew only when a setting changed.
    fn task_context(&self, context: Arc<TaskContext>) -> Arc<TaskContext> {
        let mut config = context.session_config().clone();
        let slots = self.metrics.slots.get().max(1) as usize;
        let fitted = crate::memory::fit_to_query_limit(&context, &mut config, slots);
        let uncompressed =
            self.uncompressed && crate::uncompressed::without_compression(&mut config);
        if !fitted && !uncompressed {
            return context;
        }
        Arc::new(TaskContext::new(
            context.task_id(),
            context.session_id(),
            config,
            context.scalar_functions().clone(),
            context.higher_order_functions().clone(),
            context.aggregate_functions().clone(),
            context.window_functions().clone(),
            context.runtime_env(),
        ))
    }

    /// Adds the task's source reads (per catalog) and spills to the counters. Metrics come in
    /// pre-order over the operators that have them, as Ballista collects them.
    fn count_input(&self) {
        let metrics = self.inner.collect_plan_metrics();
        let operators = tributary_connector::plan_operators(self.plan.as_ref());
        // The executed plan is the stage plan under Ballista's shuffle writer: align from the end.
        let offset = metrics.len().saturating_sub(operators.len());
        for (n, set) in metrics.iter().enumerate() {
            for metric in set.iter() {
                if let MetricValue::SpilledBytes(c) = metric.value() {
                    self.metrics.spilled.inc_by(c.value() as u64);
                }
            }
            let Some(PlanOperator::Source(Some(catalog))) =
                n.checked_sub(offset).and_then(|i| operators.get(i))
            else {
                continue;
            };
            let rows = set.output_rows().unwrap_or(0) as u64;
            self.metrics
                .input_rows
                .with_label_values(&[catalog.as_str()])
                .inc_by(rows);
            self.metrics
                .input_bytes
                .with_label_values(&[catalog.as_str()])
                .inc_by(tributary_connector::bytes_read(set).max(0) as u64);
        }
    }
}

/// Serves the executor's `/metrics`, `/healthz` and `/readyz` (as `health` says), plus
/// `routes`.
pub(crate) async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<ExecutorMetrics>,
    routes: axum::Router,
    health: tributary_telemetry::Health,
) -> std::result::Result<std::net::SocketAddr, tributary_telemetry::TelemetryError> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let routes = routes.route(
        "/metrics",
        get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                metrics.refresh();
                match tributary_telemetry::encode_metrics(&metrics.registry) {
                    Ok(text) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    ),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(header::CONTENT_TYPE, "text/plain")],
                        e.to_string(),
                    ),
                }
            }
        }),
    );
    tributary_telemetry::serve_http(addr, routes, health).await
}

//! The scheduler's Prometheus metrics (`/metrics`), named as Prometheus recommends: queries by
//! state, query durations, the cluster's executors and task slots, tasks waiting for a slot,
//! rows and bytes read per catalog, bytes spilled.

use ballista_core::JobId;
use ballista_scheduler::metrics::SchedulerMetricsCollector;
use tributary_telemetry::prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::query_info::{QueryInfo, QueryState};
use super::tasks::TaskRecord;

/// Every metric the scheduler exports.
#[derive(Debug)]
pub struct SchedulerMetrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Queries whose tasks run.
    pub running_queries: IntGauge,
    /// Queries not yet running (being planned, or waiting for the cluster).
    pub queued_queries: IntGauge,
    finished: IntCounter,
    failed: IntCounter,
    duration: HistogramVec,
    /// Tasks waiting for a slot.
    pub pending_tasks: IntGauge,
    /// Registered executors.
    pub executors: IntGauge,
    /// Task slots of the registered executors.
    pub task_slots: IntGauge,
    input_rows: IntCounterVec,
    input_bytes: IntCounterVec,
    spilled: IntCounter,
    tasks: IntCounterVec,
    task_seconds: Histogram,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("valid metric name");
    registry
        .register(Box::new(gauge.clone()))
        .expect("metric registered once");
    gauge
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("valid metric name");
    registry
        .register(Box::new(counter.clone()))
        .expect("metric registered once");
    counter
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric name");
    registry
        .register(Box::new(counter.clone()))
        .expect("metric registered once");
    counter
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SchedulerMetrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tributary_query_duration_seconds",
                "Wall time of ended queries, from arrival to end",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
            &["state"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        let task_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tributary_task_duration_seconds",
                "Execution time of ended tasks",
            )
            .buckets(vec![
                0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 600.0,
            ]),
        )
        .expect("valid histogram");
        registry
            .register(Box::new(task_seconds.clone()))
            .expect("metric registered once");
        Self {
            running_queries: gauge(
                &registry,
                "tributary_running_queries",
                "Queries whose tasks run",
            ),
            queued_queries: gauge(
                &registry,
                "tributary_queued_queries",
                "Queries received and not yet running (planning, or waiting for task slots)",
            ),
            finished: counter(
                &registry,
                "tributary_finished_queries_total",
                "Queries that finished",
            ),
            failed: counter(
                &registry,
                "tributary_failed_queries_total",
                "Queries that failed or were killed",
            ),
            duration,
            pending_tasks: gauge(
                &registry,
                "tributary_pending_tasks",
                "Tasks waiting for a task slot",
            ),
            executors: gauge(
                &registry,
                "tributary_executors",
                "Executors registered with the scheduler",
            ),
            task_slots: gauge(
                &registry,
                "tributary_task_slots",
                "Task slots of the registered executors",
            ),
            input_rows: counter_vec(
                &registry,
                "tributary_input_rows_total",
                "Rows read from sources, by catalog",
                "catalog",
            ),
            input_bytes: counter_vec(
                &registry,
                "tributary_input_bytes_total",
                "Bytes read from sources, by catalog",
                "catalog",
            ),
            spilled: counter(
                &registry,
                "tributary_spilled_bytes_total",
                "Bytes tasks spilled to disk",
            ),
            tasks: counter_vec(
                &registry,
                "tributary_tasks_total",
                "Ended tasks, by state",
                "state",
            ),
            task_seconds,
            registry,
        }
    }

    /// Counts an ended query.
    pub fn query_ended(&self, info: &QueryInfo) {
        let state = match info.state {
            QueryState::Finished => {
                self.finished.inc();
                "finished"
            }
            _ => {
                self.failed.inc();
                "failed"
            }
        };
        self.duration
            .with_label_values(&[state])
            .observe(info.elapsed_ms() as f64 / 1000.0);
    }

    /// Counts an ended task.
    pub fn task_ended(&self, task: &TaskRecord) {
        self.tasks
            .with_label_values(&[task.state.to_lowercase().as_str()])
            .inc();
        self.task_seconds
            .observe(task.scheduled_time_ms.max(0) as f64 / 1000.0);
        self.spilled.inc_by(task.spilled_bytes.max(0) as u64);
        for (catalog, rows, bytes) in &task.input_by_catalog {
            self.input_rows
                .with_label_values(&[catalog.as_str()])
                .inc_by((*rows).max(0) as u64);
            self.input_bytes
                .with_label_values(&[catalog.as_str()])
                .inc_by((*bytes).max(0) as u64);
        }
    }
}

/// Ballista's scheduler reports the size of its pending-task queue here.
#[derive(Debug)]
pub(crate) struct BallistaMetrics(pub std::sync::Arc<SchedulerMetrics>);

impl SchedulerMetricsCollector for BallistaMetrics {
    fn record_submitted(&self, _job_id: &JobId, _queued_at: u64, _submitted_at: u64) {}
    fn record_completed(&self, _job_id: &JobId, _queued_at: u64, _completed_at: u64) {}
    fn record_failed(&self, _job_id: &JobId, _queued_at: u64, _failed_at: u64) {}
    fn record_cancelled(&self, _job_id: &JobId) {}

    fn set_pending_tasks_queue_size(&self, value: u64) {
        self.0.pending_tasks.set(value as i64);
    }

    fn gather_metrics(&self) -> ballista_core::error::Result<Option<(Vec<u8>, String)>> {
        Ok(None)
    }
}

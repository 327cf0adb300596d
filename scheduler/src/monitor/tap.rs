//! Ballista's scheduler gRPC service, wrapped: every call goes to Ballista unchanged, and the
//! task statuses executors report (`UpdateTaskStatus`) are also turned into
//! [`TaskRecord`]s first (Ballista only keeps per-stage sums).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpc;
use ballista_core::serde::protobuf::{self as pb, task_status};
use ballista_scheduler::state::execution_stage::ExecutionStage;
use datafusion::physical_plan::metrics::{MetricValue, MetricsSet};
use tonic::{Request, Response, Status};
use tributary_connector::{PlanOperator, bytes_read, plan_operators};

use super::metrics::SchedulerMetrics;
use super::tasks::{TaskRecord, TaskTracker};
use crate::cluster::BallistaScheduler;

/// Operators of each (job, stage) seen, in metrics order.
type OperatorCache = Arc<Mutex<HashMap<(String, usize), Arc<Vec<PlanOperator>>>>>;

/// Ballista's scheduler service with a tap on task statuses.
#[derive(Clone)]
pub struct TaskStatusTap {
    inner: BallistaScheduler,
    tasks: Arc<TaskTracker>,
    metrics: Arc<SchedulerMetrics>,
    operators: OperatorCache,
}

impl TaskStatusTap {
    /// Wraps `inner`, recording into `tasks`.
    pub fn new(
        inner: BallistaScheduler,
        tasks: Arc<TaskTracker>,
        metrics: Arc<SchedulerMetrics>,
    ) -> Self {
        Self {
            inner,
            tasks,
            metrics,
            operators: Arc::default(),
        }
    }

    /// The operators of a running stage, from Ballista's execution graph (cached per stage).
    /// Also returns how many input partitions (splits) the task was given.
    async fn operators(
        &self,
        job_id: &str,
        stage_id: usize,
        task_id: usize,
    ) -> (Option<Arc<Vec<PlanOperator>>>, usize) {
        let cache = self.inner.state.task_manager.get_running_job_cache();
        let key: ballista_core::JobId = job_id.to_owned().into();
        let Some(job) = cache.get(&key) else {
            return (None, 0);
        };
        let graph = job.execution_graph.read().await;
        let (plan, splits) = match graph.stages().get(&stage_id) {
            Some(ExecutionStage::Running(s)) => (
                Arc::clone(&s.plan),
                s.task_infos
                    .iter()
                    .find(|t| t.task_id == task_id)
                    .map(|t| t.global_input_partition_ids.len())
                    .unwrap_or(0),
            ),
            Some(ExecutionStage::Successful(s)) => (Arc::clone(&s.plan), 0),
            Some(ExecutionStage::Failed(s)) => (Arc::clone(&s.plan), 0),
            _ => return (None, 0),
        };
        drop(graph);
        let key = (job_id.to_owned(), stage_id);
        if let Some(found) = self
            .operators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return (Some(Arc::clone(found)), splits);
        }
        let operators = Arc::new(plan_operators(plan.as_ref()));
        let mut cache = self.operators.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&operators));
        (Some(operators), splits)
    }

    async fn record(&self, executor_id: &str, status: &pb::TaskStatus) {
        let (state, partitions, error) = match &status.status {
            Some(task_status::Status::Successful(s)) => ("FINISHED", s.partitions.as_slice(), None),
            Some(task_status::Status::Failed(f)) => ("FAILED", &[][..], Some(f.error.clone())),
            _ => return,
        };
        let mut task = TaskRecord {
            job_id: status.job_id.clone(),
            stage_id: status.stage_id as usize,
            task_id: status.task_id as usize,
            attempt: status.stage_attempt_num as usize,
            node_id: executor_id.to_owned(),
            state: state.to_owned(),
            created_ms: status.launch_time as i64,
            start_ms: Some(status.start_exec_time as i64),
            end_ms: Some(status.end_exec_time as i64),
            scheduled_time_ms: status.end_exec_time.saturating_sub(status.start_exec_time) as i64,
            output_rows: partitions.iter().map(|p| p.num_rows as i64).sum(),
            output_bytes: partitions.iter().map(|p| p.num_bytes as i64).sum(),
            error,
            ..TaskRecord::default()
        };
        let (operators, splits) = self
            .operators(&status.job_id, task.stage_id, task.task_id)
            .await;
        task.splits = splits;
        let mut by_catalog: HashMap<String, (i64, i64)> = HashMap::new();
        let mut cpu_ns = 0i64;
        for (n, set) in status.metrics.iter().enumerate() {
            let converted: Result<MetricsSet, _> = set.clone().try_into();
            let Ok(metrics) = converted else {
                continue;
            };
            let op = operators
                .as_ref()
                .and_then(|ops| ops.get(n).cloned())
                .unwrap_or(PlanOperator::Inner);
            sum_operator(&mut task, &op, &metrics, &mut by_catalog, &mut cpu_ns);
            // The executor reports its query's peak on the node with the task (memory.rs):
            // the task's figure is at least that.
            for metric in metrics.iter() {
                if let MetricValue::Gauge { name, gauge } = metric.value()
                    && name.as_ref() == tributary_telemetry::QUERY_PEAK_MEMORY
                {
                    task.peak_memory_bytes = task.peak_memory_bytes.max(gauge.value() as i64);
                }
            }
        }
        task.cpu_time_ms = cpu_ns / 1_000_000;
        task.blocked_time_ms = (task.scheduled_time_ms - task.cpu_time_ms).max(0);
        let mut by_catalog: Vec<_> = by_catalog
            .into_iter()
            .map(|(c, (r, b))| (c, r, b))
            .collect();
        by_catalog.sort();
        task.input_by_catalog = by_catalog;
        self.metrics.task_ended(&task);
        self.tasks.record(task);
    }
}

/// Adds one operator's metrics to its task's columns.
fn sum_operator(
    task: &mut TaskRecord,
    op: &PlanOperator,
    metrics: &MetricsSet,
    by_catalog: &mut HashMap<String, (i64, i64)>,
    cpu_ns: &mut i64,
) {
    let mut output_bytes = 0i64;
    for metric in metrics.iter() {
        match metric.value() {
            MetricValue::ElapsedCompute(t) => *cpu_ns += t.value() as i64,
            MetricValue::SpilledBytes(c) => task.spilled_bytes += c.value() as i64,
            MetricValue::OutputBytes(c) => output_bytes += c.value() as i64,
            MetricValue::Gauge { name, gauge }
                if name.as_ref() != tributary_telemetry::QUERY_PEAK_MEMORY
                    && (name.contains("mem_used") || name.contains("peak_mem")) =>
            {
                task.peak_memory_bytes += gauge.value() as i64;
            }
            _ => {}
        }
    }
    let rows = metrics.output_rows().unwrap_or(0) as i64;
    match op {
        PlanOperator::Source(catalog) => {
            let bytes = bytes_read(metrics);
            task.raw_input_rows += rows;
            task.raw_input_bytes += bytes;
            task.processed_input_rows += rows;
            task.processed_input_bytes += output_bytes;
            let entry = by_catalog
                .entry(catalog.clone().unwrap_or_else(|| "memory".to_owned()))
                .or_default();
            entry.0 += rows;
            entry.1 += bytes;
        }
        PlanOperator::Exchange => {
            task.processed_input_rows += rows;
            task.processed_input_bytes += bytes_read(metrics);
        }
        PlanOperator::Inner => {}
    }
}

#[tonic::async_trait]
impl SchedulerGrpc for TaskStatusTap {
    async fn poll_work(
        &self,
        request: Request<pb::PollWorkParams>,
    ) -> Result<Response<pb::PollWorkResult>, Status> {
        self.inner.poll_work(request).await
    }

    async fn register_executor(
        &self,
        request: Request<pb::RegisterExecutorParams>,
    ) -> Result<Response<pb::RegisterExecutorResult>, Status> {
        self.inner.register_executor(request).await
    }

    async fn heart_beat_from_executor(
        &self,
        request: Request<pb::HeartBeatParams>,
    ) -> Result<Response<pb::HeartBeatResult>, Status> {
        self.inner.heart_beat_from_executor(request).await
    }

    async fn update_task_status(
        &self,
        request: Request<pb::UpdateTaskStatusParams>,
    ) -> Result<Response<pb::UpdateTaskStatusResult>, Status> {
        let params = request.get_ref();
        for status in &params.task_status {
            self.record(&params.executor_id, status).await;
        }
        self.inner.update_task_status(request).await
    }

    async fn create_update_session(
        &self,
        request: Request<pb::CreateUpdateSessionParams>,
    ) -> Result<Response<pb::CreateUpdateSessionResult>, Status> {
        let _ = request;
        Err(client_api_refused())
    }

    async fn remove_session(
        &self,
        request: Request<pb::RemoveSessionParams>,
    ) -> Result<Response<pb::RemoveSessionResult>, Status> {
        let _ = request;
        Err(client_api_refused())
    }

    type ExecuteQueryPushStream = <BallistaScheduler as SchedulerGrpc>::ExecuteQueryPushStream;

    async fn execute_query_push(
        &self,
        request: Request<pb::ExecuteQueryParams>,
    ) -> Result<Response<Self::ExecuteQueryPushStream>, Status> {
        let _ = request;
        Err(client_api_refused())
    }

    async fn get_job_metrics(
        &self,
        request: Request<pb::GetJobMetricsParams>,
    ) -> Result<Response<pb::GetJobMetricsResult>, Status> {
        let _ = request;
        Err(client_api_refused())
    }

    async fn execute_query(
        &self,
        request: Request<pb::ExecuteQueryParams>,
    ) -> Result<Response<pb::ExecuteQueryResult>, Status> {
        let _ = request;
        Err(client_api_refused())
    }

    async fn get_job_status(
        &self,
        request: Request<pb::GetJobStatusParams>,
    ) -> Result<Response<pb::GetJobStatusResult>, Status> {
        let _ = request;
        Err(client_api_refused())
    }

    async fn executor_stopped(
        &self,
        request: Request<pb::ExecutorStoppedParams>,
    ) -> Result<Response<pb::ExecutorStoppedResult>, Status> {
        self.inner.executor_stopped(request).await
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobParams>,
    ) -> Result<Response<pb::CancelJobResult>, Status> {
        let _ = request;
        Err(client_api_refused())
    }

    async fn clean_job_data(
        &self,
        request: Request<pb::CleanJobDataParams>,
    ) -> Result<Response<pb::CleanJobDataResult>, Status> {
        let _ = request;
        Err(client_api_refused())
    }
}

/// Ballista's client API (sessions, `execute_query`, job status, cancel) on the cluster port
/// would run SQL past Flight SQL's authentication and access control: Tributary takes
/// queries through Flight SQL only, so it is refused.
fn client_api_refused() -> Status {
    Status::permission_denied(
        "this is the scheduler's cluster port (executors only): send queries to the Flight SQL \
         service",
    )
}

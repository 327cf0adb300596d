//! Running a plan as a Ballista job: submission with the query's scope, telemetry and lease,
//! waiting for its status within the query's time limits, cancelling it when the caller goes
//! away, and submitting it again under `retry-policy=QUERY`.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use ballista_core::serde::protobuf::{SuccessfulJob, job_status};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use tributary_connector::QueryScope;
use tributary_proto::JobPartition;

use super::{Engine, JobResult};
use crate::cluster::BallistaScheduler;
use crate::error::{Result, SchedulerError};
use crate::monitor::current_query;
use crate::session::Session;

/// How often a running job's status is polled besides the status channel (which drops
/// updates when full).
const STATUS_POLL: Duration = Duration::from_millis(100);

impl Engine {
    /// Runs a plan as a Ballista job; under `retry-policy=QUERY` a failed job is submitted
    /// again (nothing has reached the client or the target table yet: results are read
    /// only once the job succeeded).
    pub(super) async fn run_job(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        plan: &LogicalPlan,
        sql: &str,
    ) -> Result<JobResult> {
        // Refused before anything runs: a task over the limit would fail every launch.
        super::plan::check_in_memory_rows(plan, tributary_connector::MAX_TASK_BYTES)?;
        // Boxed: planning, estimating and collecting make large futures (a stack overflow in
        // debug builds when kept inline in the statement's).
        let query = current_query();
        let strategy = crate::join_order::Strategy::of(session);
        let reordered = Box::pin(crate::join_order::reorder(&ctx, plan, strategy)).await;
        let plan = match reordered {
            Some((reordered, lines)) => {
                if let Some(query) = &query {
                    query.set_join_order(lines);
                }
                std::borrow::Cow::Owned(reordered)
            }
            None => std::borrow::Cow::Borrowed(plan),
        };
        // The keys of selective build sides, collected now, filter their probe sides.
        let settings = crate::dynamic_filters::Settings::of(session);
        let filtered = Box::pin(crate::dynamic_filters::apply(&ctx, &plan, &settings)).await;
        let plan = match filtered {
            Some((filtered, lines)) => {
                if let Some(query) = &query {
                    query.set_dynamic_filters(lines);
                }
                std::borrow::Cow::Owned(filtered)
            }
            None => plan,
        };
        let retries = self.retry.query_retries();
        // One deadline for every attempt: the limits bound the query, not a run.
        let deadline = Deadline::of(session);
        let mut attempt = 0;
        loop {
            match self
                .run_job_once(Arc::clone(&ctx), &plan, sql, deadline)
                .await
            {
                Err(SchedulerError::JobFailed { job_id, message })
                    if attempt < retries && retryable(&message) =>
                {
                    attempt += 1;
                    tracing::warn!(
                        job_id,
                        attempt,
                        retries,
                        "query failed ({message}); running it again (retry-policy QUERY)"
                    );
                }
                outcome => return outcome,
            }
        }
    }

    /// Submits a plan as a Ballista job and waits for it, cancelling it if this future is
    /// dropped (client went away) or `deadline` passes.
    async fn run_job_once(
        &self,
        ctx: Arc<SessionContext>,
        plan: &LogicalPlan,
        sql: &str,
        deadline: Deadline,
    ) -> Result<JobResult> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let name: String = sql.chars().take(100).collect();
        // Resources connectors hold for this query (PostgreSQL's shared snapshot) live until
        // this function returns or is dropped. Ballista plans the job from a context of its
        // own (a copy of the session's state, same session id), so concurrent queries of one
        // session never see each other's scope.
        let (scope, _close) = QueryScope::open();
        let mut state = ctx.state();
        state.config_mut().set_extension(scope);
        // Join hints need thresholds their size estimates can win against.
        crate::joins::configure(state.config_mut().options_mut(), plan)?;
        // Every task carries the query id and the trace context of the query's span.
        let query = current_query();
        if let Some(query) = &query {
            let options = state.config_mut().options_mut();
            options.set("tributary.query_id", &query.id())?;
            if let Some(trace) =
                tributary_telemetry::TraceParent::of_span(&tracing::Span::current())
            {
                options.set("tributary.traceparent", &trace.header())?;
                query.set_trace(trace);
            }
        }
        let ctx = Arc::new(SessionContext::new_with_state(state));
        let job_id = self
            .scheduler
            .submit_job(&name, ctx, plan, Some(tx))
            .await?;
        // Held from submission, so the job never looks unused to a draining executor between
        // finishing and its result being announced or written.
        let lease = Arc::new(self.leases.hold(job_id.as_ref()));
        if let Some(query) = &query {
            query.submitted(job_id.as_ref());
        }
        let mut guard = CancelOnDrop {
            scheduler: self.scheduler.clone(),
            job_id: job_id.to_string(),
            armed: true,
        };
        let waited = tokio::time::timeout_at(deadline.at, async {
            let mut running_seen = false;
            let mut poll = tokio::time::interval(STATUS_POLL);
            loop {
                let status = tokio::select! {
                    Some(status) = rx.recv() => Some(status),
                    _ = poll.tick() => self.scheduler.state.task_manager.get_job_status(&job_id).await?,
                };
                match status.and_then(|s| s.status) {
                    Some(job_status::Status::Running(_)) => {
                        if let Some(query) = &query {
                            query.heartbeat();
                            if !running_seen && self.monitor.job_has_running_task(job_id.as_ref()).await {
                                running_seen = true;
                                query.running();
                            }
                        }
                    }
                    Some(job_status::Status::Successful(done)) => return Ok(done),
                    Some(job_status::Status::Failed(failed)) => {
                        return Err(SchedulerError::job_failed(job_id.to_string(), failed.error));
                    }
                    _ => {}
                }
            }
        })
        .await;
        let done = match waited {
            Ok(result) => {
                guard.armed = matches!(result, Err(SchedulerError::Unavailable(_)));
                result?
            }
            Err(_) => {
                return Err(SchedulerError::Timeout {
                    limit: deadline.limit,
                    property: deadline.property,
                });
            }
        };
        guard.armed = false;
        if let Some(query) = &query {
            query.finishing();
            let tasks = self.monitor.tasks.of_job(job_id.as_ref());
            if let Some(first) = tasks.iter().map(|t| t.created_ms).min() {
                query.first_task_launched(first);
            }
        }
        let mut result = job_result(job_id.to_string(), done);
        result.lease = Some(lease);
        Ok(result)
    }
}

/// When a query's job is cancelled: the earlier of `query_max_run_time` after the query was
/// created (queued time included, as Trino) and `query_max_execution_time` from now.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: tokio::time::Instant,
    limit: Duration,
    property: &'static str,
}

impl Deadline {
    fn of(session: &Session) -> Self {
        let now = tokio::time::Instant::now();
        let created_ago = current_query()
            .map(|q| {
                let now_ms = chrono::Utc::now().timestamp_millis();
                Duration::from_millis(u64::try_from(now_ms - q.info().created_ms).unwrap_or(0))
            })
            .unwrap_or_default();
        let run = session.max_run_time();
        let execution = session.max_execution_time();
        let run_left = run.saturating_sub(created_ago);
        if run_left <= execution {
            Self {
                at: now + run_left,
                limit: run,
                property: "query_max_run_time",
            }
        } else {
            Self {
                at: now + execution,
                limit: execution,
                property: "query_max_execution_time",
            }
        }
    }
}

/// Whether a failed job may succeed when submitted again: failures of the cluster or of a
/// source (a lost executor, a shuffle read, I/O, a connection), not of the query itself (a
/// division by zero fails every time; Trino does not retry user errors either).
fn retryable(message: &str) -> bool {
    const CLUSTER_FAILURES: [&str; 8] = [
        "FetchPartitionError",
        "ExecutorLost",
        "ResultLost",
        "IoError",
        "TaskKilled",
        "transport error",
        "Unavailable",
        "onnection",
    ];
    CLUSTER_FAILURES.iter().any(|m| message.contains(m))
}

fn job_result(job_id: String, done: SuccessfulJob) -> JobResult {
    let mut locations = done.partition_location;
    locations.sort_by_key(|l| {
        (
            l.partition_id.as_ref().map(|p| p.partition_id).unwrap_or(0),
            l.map_partition_id,
        )
    });
    let mut total: i64 = 0;
    let mut known = true;
    let partitions = locations
        .into_iter()
        .filter_map(|l| {
            match l.partition_stats.as_ref().map(|s| s.num_rows) {
                Some(n) if n >= 0 => total += n,
                _ => known = false,
            }
            let id = l.partition_id?;
            let executor = l.executor_meta?;
            Some(JobPartition {
                job_id: id.job_id,
                stage_id: id.stage_id,
                partition_id: id.partition_id,
                executor_id: executor.id,
                host: executor.host,
                port: executor.port,
                file_id: l.file_id,
                is_sort_shuffle: l.is_sort_shuffle,
            })
        })
        .collect();
    JobResult {
        job_id,
        schema: Arc::new(Schema::empty()),
        partitions,
        total_records: if known { total } else { -1 },
        order: None,
        lease: None,
    }
}

/// Cancels the job when dropped while armed: a client that goes away (or whose deadline
/// passes) while the job runs stops the job and every task it started.
struct CancelOnDrop {
    scheduler: BallistaScheduler,
    job_id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let scheduler = self.scheduler.clone();
            let job_id = self.job_id.clone();
            tracing::info!(
                job_id,
                "cancelling job: its statement ended first (client gone, query killed or over its time limit)"
            );
            tokio::spawn(async move {
                if let Err(e) = scheduler.cancel_job(job_id.clone().into()).await {
                    tracing::warn!(job_id, "cannot cancel job: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retryable;

    #[test]
    fn cluster_failures_are_retried_query_errors_are_not() {
        assert!(retryable(
            "Job failed due to stage 2 failed: FetchPartitionError from executor"
        ));
        assert!(retryable("ExecutorLost: executor e1 heartbeat timed out"));
        assert!(!retryable("Arrow error: Divide by zero error"));
    }
}

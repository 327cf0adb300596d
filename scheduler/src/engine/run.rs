//! Running a plan as a Ballista job: submission with the query's scope, telemetry and lease,
//! waiting for its status within the query's time limits, cancelling it when the caller goes
//! away, and submitting it again under `retry-policy=QUERY`.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use ballista_core::serde::protobuf::SuccessfulJob;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use tributary_connector::QueryScope;
use tributary_proto::JobPartition;

use super::{Engine, JobResult};
use crate::cluster::BallistaScheduler;
use crate::error::{Result, SchedulerError};
use crate::monitor::current_query;
use crate::session::Session;

mod watcher;

use watcher::{JobWatcher, Watched, broken_stream};

/// How often a running job's status is polled besides the status channel (which drops
/// updates when full).
const STATUS_POLL: Duration = Duration::from_millis(100);

/// How often a job is looked at for its final stage to run (its result is announced then).
const FINAL_STAGE_POLL: Duration = Duration::from_millis(5);

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
        self.run_job_announced(session, ctx, plan, sql, Announce::Finished)
            .await
    }

    /// [`Engine::run_job`], its result announced as `announce` says (where it can be).
    pub(super) async fn run_job_announced(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        plan: &LogicalPlan,
        sql: &str,
        announce: Announce,
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
        // Results stream when the session wants them to, and not under retry-policy QUERY
        // (which runs a failed query again only while nothing has reached the client). Under
        // TASK, a task failing before its first rows were sent is still retried unseen; one
        // failing after them fails the query (`crate::live`).
        let announce = match announce {
            Announce::Running
                if retries == 0
                    && session.streaming_results()
                    && self.fetcher.running_results().is_some() =>
            {
                Announce::Running
            }
            _ => Announce::Finished,
        };
        // One deadline for every attempt: the limits bound the query, not a run.
        let deadline = Deadline::of(session);
        let mut attempt = 0;
        loop {
            match self
                .run_job_once(Arc::clone(&ctx), &plan, sql, deadline, announce)
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

    /// Submits a plan as a Ballista job and waits for it (or, under [`Announce::Running`],
    /// for its final stage to run: the rest of the wait goes on in a task of its own, and the
    /// result's partitions are read as they are written, `crate::live`), cancelling it if
    /// this future is dropped (client went away) or `deadline` passes.
    async fn run_job_once(
        &self,
        ctx: Arc<SessionContext>,
        plan: &LogicalPlan,
        sql: &str,
        deadline: Deadline,
        announce: Announce,
    ) -> Result<JobResult> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let name: String = sql.chars().take(100).collect();
        // Resources connectors hold for this query (PostgreSQL's shared snapshot) live until
        // the job has ended. Ballista plans the job from a context of its own (a copy of the
        // session's state, same session id), so concurrent queries of one session never see
        // each other's scope.
        let (scope, close) = QueryScope::open();
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
        // Errors of analysis (types, functions' arguments) are the statement's: analysed here,
        // they are named as such, where Ballista would report its job as failed.
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})?;
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
        let mut watcher = JobWatcher {
            engine: self.clone(),
            job_id: job_id.to_string(),
            query,
            rx,
            running_seen: false,
        };
        let waited = tokio::time::timeout_at(deadline.at, watcher.watch(announce)).await;
        match ended(waited, deadline, &mut guard)? {
            Watched::Finished(done) => {
                watcher.finishing();
                let mut result = job_result(job_id.to_string(), done);
                result.lease = Some(lease);
                drop(close);
                Ok(result)
            }
            Watched::FinalStageRunning {
                stage_id,
                partitions,
            } => {
                let job_id = job_id.to_string();
                let Some(results) = self.fetcher.running_results() else {
                    return Err(SchedulerError::Engine(
                        "a result was to be read while written without executors here".into(),
                    ));
                };
                let (sender, mut broken) = results.announce(&job_id);
                if let Some(query) = &watcher.query {
                    query.end_with(sender.subscribe());
                }
                let span = tracing::Span::current();
                let watched = job_id.clone();
                let readers = results.clone();
                let client_timeout = self.leases().client_timeout();
                tokio::spawn(tracing::Instrument::instrument(
                    async move {
                        let broke = tokio::select! {
                            end = watcher.until_end(&mut guard, deadline, partitions) => Ok(end),
                            cause = broken_stream(&mut broken) => Err(cause),
                            cause = readers.abandoned(&watched, client_timeout) => Err(cause),
                        };
                        let end = match broke {
                            Ok(end) => end,
                            // A client's stream broke after rows were sent, or the client
                            // left (closed a stream early, or read nothing for
                            // query.client.timeout): the query fails with it (unless killed
                            // meanwhile), and the guard, still armed, cancels the job.
                            Err(cause) => {
                                if matches!(
                                    cause,
                                    SchedulerError::ResultStreamClosed(_)
                                        | SchedulerError::Abandoned(_)
                                ) {
                                    tracing::info!(job_id = watched, "query stopped: {cause}");
                                } else {
                                    tracing::warn!(job_id = watched, "query failed: {cause}");
                                }
                                Err(watcher.stopped(cause))
                            }
                        };
                        // Whoever reads the result keeps the files from now on.
                        let _ = sender.send(Some(end.map_err(Arc::new)));
                        drop(lease);
                        drop(close);
                    },
                    span,
                ));
                let partitions = (0..partitions)
                    .map(|partition| JobPartition {
                        job_id: job_id.clone(),
                        stage_id: stage_id as u32,
                        partition_id: partition as u32,
                        running: true,
                        ..JobPartition::default()
                    })
                    .collect();
                Ok(JobResult {
                    job_id,
                    schema: Arc::new(Schema::empty()),
                    partitions,
                    total_records: -1,
                    order: None,
                    lease: None,
                })
            }
        }
    }
}

/// When a job's result is announced to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    /// Once the job has finished: writes, EXPLAIN ANALYZE, and results under a retry policy
    /// or with `streaming_results = false`.
    Finished,
    /// As soon as its final stage runs: its partitions are read as their tasks write them.
    Running,
}

/// The outcome of a watch within its deadline: a timeout leaves the job to be cancelled, as
/// does an unreachable cluster; the watch's result otherwise (the job no longer needs
/// cancelling once it has succeeded, failed or been announced to run on).
fn ended(
    waited: std::result::Result<Result<Watched>, tokio::time::error::Elapsed>,
    deadline: Deadline,
    guard: &mut CancelOnDrop,
) -> Result<Watched> {
    match waited {
        Ok(Ok(Watched::Finished(done))) => {
            guard.armed = false;
            Ok(Watched::Finished(done))
        }
        Ok(Ok(running)) => Ok(running),
        Ok(Err(e)) => {
            guard.armed = matches!(e, SchedulerError::Unavailable(_));
            Err(e)
        }
        Err(_) => Err(SchedulerError::Timeout {
            limit: deadline.limit,
            property: deadline.property,
        }),
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
                running: false,
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
                "cancelling job: its statement ended first (client gone, query killed, over its time limit or its result stream broken)"
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

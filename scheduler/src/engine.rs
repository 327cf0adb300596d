//! The query path: a statement of a session becomes local rows, a state change, or a
//! distributed Ballista job whose final partitions stay on the executors.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use ballista_core::serde::protobuf::{SuccessfulJob, job_status};
use ballista_scheduler::cluster::JobState;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use tributary_connector::{Catalogs, QueryScope, TableProperties};
use tributary_proto::JobPartition;

mod hidden;
mod procedures;
mod properties;
mod write;

use crate::admission::ResourceGroups;
use crate::cluster::{BallistaScheduler, RetryPolicy, base_config};
use crate::error::{Result, SchedulerError};
use crate::fetch::PartitionFetcher;
use crate::leases::{Lease, ResultLeases};
use crate::monitor::{Monitor, current_query};
use crate::session::{Session, SessionRef};
use crate::statement::Statement;

/// How often a running job's status is polled besides the status channel (which drops
/// updates when full).
const STATUS_POLL: Duration = Duration::from_millis(100);

/// What a statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows computed by the scheduler itself (SHOW, DESCRIBE, EXPLAIN).
    Rows(SchemaRef, Vec<RecordBatch>),
    /// A finished distributed job whose result partitions live on executors.
    Job(JobResult),
    /// A statement that changed state (`SET SESSION`, `USE`, DDL); rows affected.
    Update(i64),
}

/// The result of a finished distributed job.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// Ballista job id.
    pub job_id: String,
    /// Schema of every result partition, as sent to clients.
    pub schema: SchemaRef,
    /// The final partitions, in order.
    pub partitions: Vec<JobPartition>,
    /// Total rows, when every partition reported it.
    pub total_records: i64,
    /// Keeps the job's files on the executors needed (a draining executor waits) until
    /// whoever reads the result takes over.
    pub lease: Option<Arc<Lease>>,
}

/// Contexts by session id, with the session state they were built from.
type ContextCache =
    Arc<std::sync::Mutex<std::collections::HashMap<String, (String, Arc<SessionContext>)>>>;

/// Runs statements on the embedded cluster.
#[derive(Clone)]
pub struct Engine {
    scheduler: BallistaScheduler,
    jobs: Arc<dyn JobState>,
    catalogs: Catalogs,
    contexts: ContextCache,
    fetcher: PartitionFetcher,
    monitor: Monitor,
    leases: ResultLeases,
    retry: RetryPolicy,
    admission: Option<ResourceGroups>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("scheduler", &self.scheduler.scheduler_id)
            .finish()
    }
}

impl Engine {
    /// An engine over an embedded scheduler.
    pub fn new(
        scheduler: BallistaScheduler,
        jobs: Arc<dyn JobState>,
        catalogs: Catalogs,
        monitor: Monitor,
        leases: ResultLeases,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            scheduler,
            jobs,
            catalogs,
            contexts: ContextCache::default(),
            fetcher: PartitionFetcher::default(),
            monitor,
            leases,
            retry,
            admission: None,
        }
    }

    /// Queries wait in resource groups (Trino's admission control).
    pub fn with_admission(mut self, admission: Option<ResourceGroups>) -> Self {
        self.admission = admission;
        self
    }

    /// The resource groups, when configured.
    pub fn admission(&self) -> Option<&ResourceGroups> {
        self.admission.as_ref()
    }

    /// Which finished jobs' files are still needed (results not yet read).
    pub fn leases(&self) -> &ResultLeases {
        &self.leases
    }

    /// Queries, tasks and metrics of this scheduler.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The catalogs loaded from `etc/catalog`.
    pub fn catalogs(&self) -> &Catalogs {
        &self.catalogs
    }

    /// Reads result partitions from executors.
    pub fn fetcher(&self) -> &PartitionFetcher {
        &self.fetcher
    }

    /// The embedded Ballista scheduler.
    pub fn scheduler(&self) -> &BallistaScheduler {
        &self.scheduler
    }

    /// A DataFusion context for one query of `session` (its catalogs, properties and `USE`).
    ///
    /// Building a DataFusion session state (functions, rules, catalogs) costs more than planning
    /// a small query, so a session's context is reused until its properties or `USE` change.
    pub async fn context(&self, session: &Session) -> Result<Arc<SessionContext>> {
        let slots = self.cluster_slots().await;
        let fingerprint = format!(
            "{:?}/{:?}/{:?}/{slots}",
            session.catalog, session.schema, session.properties
        );
        if let Some((built_from, ctx)) = self
            .contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.id)
            && *built_from == fingerprint
        {
            return Ok(Arc::clone(ctx));
        }
        let mut config = session.configure(base_config())?;
        // hash_partition_count = 0: one shuffle partition per task slot of the cluster (Ballista's
        // fixed default of 16 leaves small clusters scheduling many tiny tasks).
        if session.property("hash_partition_count").as_deref() == Some("0") && slots > 0 {
            config = config.with_target_partitions(slots);
        }
        let ctx = self
            .scheduler
            .state
            .session_manager
            .create_or_update_session(&session.id, &config)
            .await?;
        let mut contexts = self.contexts.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: sessions come and go; rebuilding a context is only a cost, never wrong.
        if contexts.len() > 1024 {
            contexts.clear();
        }
        contexts.insert(session.id.clone(), (fingerprint, Arc::clone(&ctx)));
        Ok(ctx)
    }

    /// Task slots of the registered executors (0 before any executor registered).
    async fn cluster_slots(&self) -> usize {
        match self
            .scheduler
            .state
            .executor_manager
            .get_executors_state()
            .await
        {
            Ok(executors) => executors
                .iter()
                .map(|(m, _, _)| m.specification.vcores as usize)
                .sum(),
            Err(_) => 0,
        }
    }

    /// Plans DataFusion SQL (for prepared statements: schema and parameter types).
    pub async fn plan_sql(&self, session: &Session, sql: &str) -> Result<LogicalPlan> {
        let ctx = self.context(session).await?;
        let plan = hidden::plan(&ctx, sql)
            .await
            .map_err(|e| explain_missing(&ctx, e.into()))?;
        Ok(plan)
    }

    /// Runs one statement.
    pub async fn execute(
        &self,
        session: &SessionRef,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        let snapshot = lock(session).clone();
        match statement {
            Statement::SetSession { name, value } => {
                lock(session).set_property(name, value)?;
                Ok(Outcome::Update(0))
            }
            Statement::ResetSession { name } => {
                lock(session).reset_property(name)?;
                Ok(Outcome::Update(0))
            }
            Statement::Use { schema } => {
                let ctx = self.context(&snapshot).await?;
                let (catalog, schema) = crate::local::resolve_schema(&ctx, &snapshot, schema)?;
                let mut s = lock(session);
                s.catalog = Some(catalog);
                s.schema = Some(schema);
                Ok(Outcome::Update(0))
            }
            Statement::ExplainDistributed { query } => {
                let ctx = self.context(&snapshot).await?;
                let plan = hidden::plan(&ctx, query).await?;
                let (schema, batches) = crate::explain::distributed(&ctx, &plan).await?;
                Ok(Outcome::Rows(schema, batches))
            }
            Statement::Sql(sql) => {
                let ctx = self.context(&snapshot).await?;
                if let Some(ddl) = properties::split(sql)? {
                    return self.run_with_properties(&snapshot, ctx, ddl, sql).await;
                }
                let mut plan = hidden::plan(&ctx, sql)
                    .await
                    .map_err(|e| explain_missing(&ctx, e.into()))?;
                if let Some(params) = params {
                    plan = plan.with_param_values(params)?;
                }
                self.run_plan(&snapshot, ctx, plan, sql).await
            }
            Statement::Call { procedure, args } => self.call(&snapshot, procedure, args),
            local => {
                let ctx = self.context(&snapshot).await?;
                let (schema, batches) =
                    crate::local::run(&ctx, &self.catalogs, &snapshot, local).await?;
                Ok(Outcome::Rows(schema, batches))
            }
        }
    }

    async fn run_plan(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        plan: LogicalPlan,
        sql: &str,
    ) -> Result<Outcome> {
        match &plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                self.create_table(session, &ctx, create, sql, &TableProperties::default())
                    .await
            }
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
                let WriteOp::Insert(op) = dml.op else {
                    return Err(SchedulerError::Engine("not an INSERT".into()));
                };
                let target = source_as_provider(&dml.target)?;
                let job = self
                    .run_job(session, Arc::clone(&ctx), &dml.input, sql)
                    .await?;
                let schema = Arc::new(dml.input.schema().as_arrow().clone());
                let rows = self.write_job(&ctx, job, schema, target, op).await?;
                Ok(Outcome::Update(rows))
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => {
                ctx.execute_logical_plan(plan).await?.collect().await?;
                Ok(Outcome::Update(0))
            }
            LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_) => {
                let df = ctx.execute_logical_plan(plan).await?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                Ok(Outcome::Rows(schema, df.collect().await?))
            }
            LogicalPlan::Analyze(analyze) => {
                let job = self.run_job(session, ctx, &analyze.input, sql).await?;
                let (schema, batches) =
                    crate::explain::analyze(&self.jobs, &self.monitor.tasks, &job.job_id).await?;
                Ok(Outcome::Rows(schema, batches))
            }
            LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Err(SchedulerError::NotSupported(
                "UPDATE, DELETE and COPY are not supported yet".into(),
            )),
            // DataFusion's information_schema tables are computed from the session's catalogs
            // and cannot be sent to executors: a query of them alone runs here.
            _ if reads_only_information_schema(
                &plan,
                &ctx.state().config().options().catalog.default_schema,
            ) =>
            {
                let df = ctx.execute_logical_plan(plan).await?;
                let schema = client_schema(df.schema().as_arrow());
                let batches = df
                    .collect()
                    .await?
                    .iter()
                    .map(|b| tributary_connector::conform_batch(b, &schema))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(Outcome::Rows(schema, batches))
            }
            _ => {
                let schema = client_schema(plan.schema().as_arrow());
                let job = self.run_job(session, ctx, &plan, sql).await?;
                Ok(Outcome::Job(JobResult { schema, ..job }))
            }
        }
    }

    /// `CREATE TABLE … WITH (…)` and `CREATE SCHEMA … WITH (…)`: the properties go to the
    /// target catalog's connector.
    async fn run_with_properties(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        ddl: properties::WithProperties,
        sql: &str,
    ) -> Result<Outcome> {
        match ddl {
            properties::WithProperties::Table {
                statement,
                properties,
            } => {
                let mut statement = *statement;
                let state = ctx.state();
                hidden::exclude_hidden(&ctx, &state, &mut statement).await?;
                let plan = state
                    .statement_to_plan(statement)
                    .await
                    .map_err(|e| explain_missing(&ctx, e.into()))?;
                let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = &plan else {
                    return Err(SchedulerError::NotSupported(
                        "table properties (WITH …) are only accepted by CREATE TABLE".into(),
                    ));
                };
                self.create_table(session, &ctx, create, sql, &properties)
                    .await
            }
            properties::WithProperties::Schema {
                name,
                if_not_exists,
                properties,
            } => {
                let (catalog, schema) = match name.as_slice() {
                    [catalog, schema] => (catalog.clone(), schema.clone()),
                    [schema] => (
                        session.catalog.clone().ok_or_else(|| {
                            SchedulerError::InvalidQuery(
                                "catalog must be specified when session catalog is not set".into(),
                            )
                        })?,
                        schema.clone(),
                    ),
                    _ => {
                        return Err(SchedulerError::InvalidQuery(format!(
                            "CREATE SCHEMA takes [catalog.]schema, got '{}'",
                            name.join(".")
                        )));
                    }
                };
                let connector = self.catalogs.find(&catalog).ok_or_else(|| {
                    SchedulerError::NotFound(format!(
                        "catalog '{catalog}' does not exist or takes no schema properties"
                    ))
                })?;
                if connector.catalog_provider().schema(&schema).is_some() {
                    return if if_not_exists {
                        Ok(Outcome::Update(0))
                    } else {
                        Err(SchedulerError::InvalidQuery(format!(
                            "schema '{catalog}.{schema}' already exists"
                        )))
                    };
                }
                connector.create_schema(&schema, &properties)?;
                Ok(Outcome::Update(0))
            }
        }
    }

    /// Runs a plan as a Ballista job; under `retry-policy=QUERY` a failed job is submitted
    /// again (nothing has reached the client or the target table yet: results are read
    /// only once the job succeeded).
    async fn run_job(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        plan: &LogicalPlan,
        sql: &str,
    ) -> Result<JobResult> {
        let retries = self.retry.query_retries();
        // One deadline for every attempt: the limits bound the query, not a run.
        let deadline = Deadline::of(session);
        let mut attempt = 0;
        loop {
            match self
                .run_job_once(Arc::clone(&ctx), plan, sql, deadline)
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
        let scope = Arc::new(QueryScope::default());
        let _scope_guard = CloseScope(Arc::clone(&scope));
        let mut state = ctx.state();
        state.config_mut().set_extension(Arc::clone(&scope));
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
                        return Err(SchedulerError::JobFailed { job_id: job_id.to_string(), message: failed.error });
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
        }
        let mut result = job_result(job_id.to_string(), done);
        result.lease = Some(lease);
        Ok(result)
    }

    /// Cancels a running job.
    pub async fn cancel(&self, job_id: &str) -> Result<()> {
        self.scheduler.cancel_job(job_id.to_owned().into()).await?;
        Ok(())
    }
}

/// Whether every table `plan` reads is an `information_schema` table (and it reads some);
/// unqualified names are in `default_schema` (`USE c.information_schema`).
fn reads_only_information_schema(plan: &LogicalPlan, default_schema: &str) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let (mut info, mut other) = (0, 0);
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if scan.table_name.schema().unwrap_or(default_schema) == "information_schema" {
                info += 1;
            } else {
                other += 1;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    info > 0 && other == 0
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

/// Turns DataFusion's "table 'a.b.c' not found" into what is missing: the catalog, the
/// schema or the table (Trino's messages).
fn explain_missing(ctx: &SessionContext, error: SchedulerError) -> SchedulerError {
    let SchedulerError::NotFound(message) = &error else {
        return error;
    };
    let Some(name) = message
        .strip_prefix("table '")
        .and_then(|m| m.split_once("' not found"))
        .map(|(n, _)| n)
    else {
        return error;
    };
    let parts: Vec<&str> = name.split('.').collect();
    let [catalog, schema, table] = parts[..] else {
        return error;
    };
    let Some(provider) = ctx.catalog(catalog) else {
        let mut known = ctx.catalog_names();
        known.sort();
        return SchedulerError::NotFound(format!(
            "catalog '{catalog}' does not exist (catalogs: {})",
            known.join(", ")
        ));
    };
    if provider.schema(schema).is_none() {
        return SchedulerError::NotFound(format!("schema '{catalog}.{schema}' does not exist"));
    }
    SchedulerError::NotFound(format!("table '{catalog}.{schema}.{table}' does not exist"))
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
        lease: None,
    }
}

/// The schema sent to Flight SQL clients: no view or dictionary types (JDBC cannot read
/// them before version 19).
pub fn client_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(client_type(f.data_type()))
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn client_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => client_type(value),
        other => other.clone(),
    }
}

/// Closes a query's scope when the query has ended, however it ended.
struct CloseScope(Arc<QueryScope>);

impl Drop for CloseScope {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn lock(session: &SessionRef) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
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
                "cancelling job: its client went away or it ran too long"
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
